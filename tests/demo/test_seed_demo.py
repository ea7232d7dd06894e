"""The demo seeder (python -m demo) against a live server and a real worker: every learnware reaches
published; twice = same market."""

from __future__ import annotations

import io

import pytest

from demo import cli as demo_cli
from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.models import Learnware, LearnwareVersion

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def seed(url: str, cache, limit: int) -> str:
    out = io.StringIO()
    demo_cli.seed(url, limit=limit, skip_submissions=True, cache_dir=cache, stdout=out)
    return out.getvalue()


def market() -> dict[str, list[tuple[int, str, str]]]:
    return {
        lw.name: sorted(
            (v.number, v.status, v.artifact_sha256) for v in LearnwareVersion.objects.filter(learnware=lw)
        )
        for lw in Learnware.objects.filter(owner__username="demo")
    }


def test_seed_demo_publishes_every_learnware_and_is_idempotent(
    live_server, celery_worker, s3_storage, django_user_model, tmp_path
):
    django_user_model.objects.create_user("demo", "demo@localhost", "demo-password")
    first_out = seed(live_server.url, tmp_path / "cache", limit=3)
    first = market()
    assert sorted(first) == ["diamond-price-fair", "fashion-upright", "flights-delay-origin-ewr"], first_out
    assert all(versions == [(1, VersionStatus.PUBLISHED, versions[0][2])] for versions in first.values()), (
        first
    )
    spaces = set(
        Learnware.objects.filter(owner__username="demo").values_list("feature_space__key", flat=True)
    )
    assert len(spaces) == 3 and "image-effnet-lite0-64" in spaces  # the default image space
    assert "3/3 learnwares published" in first_out

    second_out = seed(live_server.url, tmp_path / "cache", limit=3)
    assert market() == first
    assert "3/3 learnwares published" in second_out
    rows = [
        line.split()[-3:]
        for line in second_out.splitlines()
        if line.strip().startswith(("flights", "diamonds", "fashion"))
    ]
    assert rows == [["0", "1", "0"]] * 3, second_out  # new, kept, failed per data set
