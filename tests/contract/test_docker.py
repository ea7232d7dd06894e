import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.services import IN_CI

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_validates():
    exe = shutil.which("docker-compose")
    if exe is None:
        if IN_CI:
            pytest.fail("docker-compose (Debian package) must be installed in CI")
        pytest.skip("docker-compose is not installed")
    result = subprocess.run(
        [exe, "-f", str(ROOT / "docker/compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_compose_runs_every_part_of_the_market():
    text = (ROOT / "docker/compose.yaml").read_text()
    for service in ("web:", "worker:", "beat:", "postgres:", "redis:", "minio:"):
        assert f"\n  {service}" in text


def test_every_service_image_is_pinned_to_a_release():
    import yaml

    services = yaml.safe_load((ROOT / "docker/compose.yaml").read_text())["services"]
    images = {name: s["image"] for name, s in services.items() if "image" in s}
    for name, image in images.items():
        tag = image.rsplit(":", 1)[1] if ":" in image else ""
        assert tag and tag != "latest" and not tag.startswith("$"), f"{name}: {image} is not pinned"
    assert images["minio"].split(":")[1].startswith("RELEASE.20") and images["minio-init"].split(":")[
        1
    ].startswith("RELEASE.20")


def test_migrations_run_once_in_their_own_service_before_web_and_worker():
    import yaml

    services = yaml.safe_load((ROOT / "docker/compose.yaml").read_text())["services"]
    assert services["migrate"]["command"] == ["migrate"]
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, (
            name
        )
    web = (ROOT / "docker/entrypoint.sh").read_text().split("web)", 1)[1].split(";;", 1)[0]
    assert "migrate" not in web


def test_the_image_is_multi_stage_non_root_with_a_healthcheck_and_no_debug_build():
    dockerfile = (ROOT / "docker/Dockerfile").read_text()
    stages = [line for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert len(stages) == 2 and "AS builder" in stages[0] and "AS runtime" in stages[1]
    final = dockerfile.split("AS runtime", 1)[1]
    assert "\nUSER market" in final and "\nHEALTHCHECK " in final and "/livez" in final
    assert "DEBUG=true" not in dockerfile and "collectstatic" in final
    assert "build-essential" not in final and "bubblewrap" in final


def test_the_build_context_leaves_out_history_state_and_local_environments():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", "var", ".venv", "tests", "node_modules"} <= ignored
