"""A published base model's encoder space is named, never guessed, by a text submission: an unnamed one
embeds its texts with the MiniLM (``reuse_spec``) and resolves the MiniLM text space even when a base space
of the same width exists; a named base space (for models, or adapters with ``kind: adapter``) embeds the
texts with that base, and a base model that is not published (or hidden from the user) is refused by name."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.base import ContentFile

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.models import FeatureSpace
from marketplace.learnwares.services.spaces import TEXT_SPACE_KEY
from marketplace.submissions.services import submission_create
from tests.support.adapters import jsonl_bytes
from workers.pipelines.reuse_context import ReuseContext
from workers.pipelines.reuse_spec import resolve_space

pytestmark = pytest.mark.django_db


def _space(key: str, encoder_id: str) -> FeatureSpace:
    return FeatureSpace.objects.create(
        key=key, kind="text", dim=384, gamma=1.0, schema={}, standardization={}, encoder_id=encoder_id
    )


def _context(owner: Any, requirements: dict[str, Any]) -> ReuseContext:
    submission = submission_create(
        owner=owner,
        data_format="jsonl",
        data=ContentFile(jsonl_bytes(["the team won", "shares fell"]), name="d.jsonl"),
        modality="text",
        requirements=requirements,
    )
    return ReuseContext(submission)


def test_an_unnamed_text_submission_never_resolves_a_base_models_space(alice):
    FeatureSpace.objects.filter(kind="text").delete()
    minilm = _space(TEXT_SPACE_KEY, "all-minilm-l6-v2")
    _space("text-bob-wide-bert", "bob-wide-bert")  # as wide as the MiniLM: the width alone cannot tell
    assert resolve_space(_context(alice, {}), None, 384) == minilm


@pytest.mark.parametrize("kind", [{}, {"kind": "adapter"}], ids=["models", "adapters"])
def test_a_submission_in_the_space_of_a_base_that_is_not_published_is_refused_by_name(alice, kind):
    from workers.pipelines.reuse_spec import run as spec_run

    _space("text-bob-gone-bert", "bob-gone-bert")  # no registry row: deleted, or never published
    ctx = _context(alice, {"feature_space": "text-bob-gone-bert", **kind})
    with pytest.raises(ValidationFailed) as err:
        spec_run(ctx, lambda *a, **k: None)
    assert err.value.code == "submission:user:unknown-base-model"
    assert "requirements.feature_space" in err.value.details
