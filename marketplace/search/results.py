"""Search results as plain dicts (the API's and the job's output), with one-line explanations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from marketplace.learnwares.models import LearnwareVersion
from marketplace.search.ranking import ALPHA, MixtureProposal
from marketplace.search.selectors import DataSearchResult, TextSearchResult


def _card(version: LearnwareVersion) -> dict[str, Any]:
    lw = version.learnware
    return {
        "learnware_id": lw.id,
        "version_id": version.id,
        "version": version.number,
        "name": lw.name,
        "slug": lw.slug,
        "owner": lw.owner.username,
        "kind": lw.kind,
        "modality": lw.modality,
        "task": lw.task,
        "license": lw.license,
        "tags": lw.tags,
    }


def _component(version: LearnwareVersion, weight: float, share: float) -> dict[str, Any]:
    lw = version.learnware
    return {
        "learnware_id": lw.id,
        "version_id": version.id,
        "version": version.number,
        "name": lw.name,
        "weight": weight,
        "confidence": share,
    }


def mixture_dict(
    mix: MixtureProposal | None, versions: Mapping[int, LearnwareVersion]
) -> dict[str, Any] | None:
    """The mixture block of a search result and of a submission's identify stage.

    ``components`` holds the proposed (significant) mixture only; a plausible but not
    significant one is under ``suggestion`` with the same fields. Each component carries its
    learnware id, name and version, its weight, and as ``confidence`` its share of the MMD²
    gain (the MMD² the mixture loses without it, normalised).
    """
    if mix is None:
        return None
    listed = [
        _component(versions[int(v)], float(w), float(s))
        for v, w, s in zip(
            mix.ids, mix.weights, mix.shares if mix.shares is not None else np.ones(len(mix.ids)), strict=True
        )
    ]
    suggestion = None
    if mix.suggested:
        suggestion = {
            "components": listed,
            "mmd2": mix.mmd2,
            "gain": mix.gain,
            "p_value": mix.p_value,
            "explanation": mix.reason,
        }
    return {
        "proposed": mix.proposed,
        "mmd2": mix.mmd2,
        "best_single_mmd2": mix.best_single_mmd2,
        "best_single_version_id": mix.best_single_id,
        "noise_mmd2": mix.noise_mmd2,
        "p_value": mix.p_value,
        "alpha": ALPHA,
        "gain_quantile": mix.gain_quantile,
        "components": listed if mix.proposed else [],
        "suggestion": suggestion,
        "explanation": mix.reason,
    }


def data_result_dict(result: DataSearchResult) -> dict[str, Any]:
    mix = result.mixture
    weights = (
        {int(i): float(w) for i, w in zip(mix.ids, mix.weights, strict=True)}
        if mix is not None and mix.proposed
        else {}
    )
    units = result.units
    columns = (result.space.schema or {}).get("columns") if units is not None else None
    items = []
    for rank, (vid, mmd2, sk) in enumerate(
        zip(result.ids.tolist(), result.mmd2.tolist(), result.sketch_distance.tolist(), strict=True)
    ):
        version: LearnwareVersion = result.versions[int(vid)]
        weight = weights.get(int(vid))
        seen = units.for_candidate(vid, columns) if units is not None else None
        note = f"MMD² {mmd2:.4g} to your data (sketch estimate {sk:.4g})"
        if seen is not None:
            note = f"{seen['comparison']} " + note + units_note(seen)
        if rank == 0:
            note = "best single match: " + note
        if weight is not None:
            note += f"; weight {weight:.2f} in the proposed mixture"
        items.append(
            {
                **_card(version),
                "mmd2": mmd2,
                "sketch_distance": sk,
                "mixture_weight": weight,
                "units": seen,
                "explanation": note,
            }
        )
    return {
        "feature_space": result.space.key,
        "generation": result.generation,
        "results": items,
        "mixture": mixture_dict(mix, result.versions),
        "units": units.to_dict() if units is not None else None,
    }


def units_note(seen: dict[str, Any]) -> str:
    """The explanation's units clause: which columns of the user differ from the learnware's units."""
    summary = seen.get("units")
    if not summary or not summary["differ"]:
        return "; your columns are in this learnware's units" if summary else ""
    worst = ", ".join(f"{c['column']} x{c['factor']:.3g}" for c in summary["largest"])
    return f"; {summary['columns_differing']} of your columns in other units than this learnware's ({worst})"


def text_result_dict(result: TextSearchResult) -> dict[str, Any]:
    items = []
    for version, cosine, rank in result.items:
        parts = [
            f"cosine {cosine:.3f} to the card" if cosine is not None else "",
            f"full-text rank {rank:.3g}" if rank is not None else "",
        ]
        note = "; ".join(p for p in parts if p) or "matches the filters (newest first)"
        items.append({**_card(version), "similarity": cosine, "text_rank": rank, "explanation": note})
    return {"generation": result.generation, "results": items}
