"""Which base model should my task build on? ``Client.rank_models`` (texts),
``Client.rank_image_models`` (images) and ``lwm rank-models``.

The labelled texts travel as a JSONL labelled sample (images as an NPZ of ``images`` and ``y``) with
``requirements.kind = "base_model"``; the market ranks every base model of that modality you can see
by layer-wise LogME / H-score / kNN (each model runs in its sandbox) and evaluates a logistic head on
the first against a from-scratch model (TF-IDF for texts, pixels for images).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lwm_client.errors import ConfigError
from lwm_client.models import Submission, build

if TYPE_CHECKING:
    from lwm_client.http import Transport


def _texts_jsonl(texts: Sequence[str], labels: Sequence[Any]) -> bytes:
    if len(texts) != len(labels):
        raise ConfigError(
            f"{len(texts)} texts but {len(labels)} labels: give one label per text", code="rank:user:labels"
        )
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise ConfigError("texts must be a non-empty list of non-empty strings", code="rank:user:texts")
    rows = (json.dumps({"text": t, "label": str(y)}) for t, y in zip(texts, labels, strict=True))
    return ("\n".join(rows) + "\n").encode()


def _images_npz(images: Any, labels: Sequence[Any]) -> bytes:
    import numpy as np

    array = np.asarray(images)
    if array.ndim not in (3, 4) or array.shape[0] == 0 or not np.issubdtype(array.dtype, np.number):
        raise ConfigError(
            f"images must be a numeric array (n, H, W), (n, H, W, C) or (n, C, H, W), got {array.shape}",
            code="rank:user:images",
        )
    if array.shape[0] != len(labels):
        raise ConfigError(
            f"{array.shape[0]} images but {len(labels)} labels: give one label per image",
            code="rank:user:labels",
        )
    buffer = io.BytesIO()
    np.savez(buffer, images=array, y=np.asarray([str(y) for y in labels]))
    return buffer.getvalue()


def read_labelled_images(path: str | Path, labels: str) -> tuple[Any, list[str]]:
    """(images, labels) of an NPZ holding ``images`` and the labels under ``labels`` (or ``y``).

    Raises
    ------
    ConfigError
        Not an NPZ, or without those arrays (``rank:user:*``); read without pickle.
    """
    import numpy as np

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            key = labels if labels in data.files else "y"
            if "images" not in data.files or key not in data.files:
                raise ConfigError(
                    f"{path.name}: an NPZ needs an 'images' array and a {labels!r} (or 'y') array, "
                    f"found {sorted(data.files)}",
                    code="rank:user:columns",
                )
            return data["images"], [str(y) for y in data[key]]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path.name}: not a readable NPZ ({exc})", code="rank:user:bad-file") from None


def read_labelled_texts(path: str | Path, labels: str, text: str = "text") -> tuple[list[str], list[str]]:
    """(texts, labels) of a JSONL (one object a line) or CSV (header row) file.

    Raises
    ------
    ConfigError
        A line that is not JSON, or a row without the text or label column (``rank:user:*``).
    """
    path = Path(path)
    raw = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        rows: list[Any] = list(csv.DictReader(io.StringIO(raw)))
    else:
        rows = []
        for number, line in enumerate(raw.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    raise ConfigError(
                        f"{path.name}: line {number} is not JSON", code="rank:user:bad-file"
                    ) from None
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or row.get(text) in (None, "") or row.get(labels) in (None, ""):
            raise ConfigError(
                f"{path.name}: row {number} needs a {text!r} and a {labels!r} value", code="rank:user:columns"
            )
    return [str(r[text]) for r in rows], [str(r[labels]) for r in rows]


class ModelSelectionMixin:
    """``Client.rank_models`` (the client holds ``http`` and ``wait_submission``)."""

    http: Transport
    wait_submission: Callable[..., Submission]

    def rank_models(
        self,
        texts: Sequence[str],
        labels: Sequence[Any],
        *,
        time_budget_s: float | None = None,
        aggregation: str = "mean",
        name: str = "",
        wait: bool = True,
        timeout: float = 900.0,
        adapter: bool = False,
    ) -> Submission:
        """Rank the market's base models for a labelled text task; with ``wait``, the finished
        submission, whose ``results["rank"]`` holds every model's per-layer scores and
        ``results["evaluate"]`` the head against TF-IDF from scratch (:func:`ranking_table` prints them).
        With ``adapter``, a LoRA adapter and a head are also trained on the chosen base (in the market's
        sandbox), compared on the same folds (``results["evaluate"]["adapter"]``) and delivered when
        they beat the frozen head.
        """
        files = {"labelled": ("labelled.jsonl", _texts_jsonl(texts, labels), "application/json")}
        return self._rank("text", files, time_budget_s, aggregation, name, wait, timeout, adapter)

    def rank_image_models(
        self,
        images: Any,
        labels: Sequence[Any],
        *,
        time_budget_s: float | None = None,
        aggregation: str = "mean",
        name: str = "",
        wait: bool = True,
        timeout: float = 900.0,
    ) -> Submission:
        """Rank the market's image base models for labelled images (an array (n, H, W[, C]) or
        (n, C, H, W), 0..255 or [0, 1] as the server reads them); the result is as
        :meth:`rank_models`', the head compared with a from-scratch model on the pixels."""
        files = {"labelled": ("labelled.npz", _images_npz(images, labels), "application/octet-stream")}
        return self._rank("image", files, time_budget_s, aggregation, name, wait, timeout)

    def _rank(
        self,
        modality: str,
        files: dict[str, tuple[str, bytes, str]],
        time_budget_s: float | None,
        aggregation: str,
        name: str,
        wait: bool,
        timeout: float,
        adapter: bool = False,
    ) -> Submission:
        requirements: dict[str, Any] = {"kind": "base_model", "aggregation": aggregation}
        if adapter:
            requirements["adapter"] = True
        if time_budget_s is not None:
            requirements["time_budget_s"] = time_budget_s
        form = {"requirements": json.dumps(requirements), "modality": modality} | (
            {"name": name} if name else {}
        )
        body = self.http.json(
            "POST", "submissions/", idempotency_key=uuid.uuid4().hex, data=form, files=files
        )
        submission = build(Submission, body["submission"])
        return self.wait_submission(submission.id, timeout=timeout) if wait else submission


def ranking_table(submission: Submission) -> str:
    """The ranking as text: one row per model (combined and each estimator's mean/best score and
    best layer), the skipped models, and the head's evaluation."""
    rank = submission.results.get("rank") or {}
    estimators = rank.get("estimators") or []
    head = f"{'#':>2}  {'base model':<28} {'combined':>8}" + "".join(
        f" {e + ' mean/best@layer':>26}" for e in estimators
    )
    lines = [head]
    for c in rank.get("candidates") or []:
        cells = "".join(
            f" {s['mean']:>9.4g}/{s['best']:<9.4g}@{s['best_layer']:<4d}"
            for s in (c["scores"][e] for e in estimators)
        )
        lines.append(f"{c['rank']:>2}  {c['name'][:28]:<28} {c['combined']:>8.3f}{cells}")
    for s in rank.get("skipped_models") or []:
        lines.append(f" -  {s['name'][:28]:<28} skipped: {s['reason']}")
    if rank.get("explanation"):
        lines.append(rank["explanation"])
    evaluation = submission.results.get("evaluate") or {}
    if evaluation.get("statement"):
        lines.append(evaluation["statement"])
    return "\n".join(lines)


def cmd_rank_models(args: argparse.Namespace, make_client: Callable[[], Any]) -> tuple[Any, str]:
    options = {
        "time_budget_s": args.time_budget,
        "aggregation": args.aggregation,
        "timeout": args.wait_timeout,
    }
    if Path(args.data).suffix.lower() == ".npz":  # labelled images; mistakes before any request
        images, image_labels = read_labelled_images(args.data, args.labels)
        submission = make_client().rank_image_models(images, image_labels, **options)
    else:
        texts, labels = read_labelled_texts(args.data, args.labels, args.text)
        submission = make_client().rank_models(texts, labels, adapter=args.adapter, **options)
    return {"submission": submission.id, "results": submission.results}, ranking_table(submission)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    s = sub.add_parser(
        "rank-models",
        help="rank the market's base models for labelled texts (JSONL, CSV) or images (NPZ: images, labels)",
    )
    (
        s.add_argument("data"),
        s.add_argument("--labels", default="label", help="the label column (default: label)"),
    )
    s.add_argument("--text", default="text", help="the text column (default: text)")
    s.add_argument("--time-budget", type=float, help="seconds; base models not started by then are skipped")
    s.add_argument("--aggregation", choices=["mean", "best"], default="mean")
    s.add_argument(
        "--adapter",
        action="store_true",
        help="texts: also train a LoRA adapter + head on the chosen base (delivered when it beats the head)",
    )
    s.add_argument("--wait-timeout", type=float, default=900)
    return s
