"""Our market on a task: the user's rows (and, in a second submission, the 50 labelled rows too)
go through the submission service and the reuse pipeline in this process; the delivered package
is then run on the user's 200 rows as the user would run it (PackagePredictor)."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from benchmarks.markets.base import MarketData

FREE, LABELLED = "free", "lab"


def _csv(columns: list[str], X: np.ndarray, y: np.ndarray | None = None) -> bytes:
    header = columns + (["label"] if y is not None else [])
    lines = [",".join(header)] + [
        ",".join([*(repr(float(v)) for v in row), *([str(y[i])] if y is not None else [])])
        for i, row in enumerate(X)
    ]
    return ("\n".join(lines) + "\n").encode()


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _jsonl(texts: list[str], labels: np.ndarray | None = None) -> bytes:
    rows = [
        {"text": t, **({"label": str(labels[i])} if labels is not None else {})} for i, t in enumerate(texts)
    ]
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


def user_files(market: MarketData, task: dict[str, Any], labelled: bool) -> dict[str, Any]:
    """submission_create's keyword arguments for the user's data (in the user's units)."""
    from django.core.files.base import ContentFile

    scale = task["units"] if task["units"] is not None else 1.0
    if market.modality == "table":
        data, fmt = _csv(market.columns, task["X"] * scale), "csv"
        lab = _csv(market.columns, task["X_l"] * scale, task["y_l"]), "csv"
    elif market.modality == "image":
        data, fmt = _npz(images=task["X"]), "npz"
        lab = _npz(images=task["X_l"], y=task["y_l"]), "npz"
    else:
        data, fmt = _jsonl(task["texts"]), "jsonl"
        lab = _jsonl(task["texts_l"], task["y_l"]), "jsonl"
    extra = (
        {"labelled": ContentFile(lab[0], name=f"l.{lab[1]}"), "labelled_format": lab[1]} if labelled else {}
    )
    return {
        "data_format": fmt,
        "data": ContentFile(data, name=f"d.{fmt}"),
        "modality": market.modality,
        **extra,
    }


def package_inputs(market: MarketData, task: dict[str, Any]) -> Any:
    """What the user feeds the delivered package: table rows in the user's units, images, or
    (text) the rows' embeddings in the market's text space."""
    return task["X"] * task["units"] if task["units"] is not None else task["X"]


def run(
    market: MarketData,
    task: dict[str, Any],
    owner: Any,
    by_version: dict[int, str],
    modes: tuple[bool, ...] = (False, True),
) -> None:
    """Submit the task without and/or with its labels (``modes``: False = rows only, True = with the
    labelled rows); the figures land in ``task`` under ``free_*`` and ``lab_*``."""
    from marketplace.core.exceptions import ApplicationError
    from marketplace.submissions.models import Submission
    from marketplace.submissions.services import submission_create
    from workers.pipelines.reuse import reuse_run
    from workers.pipelines.reuse_package import PackagePredictor

    for labelled in modes:
        key = LABELLED if labelled else FREE
        try:
            s = submission_create(owner=owner, **user_files(market, task, labelled))
            reuse_run(submission_id=str(s.id), report=lambda *a, **k: None)
        except ApplicationError as exc:  # a refusal: it must be a named user error
            task[f"{key}_refused"] = f"{exc.code}: {exc}"
            continue
        except Exception as exc:  # noqa: BLE001 - a crash is a result here
            task[f"{key}_crash"] = f"{type(exc).__name__}: {exc}"
            continue
        s = Submission.objects.get(id=s.id)
        identify = s.results["identify"]
        task[f"{key}_order"] = [by_version.get(x["version_id"], "?") for x in identify["singles"]]
        mix = identify.get("mixture") or {}
        task[f"{key}_mixture"] = (
            {by_version.get(c["version_id"], "?") for c in mix.get("components", [])}
            if mix.get("proposed")
            else set()
        )
        try:
            pred = PackagePredictor.from_bytes(s.package.open("rb").read()).predict(
                package_inputs(market, task)
            )
            task[f"{key}_acc"] = float(np.mean(np.asarray(pred).astype(str) == task["y"]))
        except Exception as exc:  # noqa: BLE001
            task[f"{key}_crash"] = f"package: {type(exc).__name__}: {exc}"
            continue
        task[f"{key}_method"] = (s.results.get("assemble") or {}).get("chosen")
        # The label-free choice's evidence (route shares, disagreement, class coverage), so a saved
        # run tells why a two-domain user was routed, averaged or given the best single.
        task[f"{key}_label_free"] = (s.results.get("assemble") or {}).get("label_free")
        if labelled:
            task["evaluate"] = s.results.get("evaluate") or {}


def scratch(market: MarketData, task: dict[str, Any]) -> None:
    """The from-scratch model the labelled report compared with, fitted on the same 50 rows, on the
    user's 200 rows (the pipeline's own scratch models; images as pixels, texts as embeddings)."""
    from workers.pipelines.reuse_scratch import scratch_fit, scratch_models

    ev = task.get("evaluate") or {}
    name = ((ev.get("baselines") or {}).get("from_scratch") or {}).get("best") or "logistic_regression"
    flat = lambda X: X.reshape(X.shape[0], -1)  # noqa: E731
    scale = task["units"] if task["units"] is not None else 1.0
    classes = sorted(set(task["y_l"]))
    codes = np.asarray([classes.index(c) for c in task["y_l"]])
    model = scratch_fit(
        scratch_models("classification", 0)[name], flat(task["X_l"] * scale), codes, "classification"
    )
    pred = (
        np.full(task["y"].shape[0], model)
        if isinstance(model, int)
        else model.predict(flat(task["X"] * scale))
    )
    task["scratch_acc"] = float(np.mean(np.asarray(classes)[pred] == task["y"]))
