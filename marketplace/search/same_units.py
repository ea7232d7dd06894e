"""The same-units prior of search by data in unit-free table spaces (docs/search.md, "Same units").

A unit-free space divides every upload by its own per-column RMS, so a user in thousands finds
learnwares fitted in units, but learnwares whose data differ mainly by scale (one carrier's
prices 30 % above another's) become the same point. Most users measure as the developers did,
so for each re-ranked candidate c the search also compares the user's rows *as if they were in
c's units* (divided by c's stored RMS ``unit_rms`` instead of their own) with c's RKME.

The rule, fixed before measuring. Under "the user measures in the developers' units" the
same-units fit of the right learnware differs from its unit-free fit only by the sampling error
of the user's own RMS, an MMD² of the order of the sampling noise; with a column in other units
(real unit changes are x1.6 and more, ``specs.units.UNIT_TOLERANCE``) it is orders of magnitude
above it. So the prior holds when the best same-units MMD² is within ``SLACK_NOISE`` sampling
noises (``specs.marginal.sampling_noise`` of the user's n rows and that learnware's m) of the best
unit-free MMD²: one noise for the RMS's sampling error, plus the one unit of slack
``specs.marginal.NOISE_UNITS`` gives for the RKMEs' reduction error. Then candidates are ranked by
their same-units MMD²; otherwise by the unit-free MMD² as before (the user is in other units),
and each candidate says by which factor its columns differ (``specs.units.units_summary``).

Only the k' candidates the exact stage re-ranks are compared (one kernel block each, like the
re-rank); candidates without a stored RMS (published before it was recorded) keep their
unit-free MMD² in either ranking. Mixtures are proposed on the unit-free ranking, unchanged.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from marketplace.search.index import Hits, SpaceIndex
from specs import self_term
from specs.marginal import NOISE_UNITS, rkme_sample_size, sampling_noise
from specs.rkme import TableStandardizer
from specs.units import same_units_mmd2, units_summary

SAME, FREE = "same units", "unit-free"
SLACK_NOISE = 1.0 + NOISE_UNITS  # sampling noises the same-units best may exceed the unit-free best by


@dataclass(frozen=True)
class UnitsCheck:
    """Which comparison ranked the candidates, with the evidence."""

    comparison: str  # SAME or FREE
    best_same_mmd2: float
    best_free_mmd2: float
    noise: float  # sampling noise of the user's rows and the best same-units candidate
    reason: str
    same_mmd2: dict[int, float] = field(default_factory=dict)  # candidates with a stored RMS
    free_mmd2: dict[int, float] = field(default_factory=dict)
    factors: dict[int, np.ndarray] = field(default_factory=dict)  # r_user / r_candidate per column

    def for_candidate(self, version_id: int, columns: list[str] | None) -> dict[str, Any]:
        """What one result says about units: the comparison used and, when the user's units differ
        from this learnware's, by which factor per column (user units per learnware unit)."""
        vid = int(version_id)
        out: dict[str, Any] = {
            "comparison": self.comparison if vid in self.same_mmd2 else FREE,
            "same_units_mmd2": self.same_mmd2.get(vid),
            "unit_free_mmd2": self.free_mmd2.get(vid),
        }
        if vid in self.factors:
            out["units"] = units_summary(self.factors[vid], columns)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "comparison": self.comparison,
            "best_same_units_mmd2": self.best_same_mmd2,
            "best_unit_free_mmd2": self.best_free_mmd2,
            "noise_mmd2": self.noise,
            "slack_noise": SLACK_NOISE,
            "explanation": self.reason,
        }


Stored = dict[int, tuple[np.ndarray, int | None] | None]
# Per index object, the RMS already read, for the generation it was read at: reading it means
# decoding each candidate's whole RKME JSON in the database, a few ms for k' = 100. Any change to
# the index (a publish, a rekey) bumps the generation and empties it; a reloaded index starts empty.
_known: weakref.WeakKeyDictionary[SpaceIndex, tuple[int, Stored]] = weakref.WeakKeyDictionary()


def stored_units(index: SpaceIndex, ids: np.ndarray) -> dict[int, tuple[np.ndarray, int | None]]:
    """Each candidate's stored ``unit_rms`` and ``n_samples`` (those without an RMS left out)."""
    from marketplace.learnwares.models import Specification

    generation, known = _known.get(index, (None, {}))
    if generation != index.generation:
        known = {}
        _known[index] = (index.generation, known)
    missing = [int(i) for i in ids if int(i) not in known]
    if missing:
        rows = Specification.objects.filter(version_id__in=missing).values_list(
            "version_id", "rkme__unit_rms", "rkme__n_samples"
        )
        found = {int(vid): (rms, n) for vid, rms, n in rows}
        for vid in missing:
            rms, n = found.get(vid, (None, None))
            ok = isinstance(rms, list) and len(rms) == index.d
            known[vid] = (
                (np.asarray(rms, dtype=np.float64), n if isinstance(n, int) else None) if ok else None
            )
    return {int(i): v for i in ids if (v := known[int(i)]) is not None}


def same_units_rerank(
    index: SpaceIndex,
    standardization: dict[str, Any] | None,
    Z: np.ndarray,
    beta: np.ndarray,
    hits: Hits,
    user_rms: np.ndarray,
    n_samples: int | None,
    stored: dict[int, tuple[np.ndarray, int | None]],
) -> tuple[Hits, UnitsCheck | None]:
    """``hits`` re-ordered by the same-units prior (module docstring), with the decision; ``hits``
    unchanged and None when the space is not unit-free or no candidate has a stored RMS."""
    if not standardization or hits.ids.size == 0:
        return hits, None
    std = TableStandardizer.from_dict(standardization)
    known = [i for i, v in enumerate(hits.ids.tolist()) if v in stored]
    if not std.scale_invariant or not known:
        return hits, None
    ids = hits.ids[known]
    Zs, betas, st = index.store.gather(ids, np.float32)
    factors = np.asarray(user_rms, dtype=np.float64)[None, :] / np.stack([stored[int(v)][0] for v in ids])
    same = same_units_mmd2(Z, beta, factors, std.mean_, std.scale_, Zs, betas, st, index.gamma)
    j = int(np.argmin(same))
    n = n_samples or rkme_sample_size(beta, None)
    m = stored[int(ids[j])][1] or rkme_sample_size(betas[j], None)
    noise = sampling_noise(float(self_term(Z, beta, index.gamma)), int(round(n)), m)
    best_free = float(hits.mmd2.min())
    holds = bool(same[j] <= best_free + SLACK_NOISE * noise)
    verdict = (
        "your rows fit a learnware in its own units: ranked by MMD² in each learnware's units"
        if holds
        else "your rows fit no learnware in its own units (other units): ranked unit-free"
    )
    reason = (
        f"{verdict} (best same-units MMD² {same[j]:.3g} vs best unit-free {best_free:.3g} + "
        f"{SLACK_NOISE:g} x sampling noise {noise:.3g})"
    )
    check = UnitsCheck(
        SAME if holds else FREE,
        float(same[j]),
        best_free,
        float(noise),
        reason,
        {int(v): float(s) for v, s in zip(ids, same, strict=True)},
        {int(v): float(f) for v, f in zip(hits.ids, hits.mmd2, strict=True)},
        {int(v): f for v, f in zip(ids, factors, strict=True)},
    )
    if not holds:
        return hits, check
    score = hits.mmd2.copy()
    score[known] = same
    order = np.argsort(score, kind="stable")
    return Hits(hits.ids[order], score[order], hits.sketch_distance[order]), check
