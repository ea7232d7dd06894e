"""Stage ``identify``: single-learnware ranking by MMD and the calibrated mixture proposal,
through the search service (permissions and filters applied inside the search)."""

from __future__ import annotations

from typing import Any

import numpy as np

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.models import Learnware, LearnwareVersion
from marketplace.learnwares.services.adapter_bases import is_base_space
from marketplace.search import store
from marketplace.search.index import Hits
from marketplace.search.ranking import MixtureProposal, propose_mixture
from marketplace.search.results import mixture_dict, units_note
from marketplace.search.same_units import SAME
from marketplace.search.selectors import search_by_data
from specs.adapter_runtime import ADAPTER_BASE
from workers.base import Report
from workers.pipelines.reuse_base_pins import base_pin_note, run_base_version
from workers.pipelines.reuse_context import ReuseContext
from workers.pipelines.reuse_results import (
    IdentifyResult,
    Mixture,
    MixtureComponent,
    RankedSingle,
    VersionCard,
)
from workers.pipelines.reuse_shared import max_modules, user_rows, user_spec

SHOWN = 20  # singles kept in the result (the search re-ranks its top 100 exactly)


def _check_named_learnwares(ctx: ReuseContext) -> None:
    """Every learnware named in the requirements must exist and be visible to the user; the error
    names the field that holds the unknown ids (``learnwares`` or ``exclude``)."""
    for key in ("learnwares", "exclude"):
        named = set(ctx.requirements.get(key, []))
        if not named:
            continue
        visible = set(
            Learnware.objects.visible_to(ctx.submission.owner)
            .filter(id__in=named)
            .values_list("id", flat=True)
        )
        unknown = sorted(named - visible)
        if unknown:
            raise ValidationFailed(
                f"requirements.{key}: unknown learnware ids {unknown}",
                code="submission:user:unknown-learnware",
                details={f"requirements.{key}": [f"unknown ids {unknown}"]},
            )


def _search_filters(ctx: ReuseContext) -> dict[str, Any]:
    filters: dict[str, Any] = {"modality": ctx.submission.modality, "task": ctx.submission.task}
    if ctx.adapter_mode:
        # Adapters output embeddings; the user's task is solved by a head fitted on them.
        # Adapters on the base whose encoder space the run is in (the MiniLM's, or a published base's).
        filters.update(
            task="embedding", base_model=ctx.space.encoder_id if is_base_space(ctx.space) else ADAPTER_BASE
        )
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


def _card(v: LearnwareVersion, run_base: tuple[int, int] | None) -> VersionCard:
    """``run_base``: (number, id) of the base version a run in a published base's space embeds with."""
    lw = v.learnware
    card: VersionCard = {
        "learnware_id": lw.id,
        "version_id": v.id,
        "version": v.number,
        "name": lw.name,
        "license": lw.license,
        "sha256": v.artifact_sha256,
    }
    if run_base is not None:  # the base version it was trained on, against the run's
        card["base_pin"] = base_pin_note(v.base_pin or {}, *run_base)
    return card


def run(ctx: ReuseContext, report: Report) -> IdentifyResult:
    """Rank learnwares by MMD to the user's RKME and propose a mixture when it is significant."""
    _check_named_learnwares(ctx)
    spec = user_spec(ctx)
    components = max(max_modules(ctx), 2)
    rows = user_rows(ctx)
    result = search_by_data(
        user=ctx.submission.owner,
        feature_space=ctx.space.key,
        Z=spec.Z_,
        beta=spec.beta_,
        n_samples=spec.n_samples_,
        k=100,
        filters=_search_filters(ctx),
        mixture=True,
        max_components=components,
        rows=rows,
        user_rms=ctx.user_rms,  # the same-units prior (marketplace/search/same_units.py)
    )
    allowed = _allowed(ctx, result.versions)
    keep = np.array([int(i) in allowed for i in result.ids], dtype=bool)
    if not keep.any():
        raise ValidationFailed(
            f"no learnware in feature space {ctx.space.key} meets the requirements",
            code="submission:user:no-candidates",
        )
    hits = Hits(result.ids[keep], result.mmd2[keep], result.sketch_distance[keep])
    order = np.argsort(hits.mmd2, kind="stable")
    hits = Hits(hits.ids[order], hits.mmd2[order], hits.sketch_distance[order])
    mixture = result.mixture
    units = result.units
    if mixture is None or not set(int(i) for i in mixture.ids) <= allowed:
        # The search's mixture used a learnware the requirements exclude: propose again among the allowed,
        # on the unit-free ranking as the search does.
        free = hits
        if units is not None:
            free_mmd2 = np.array(
                [units.free_mmd2.get(int(v), m) for v, m in zip(hits.ids, hits.mmd2, strict=True)]
            )
            o = np.argsort(free_mmd2, kind="stable")
            free = Hits(hits.ids[o], free_mmd2[o], hits.sketch_distance[o])
        mixture = (
            propose_mixture(
                store.space_index(ctx.space),
                spec.Z_,
                spec.beta_,
                free,
                n_samples=spec.n_samples_,
                max_components=components,
                rows=rows,
            )
            if hits.ids.size >= 2
            else None
        )
    columns = (ctx.space.schema or {}).get("columns")
    run_base = None if ctx.adapter_mode else run_base_version(ctx.spec_result.base_version_id)
    versions = dict(result.versions)
    missing = [int(v) for v in (mixture.ids if mixture is not None else []) if int(v) not in versions]
    versions.update(LearnwareVersion.objects.select_related("learnware").in_bulk(missing))
    singles = [
        RankedSingle(
            **_card(versions[int(v)], run_base),
            mmd2=float(m),
            sketch_distance=float(s),
            rank=r + 1,
            explanation=_single_note(float(m), units.for_candidate(int(v), columns) if units else None),
        )
        for r, (v, m, s) in enumerate(
            zip(hits.ids[:SHOWN], hits.mmd2[:SHOWN], hits.sketch_distance[:SHOWN], strict=True)
        )
    ]
    return IdentifyResult(
        singles=singles,
        mixture=_mixture_dict(mixture, versions, run_base),
        feature_space=ctx.space.key,
        explanation=f"{len(singles)} learnwares ranked by squared MMD; "
        + (f"{units.reason}; " if units is not None else "")
        + (mixture.reason if mixture is not None else "one candidate only: no mixture"),
    )


def _single_note(mmd2: float, seen: dict[str, Any] | None) -> str:
    """One single's explanation: its MMD² and, in a unit-free table space, the comparison that ranked it."""
    note = (
        f"squared MMD {mmd2:.4g} between your data and this learnware's training distribution "
        "(0 = same distribution)"
    )
    if seen is None:
        return note
    how = (
        "your rows taken in this learnware's units"
        if seen["comparison"] == SAME
        else "both sides unit-free (each divided by its own RMS)"
    )
    return f"{note}; compared with {how}{units_note(seen)}"


def _mixture_dict(
    mixture: MixtureProposal | None, versions: dict[int, LearnwareVersion], run_base: tuple[int, int] | None
) -> Mixture:
    if mixture is None:
        return {
            "proposed": False,
            "components": [],
            "suggestion": None,
            "explanation": "one candidate only: no mixture",
        }
    out = mixture_dict(mixture, versions)
    assert out is not None

    def cards(listed: list[dict[str, Any]]) -> list[MixtureComponent]:
        return [
            MixtureComponent(
                **_card(versions[int(c["version_id"])], run_base),
                weight=c["weight"],
                confidence=c["confidence"],
            )
            for c in listed
        ]

    suggestion = out["suggestion"]
    if suggestion is not None:
        suggestion = {**suggestion, "components": cards(suggestion["components"])}
    return {**out, "components": cards(out["components"]), "suggestion": suggestion}  # type: ignore[typeddict-item]
