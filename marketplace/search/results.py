"""Search results as plain dicts (the API's and the job's output), with one-line explanations."""

from __future__ import annotations

from typing import Any

from django.db.models import Model

from marketplace.learnwares.models import LearnwareVersion
from marketplace.search.selectors import DataSearchResult, TextSearchResult


def _card(version: LearnwareVersion) -> dict[str, Any]:
    lw = version.learnware
    return {"learnware_id": lw.id, "version_id": version.id, "version": version.number, "name": lw.name, "slug": lw.slug,
            "owner": lw.owner.username, "kind": lw.kind, "modality": lw.modality, "task": lw.task,
            "license": lw.license, "tags": lw.tags}


def data_result_dict(result: DataSearchResult) -> dict[str, Any]:
    mix = result.mixture
    weights = {int(i): float(w) for i, w in zip(mix.ids, mix.weights, strict=True)} if mix is not None and mix.proposed else {}
    items = []
    for rank, (vid, mmd2, sk) in enumerate(zip(result.ids.tolist(), result.mmd2.tolist(), result.sketch_distance.tolist(), strict=True)):
        version: Model = result.versions[int(vid)]
        weight = weights.get(int(vid))
        note = f"MMD² {mmd2:.4g} to your data (sketch estimate {sk:.4g})"
        if rank == 0:
            note = "best single match: " + note
        if weight is not None:
            note += f"; weight {weight:.2f} in the proposed mixture"
        items.append({**_card(version), "mmd2": mmd2, "sketch_distance": sk, "mixture_weight": weight, "explanation": note})
    mixture = None
    if mix is not None:
        mixture = {"proposed": mix.proposed, "mmd2": mix.mmd2, "best_single_mmd2": mix.best_single_mmd2,
                   "best_single_version_id": mix.best_single_id, "noise_mmd2": mix.noise_mmd2,
                   "components": [{"version_id": v, "weight": w} for v, w in weights.items()], "explanation": mix.reason}
    return {"feature_space": result.space.key, "generation": result.generation, "results": items, "mixture": mixture}


def text_result_dict(result: TextSearchResult) -> dict[str, Any]:
    items = []
    for version, cosine, rank in result.items:
        parts = [f"cosine {cosine:.3f} to the card" if cosine is not None else "",
                 f"full-text rank {rank:.3g}" if rank is not None else ""]
        note = "; ".join(p for p in parts if p) or "matches the filters (newest first)"
        items.append({**_card(version), "similarity": cosine, "text_rank": rank, "explanation": note})
    return {"generation": result.generation, "results": items}
