"""The portal's view of model selection's LoRA adapter (``results.evaluate.adapter``).

The worker stores one of two shapes (``workers.pipelines.model_selection_adapter``): a trained
adapter's scores and verdicts, or ``{"skipped": reason}`` when the time budget ran out. A submission
that did not ask for one (``requirements.adapter`` unset) has no ``adapter`` key; the page says so
for texts, where it could have been asked, and shows nothing for images, where it cannot.
"""

from __future__ import annotations

from typing import Any

# The paired verdict's words, read as "the adapter is <words> the frozen head / from scratch".
VERDICTS = {"better": "better than", "no_difference": "no different from", "worse": "worse than"}


def _verdict(adapter: dict[str, Any], key: str) -> dict[str, Any]:
    verdict = str(adapter.get(f"verdict_{key}") or "")
    return {
        "verdict": verdict,
        "words": VERDICTS.get(verdict, verdict),
        "difference": adapter.get(f"difference_{key}") or {},
    }


def adapter_view(
    evaluation: dict[str, Any], requirements: dict[str, Any], modality: str
) -> dict[str, Any] | None:
    """``state`` ("trained", "skipped" or "not_asked") with what the page shows of it; None for an
    image sample without the adapter (it cannot be asked for there)."""
    adapter = evaluation.get("adapter")
    if adapter is None:
        if requirements.get("adapter") or modality == "image":
            return None  # asked but not stored: an older result; or images, where it is refused
        return {"state": "not_asked"}
    if "skipped" in adapter:
        return {
            "state": "skipped",
            "reason": adapter["skipped"],
            "hyperparameters": adapter.get("hyperparameters"),
        }
    delivered = (
        bool(adapter.get("replaces_head")) and (evaluation.get("winner") or {}).get("kind") == "adapter"
    )
    return {
        "state": "trained",
        "name": adapter.get("name", "LoRA adapter"),
        "interval": adapter.get("scores") or {},
        "folds": adapter.get("folds") or {},
        "vs_head": _verdict(adapter, "vs_head"),
        "vs_scratch": _verdict(adapter, "vs_scratch"),
        "gain": adapter.get("gain_vs_head") or {},
        "delivered": delivered,
        "not_packaged": adapter.get("not_packaged", ""),
        "seconds": adapter.get("seconds"),
        "r": (adapter.get("hyperparameters") or {}).get("r"),
        "statement": adapter.get("statement", ""),
    }
