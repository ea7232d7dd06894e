"""Stage ``identify``: single-learnware ranking by MMD and the calibrated mixture proposal,
through the search service (permissions and filters applied inside the search)."""

from __future__ import annotations

from typing import Any

import numpy as np

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.models import Learnware, LearnwareVersion
from marketplace.search import store
from marketplace.search.index import Hits
from marketplace.search.ranking import propose_mixture
from marketplace.search.selectors import search_by_data
from workers.base import Report
from workers.pipelines.reuse_context import ReuseContext
from workers.pipelines.reuse_spec import user_spec

SHOWN = 20  # singles kept in the result (the search re-ranks its top 100 exactly)
DEFAULT_MAX_MODULES = 3
ADAPTER_BASE = "all-minilm-l6-v2"  # the only base model the text space has


def _check_named_learnwares(ctx: ReuseContext) -> None:
    """Every learnware named in the requirements must exist and be visible to the user."""
    named = set(ctx.requirements.get("learnwares", [])) | set(ctx.requirements.get("exclude", []))
    if not named:
        return
    visible = set(Learnware.objects.visible_to(ctx.submission.owner).filter(id__in=named).values_list("id", flat=True))
    unknown = sorted(named - visible)
    if unknown:
        raise ValidationFailed(f"requirements.learnwares: unknown learnware ids {unknown}",
                               code="submission:user:unknown-learnware", details={"requirements.learnwares": [f"unknown ids {unknown}"]})


def _search_filters(ctx: ReuseContext) -> dict[str, Any]:
    filters: dict[str, Any] = {"modality": ctx.submission.modality, "task": ctx.submission.task}
    if ctx.adapter_mode:
        # Adapters output embeddings; the user's task is solved by a head fitted on them.
        filters.update(task="embedding", base_model=ADAPTER_BASE)
    licenses = ctx.requirements.get("licenses") or []
    if len(licenses) == 1:
        filters["license"] = licenses[0]
    if ctx.requirements.get("tags"):
        filters["tags"] = list(ctx.requirements["tags"])
    return filters


def _allowed(ctx: ReuseContext, versions: dict[int, LearnwareVersion]) -> set[int]:
    """Version ids passing the requirements the search does not filter on itself."""
    req = ctx.requirements
    keep = set()
    for vid, v in versions.items():
        lw = v.learnware
        if req.get("learnwares") and lw.id not in req["learnwares"]:
            continue
        if lw.id in req.get("exclude", []):
            continue
        if req.get("licenses") and lw.license not in req["licenses"]:
            continue
        if req.get("max_model_size") and v.artifact_size > req["max_model_size"]:
            continue
        keep.add(vid)
    return keep


def _card(v: LearnwareVersion) -> dict[str, Any]:
    lw = v.learnware
    return {"learnware_id": lw.id, "version_id": v.id, "version": v.number, "name": lw.name, "license": lw.license,
            "sha256": v.artifact_sha256}


def run(ctx: ReuseContext, report: Report) -> dict[str, Any]:
    """Rank learnwares by MMD to the user's RKME and propose a mixture when it is significant."""
    _check_named_learnwares(ctx)
    spec = user_spec(ctx)
    max_modules = int(ctx.requirements.get("max_modules", DEFAULT_MAX_MODULES))
    result = search_by_data(user=ctx.submission.owner, feature_space=ctx.space.key, Z=spec.Z_, beta=spec.beta_,
                            n_samples=spec.n_samples_, k=100, filters=_search_filters(ctx), mixture=True,
                            max_components=max(max_modules, 2))
    allowed = _allowed(ctx, result.versions)
    keep = np.array([int(i) in allowed for i in result.ids], dtype=bool)
    if not keep.any():
        raise ValidationFailed(f"no learnware in feature space {ctx.space.key} meets the requirements",
                               code="submission:user:no-candidates")
    hits = Hits(result.ids[keep], result.mmd2[keep], result.sketch_distance[keep])
    order = np.argsort(hits.mmd2, kind="stable")
    hits = Hits(hits.ids[order], hits.mmd2[order], hits.sketch_distance[order])
    mixture = result.mixture
    if mixture is None or not set(int(i) for i in mixture.ids) <= allowed:
        # The search's mixture used a learnware the requirements exclude: propose again among the allowed.
        mixture = propose_mixture(store.get_index(ctx.space.key, ctx.space), spec.Z_, spec.beta_, hits,
                                  n_samples=spec.n_samples_, max_components=max(max_modules, 2)) if hits.ids.size >= 2 else None
    versions = result.versions
    singles = [{**_card(versions[int(v)]), "mmd2": float(m), "sketch_distance": float(s), "rank": r + 1,
                "explanation": f"squared MMD {m:.4g} between your data and this learnware's training distribution "
                               f"(0 = same distribution)"}
               for r, (v, m, s) in enumerate(zip(hits.ids[:SHOWN], hits.mmd2[:SHOWN], hits.sketch_distance[:SHOWN], strict=True))]
    return {"singles": singles, "mixture": _mixture_dict(mixture, versions), "feature_space": ctx.space.key,
            "explanation": f"{len(singles)} learnwares ranked by squared MMD; "
                           + (mixture.reason if mixture is not None else "one candidate only: no mixture")}


def _mixture_dict(mixture: Any, versions: dict[int, LearnwareVersion]) -> dict[str, Any]:
    if mixture is None:
        return {"proposed": False, "components": [], "explanation": "one candidate only: no mixture"}
    components = [{**_card(versions[int(v)]), "weight": float(w)} for v, w in zip(mixture.ids, mixture.weights, strict=True)]
    return {"proposed": bool(mixture.proposed), "components": components, "mmd2": float(mixture.mmd2),
            "best_single_version_id": int(mixture.best_single_id), "best_single_mmd2": float(mixture.best_single_mmd2),
            "noise_mmd2": None if mixture.noise_mmd2 is None else float(mixture.noise_mmd2), "explanation": mixture.reason}
