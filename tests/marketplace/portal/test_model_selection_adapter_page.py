"""The model-selection page shows ``results.evaluate.adapter``: the LoRA adapter's score and interval,
its verdicts against the frozen head and from scratch, whether it was delivered, or why it was not
trained (time budget, not asked). The stored results are built with the functions the worker stores
them with (``specs.evaluation``), and every stored string is escaped."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.core.files.base import ContentFile

from marketplace.jobs.choices import JobStatus
from marketplace.jobs.models import Job
from marketplace.submissions.models import Submission
from specs.evaluation import one_se_choice, paired_verdict, score_interval

pytestmark = pytest.mark.django_db
SHARE = 0.2
HEAD = [0.70, 0.75, 0.72, 0.68, 0.74, 0.71, 0.73, 0.70, 0.69, 0.72]
SCRATCH = [0.50, 0.55, 0.52, 0.48, 0.51, 0.50, 0.49, 0.53, 0.52, 0.50]
HOSTILE = '<script>alert("x")</script>'


def _evaluate(
    adapter_folds: list[float] | None, *, delivered: bool, name: str = "tiny-a v1"
) -> dict[str, Any]:
    """The evaluate stage's stored result (``BaseModelEvaluateResult``) with the adapter entry the
    worker's ``evaluate_adapter`` stores for ``adapter_folds`` on the first 5 folds."""
    evaluate: dict[str, Any] = {
        "kind": "base_model",
        "metric": "accuracy",
        "folds": {"k": 5, "repeats": 2, "n": 40},
        "head": {
            "name": f"logistic head on {name}",
            "interval": score_interval(HEAD, SHARE),
            "per_fold": HEAD,
        },
        "baseline": {"name": "TF-IDF", "interval": score_interval(SCRATCH, SHARE), "per_fold": SCRATCH},
        "verdict": "better",
        "difference": paired_verdict(HEAD, SCRATCH, SHARE)[1],
        "winner": {"kind": "base_model_head", "name": f"logistic head on {name}"},
        "statement": "A logistic head.",
        "package": "delivered: the head",
    }
    if adapter_folds is None:
        return evaluate
    vs_head, d_head = paired_verdict(adapter_folds, HEAD[:5], SHARE)
    vs_scratch, d_scratch = paired_verdict(adapter_folds, SCRATCH[:5], SHARE)
    _, gains = one_se_choice("head", {"head": HEAD[:5], "adapter": adapter_folds}, SHARE)
    evaluate["adapter"] = {
        "name": f"LoRA adapter + head on {name}",
        "scores": score_interval(adapter_folds, SHARE),
        "per_fold": adapter_folds,
        "folds": {"k": 5, "repeats": 1, "n": 40, "note": "the first repeat's folds of the evaluation"},
        "verdict_vs_head": vs_head,
        "difference_vs_head": d_head,
        "verdict_vs_scratch": vs_scratch,
        "difference_vs_scratch": d_scratch,
        "gain_vs_head": gains["adapter"],
        "replaces_head": delivered,
        "seconds": 12.5,
        "hyperparameters": {"r": 8},
        "statement": "The adapter statement.",
    }
    if delivered:
        evaluate["winner"] = {"kind": "adapter", "name": evaluate["adapter"]["name"]}
    return evaluate


def _page(
    web_for: Any, owner: Any, evaluate: dict[str, Any], requirements: dict[str, Any], **fields: Any
) -> str:
    job = Job.objects.create(kind="submission", owner=owner, status=JobStatus.SUCCEEDED, stage="evaluate")
    sub = Submission.objects.create(
        owner=owner,
        job=job,
        data_format="jsonl",
        modality=fields.get("modality", "text"),
        results={"evaluate": evaluate},
        requirements={"kind": "base_model", **requirements},
    )
    sub.package.save("package.zip", ContentFile(b"a package"), save=True)
    response = web_for(owner).get(f"/tasks/{sub.id}/")
    assert response.status_code == 200
    return response.content.decode()


def _block(page: str) -> str:
    """The adapter block's text with tags removed and entities decoded."""
    match = re.search(r'<div data-adapter="[a-z_]+">(.*?)</div>', page, re.S)
    assert match, "no adapter block"
    words = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())
    return words.replace(" :", ":")  # "<strong>Delivered</strong>:" reads "Delivered:"


def test_a_delivered_adapter_shows_its_interval_verdicts_and_the_adapter_download(web_for, alice):
    folds = [0.90, 0.92, 0.88, 0.91, 0.93]
    evaluate = _evaluate(folds, delivered=True)
    page = _page(web_for, alice, evaluate, {"adapter": True})
    assert 'data-adapter="trained"' in page and 'data-adapter-delivered="yes"' in page
    block, adapter = _block(page), evaluate["adapter"]
    low, high = adapter["scores"]["ci95"]
    assert f"{adapter['scores']['mean']:.3f} (95 % interval {low:.3f} – {high:.3f}, 5 folds" in block
    assert adapter["verdict_vs_head"] == "better" and "vs the frozen head: better than" in block
    assert f"mean gain {adapter['gain_vs_head']['gain']:.3f} against one standard error" in block
    assert f"{adapter['gain_vs_head']['se']:.3f}" in block
    d = adapter["difference_vs_scratch"]
    assert (
        f"vs from scratch: better than (difference {d['mean']:.3f}, 95 % interval {d['ci95'][0]:.3f}" in block
    )
    assert "Delivered: it replaces the frozen head" in block
    assert "Download the adapter" in page and "Download the head" not in page
    # The head and the baseline are still shown beside it.
    assert evaluate["head"]["name"] in page and f"{evaluate['head']['interval']['mean']:.3f}" in page


def test_an_adapter_that_does_not_beat_the_head_is_shown_as_kept_back(web_for, alice):
    folds = [0.70, 0.76, 0.71, 0.69, 0.73]
    evaluate = _evaluate(folds, delivered=False)
    assert evaluate["adapter"]["verdict_vs_head"] == "no_difference"
    page = _page(web_for, alice, evaluate, {"adapter": True})
    block = _block(page)
    assert 'data-adapter-delivered="no"' in page and "vs the frozen head: no different from" in block
    assert "Not delivered: the frozen head is kept" in block and "Download the head" in page
    # It beat the head but the budget left no time for the final training on every row.
    late = _evaluate([0.90, 0.92, 0.88, 0.91, 0.93], delivered=False)
    late["adapter"]["not_packaged"] = (
        "the time budget of 60.0 s would be exceeded (skipped the final training)"
    )
    block = _block(_page(web_for, alice, late, {"adapter": True}))
    assert f"Not delivered: {late['adapter']['not_packaged']}" in block
    assert "vs the frozen head: better than" in block


def test_a_skipped_adapter_says_why_and_every_stored_string_is_escaped(web_for, alice):
    evaluate = _evaluate(None, delivered=False, name=HOSTILE)
    evaluate["adapter"] = {
        "skipped": f"the time budget of 0.1 s would be exceeded {HOSTILE}",
        "hyperparameters": {},
    }
    page = _page(web_for, alice, evaluate, {"adapter": True})
    assert 'data-adapter="skipped"' in page and HOSTILE not in page
    assert html.escape(HOSTILE) in page
    assert (
        _block(page)
        == f"LoRA adapter + head Not trained: the time budget of 0.1 s would be exceeded {HOSTILE}"
    )
    trained = _evaluate([0.9, 0.9, 0.9, 0.9, 0.9], delivered=True, name=HOSTILE)
    assert HOSTILE not in _page(web_for, alice, trained, {"adapter": True})


def test_without_it_a_text_page_says_not_asked_and_an_image_page_shows_nothing(web_for, alice):
    page = _page(web_for, alice, _evaluate(None, delivered=False), {})
    assert 'data-adapter="not_asked"' in page and "Not asked for" in _block(page)
    assert "Download the head" in page
    image = _page(web_for, alice, _evaluate(None, delivered=False), {}, modality="image")
    assert "data-adapter" not in image
