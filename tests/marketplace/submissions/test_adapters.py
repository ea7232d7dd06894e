"""Text submissions and LoRA adapters in this process: the hook runtime against PEFT in the sandbox,
the arithmetic of the packaged adapter against the members' own files, layer-wise ranking."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.core.files.base import ContentFile
from numpy.testing import assert_allclose

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.encoding import minilm_path
from marketplace.learnwares.packages import package_inspect
from marketplace.submissions.data import read_texts
from marketplace.submissions.models import Submission
from marketplace.submissions.services import submission_create
from specs.assembly import ArrowRouter
from specs.transferability import score_layers
from tests.support.adapters import adapter_market_create, jsonl_bytes, topic_texts
from tests.support.packages import lora_files
from workers.pipelines.reuse import reuse_run
from workers.pipelines.reuse_adapter_package import AdapterPackagePredictor
from workers.pipelines.reuse_text import adapter_from_files, arrow_delta, embedding, layer_states, lora_delta
from workers.sandbox.runner import run_model

pytestmark = pytest.mark.django_db
TEXTS = ["the cat sat on the mat", "stocks fell sharply today", "a goal in the last minute"]


@pytest.fixture(autouse=True)
def _no_active_limit(settings: Any) -> None:
    settings.LWM_SUBMISSION_MAX_ACTIVE = 1000


def _adapter(seed: int) -> Any:
    return adapter_from_files(lora_files(r=4, seed=seed), base_model_key="all-minilm-l6-v2")


def test_the_hook_runtime_embeds_like_peft_in_the_sandbox():
    files = lora_files(r=4, seed=3)
    adapter = adapter_from_files(files, base_model_key="all-minilm-l6-v2")
    ours = embedding(layer_states(TEXTS, lora_delta(adapter), list(adapter.factors)))
    reference = run_model(files, np.array(TEXTS), kind="peft_lora", base_model_path=minilm_path())
    assert_allclose(ours, reference, atol=2e-5)
    base = embedding(layer_states(TEXTS))
    assert np.abs(base - reference).max() > 1e-3  # the adapter changed something measurable


def test_arrow_over_copies_of_one_adapter_is_that_adapter():
    # Routing weights sum to 1, so a library of identical adapters must act as one of them.
    adapter = _adapter(5)
    router = ArrowRouter(top_k=2).fit([adapter, adapter])
    modules = sorted(adapter.factors)
    assert_allclose(
        embedding(layer_states(TEXTS, arrow_delta(router), modules)),
        embedding(layer_states(TEXTS, lora_delta(adapter), modules)),
        atol=1e-6,
    )


def test_read_texts_names_the_bad_line():
    with pytest.raises(ValidationFailed) as err:
        read_texts(b'{"text": "fine"}\n{"txt": "oops"}\n', field="data")
    assert err.value.code == "submission:user:bad-format" and "line 2" in str(err.value)
    with pytest.raises(ValidationFailed) as err:
        read_texts(b'{"text": "a"}\n', field="labelled", labelled=True)
    assert err.value.code == "submission:user:missing-labels"


def _submit(
    owner: Any, texts: list[str], labels: list[str] | None, requirements: dict[str, Any]
) -> Submission:
    extra = {}
    if labels is not None:
        extra = {
            "labelled": ContentFile(jsonl_bytes(texts, labels), name="l.jsonl"),
            "labelled_format": "jsonl",
        }
    return submission_create(
        owner=owner,
        data_format="jsonl",
        data=ContentFile(jsonl_bytes(texts), name="d.jsonl"),
        modality="text",
        requirements=requirements,
        **extra,
    )


def test_a_labelled_text_task_ranks_adapters_by_their_layers_and_packages_a_publishable_sum(
    bob, alice, report
):
    market = adapter_market_create(owner=bob)
    sports, y_s = topic_texts("sports")
    finance, y_f = topic_texts("finance")
    texts, labels = sports + finance, y_s + y_f
    requirements = {
        "kind": "adapter",
        "feature_space": market.space.key,
        "methods": ["lora_weighted_sum"],
        "negate": [market.learnwares["cooking"].id],
        "max_modules": 2,
    }
    submission = _submit(alice, texts, labels, requirements)
    reuse_run(submission_id=str(submission.id), report=report)
    submission = Submission.objects.get(id=submission.id)
    results = submission.results

    # Ranking: each candidate's LogME is the layer-mean score of its own hidden states, recomputed here.
    by_version = {v.id: t for t, v in market.versions.items()}
    candidates = results["rank"]["candidates"]
    assert {c["version_id"] for c in candidates} == {v.id for v in market.versions.values()}
    for c in candidates:
        adapter = adapter_from_files(
            market.files[by_version[c["version_id"]]], base_model_key="all-minilm-l6-v2"
        )
        states = layer_states(texts, lora_delta(adapter), list(adapter.factors))
        assert len(states) == c["layers"] == 6
        expected = score_layers(states, np.asarray(labels), estimator="logme", aggregation="mean").score
        assert_allclose(c["scores"]["logme"], expected, rtol=1e-6)
    assert [c["rank"] for c in candidates] == list(range(1, len(candidates) + 1))

    # The package is a publishable adapter whose dW is the weighted sum minus the negated adapter.
    assemble = results["assemble"]
    assert assemble["chosen"] == "lora_weighted_sum"
    content = submission.package.open("rb").read()
    package = package_inspect(content, require_spec=True)
    assert package.manifest["kind"] == "adapter" and package.artifact_format == "peft_lora"
    members = [by_version[m["version_id"]] for m in assemble["members"]]
    weights = np.array(assemble["methods"][0]["parameters"]["weights"])
    own = [
        adapter_from_files(market.files[t], base_model_key="x").delta_weights() for t in [*members, "cooking"]
    ]
    signed = np.concatenate([weights, [-weights.mean()]])
    merged = adapter_from_files(package.artifact, base_model_key="x").delta_weights()
    for module, dW in merged.items():
        assert_allclose(dW, sum(w * d[module] for w, d in zip(signed, own, strict=True)), atol=1e-6)

    # It predicts: the sandbox (PEFT) and the package's predictor embed alike; the head gives classes.
    predictor = AdapterPackagePredictor.from_bytes(content)
    sandboxed = run_model(
        package.artifact, np.array(texts[:4]), kind="peft_lora", base_model_path=minilm_path()
    )
    assert_allclose(predictor.embed(texts[:4]), sandboxed, atol=2e-5)
    assert set(predictor.predict(texts).tolist()) <= {"pos", "neg"}
    evaluation = results["evaluate"]
    assert evaluation["chosen_score"] == evaluation["methods"]["lora_weighted_sum"]["accuracy"]
