"""Which zero-shot combination to deliver when the user gave no labels.

Without labels nothing can score a method on the user's task. Two independent estimates of
where the user's rows come from are at hand, though: identification's mixture weights ``w``
(the members' RKMEs fitted to the user's whole RKME by MMD) and the RKME job selector's routes
of the individual rows (``argmax_i r_i(x)``, ``r_i(x) = f_i(x) / sum_k f_k(x)`` with ``f_i``
member i's RKME kernel density, uniform over the components).

The combination is **soft routing** (``specs.assembly.selector.RKMESoftSelector``): each row's
output is the members' outputs weighted by its responsibilities ``r_i(x)``, under a kernel chosen
so that the responsibilities are calibrated on the members' own points
(``specs.assembly.route_bandwidth.choose_soft_route_gamma_factor``). It needs no threshold to
choose between routing and averaging: where the members' data are apart the responsibilities are
near 0/1 and it routes; where they overlap the kernel is wide and it averages. Measured with
``benchmarks/issue20/label_free_assembly.py`` (30 two-domain users per mix, library level), it
came within 0.01 of the better of hard routing and the plain average on every market: digits in
five transformations (all classes shared; routing 0.925, average 0.67, soft 0.925), hotel
segments (overlapping; 50/50 users: routing 0.83, average 0.877, soft 0.868), digit and
Fashion-MNIST developers on disjoint class pairs (routing 0.978 / 0.878, soft 0.979 / 0.885).
A hard router thresholded on the routing confidence could not do both: the digit transforms'
harder pairs route at a mean confidence of 0.77-0.82, below some hotel users' 0.86.

The best single learnware replaces it where the evidence says one member is enough:

* **One member explains the rows** (one route share >= ``single_share``): without the routing
  errors on the few stray rows.
* **Members on disjoint label sets whose routes contradict the weights**: the total variation
  ``TV(s, w) = sum_i |s_i - w_i| / 2`` between the route shares ``s`` and the weights is a lower
  bound on the fraction of misrouted rows. A single member can only be right on its own share of
  the rows (about ``max_i w_i``) while routing can be right on at most ``1 - TV``: keep routing
  while ``1 - TV >= max_i w_i``, else the best single learnware. (A fixed TV threshold measured
  worse: two Fashion 50/50 users at TV 0.19 fell from routing to the best single.) Members that
  share classes are always routed softly: there a wrong route costs less and the soft router
  already averages where routes are uncertain (on hotel segments TV is small while each route is
  close to a coin flip, so TV is no evidence either way).

The routing confidence (mean over rows of ``max_i r_i(x)``) and the TV are reported as evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from specs.exceptions import InvalidDataError, InvalidParameterError

SOFT_ROUTE = "rkme_soft_selector"
SINGLE = "best_single"
MAX_DISAGREEMENT = 0.15
SINGLE_SHARE = 0.9


@dataclass(frozen=True)
class LabelFreeChoice:
    """The chosen method, the evidence it rests on and a sentence for the report."""

    method: str
    routing_confidence: float | None = None
    route_shares: list[float] | None = None  # fraction of rows routed to each member
    disagreement: float | None = None  # TV(route shares, mixture weights)
    disjoint_classes: bool | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "routing_confidence": self.routing_confidence,
            "route_shares": self.route_shares,
            "disagreement": self.disagreement,
            "disjoint_classes": self.disjoint_classes,
            "max_disagreement": MAX_DISAGREEMENT,
            "single_share": SINGLE_SHARE,
            "reason": self.reason,
        }


def routing_evidence(responsibilities: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean over rows of the largest responsibility, and each member's share of the argmax routes.

    ``responsibilities`` (n, m): rows sum to 1 (``RKMEJobSelector.responsibilities``)."""
    r = np.asarray(responsibilities, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] == 0 or r.shape[1] == 0:
        raise InvalidDataError(f"responsibilities must be a non-empty (n, m) array, got shape {r.shape}")
    if not np.all(np.isfinite(r)) or np.any(r < 0) or not np.allclose(r.sum(axis=1), 1.0, atol=1e-6):
        raise InvalidDataError("responsibilities must be finite, non-negative and sum to 1 per row")
    shares = np.bincount(r.argmax(axis=1), minlength=r.shape[1]) / r.shape[0]
    return float(r.max(axis=1).mean()), shares


def classes_disjoint(member_classes: Sequence[Sequence[str] | None]) -> bool:
    """True when every member's class list is known and no class is in two of them."""
    if any(c is None for c in member_classes):
        return False
    seen: set[str] = set()
    for classes in member_classes:
        own = {str(c) for c in classes or []}
        if own & seen:
            return False
        seen |= own
    return True


def label_free_choice(
    responsibilities: np.ndarray | None,
    weights: np.ndarray | None = None,
    member_classes: Sequence[Sequence[str] | None] | None = None,
    *,
    max_disagreement: float = MAX_DISAGREEMENT,
    single_share: float = SINGLE_SHARE,
    n_members: int | None = None,
) -> LabelFreeChoice:
    """Soft routing, or the best single learnware (see the module docstring).

    ``responsibilities`` (n, m) of the user's rows under the members' RKMEs (the job selector's:
    its routes are the evidence; None when the rows are not available, e.g. an uploaded RKME: a
    mixture is then routed softly, with no evidence to do otherwise); ``weights`` (m,) the mixture
    weights; ``member_classes`` each member's classes (None entries: unknown, regression: omit)."""
    if not 0.0 <= max_disagreement <= 1.0 or not 0.0 < single_share <= 1.0:
        raise InvalidParameterError(
            f"max_disagreement must be in [0, 1] and single_share in (0, 1], "
            f"got {max_disagreement}, {single_share}"
        )
    m = n_members if responsibilities is None else int(np.shape(responsibilities)[1])
    if not m or m < 2:
        return LabelFreeChoice(SINGLE, reason="one member: the best single learnware by MMD")
    if responsibilities is None:
        return LabelFreeChoice(
            SOFT_ROUTE,
            reason="a mixture was identified and your rows are not available to check the routing: each "
            "row's prediction weighs the members by how well their RKMEs explain it",
        )
    if weights is None:
        raise InvalidParameterError("the mixture weights are needed to check the routing")
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape[0] != m or np.any(w < 0) or not w.sum() > 0:
        raise InvalidDataError(f"weights must be {m} non-negative values, not all zero")
    w = w / w.sum()
    confidence, shares = routing_evidence(responsibilities)
    tv = float(0.5 * np.abs(shares - w).sum())
    disjoint = classes_disjoint(member_classes) if member_classes is not None else False
    evidence = LabelFreeChoice(
        SOFT_ROUTE,
        routing_confidence=round(confidence, 4),
        route_shares=[round(float(s), 4) for s in shares],
        disagreement=round(tv, 4),
        disjoint_classes=disjoint,
    )
    top = float(shares.max())
    if top >= single_share:
        return replace(
            evidence,
            method=SINGLE,
            reason=(
                f"the members' RKMEs route {top:.0%} of your rows to one learnware (>= {single_share:.0%}): "
                "the best single learnware by MMD"
            ),
        )
    shown = ", ".join(f"{s:.2f}" for s in shares)
    weights_shown = ", ".join(f"{v:.2f}" for v in w)
    agree = tv <= max_disagreement
    measured = (
        f"the rows' routes ({shown}) {'agree' if agree else 'disagree'} with the mixture weights "
        f"({weights_shown}): total variation {tv:.2f} {'<=' if agree else '>'} {max_disagreement}"
    )
    soft = (
        "each row's prediction weighs the members by how well their RKMEs explain it (one member where "
        "their data are apart, several where they overlap)"
    )
    if disjoint and not agree:
        if 1.0 - tv >= float(w.max()):
            return replace(
                evidence,
                reason=(
                    f"{measured}; the members know disjoint classes and routing can still be right on up to "
                    f"{1 - tv:.0%} of the rows, no less than the best single's share ({float(w.max()):.0%}): "
                    f"{soft}"
                ),
            )
        return replace(
            evidence,
            method=SINGLE,
            reason=(
                f"{measured} (at least that share of rows would be misrouted); the members know disjoint "
                f"classes (an average is decided by over-confidence) and routing can be right on at most "
                f"{1 - tv:.0%} of the rows, less than the largest member's share ({float(w.max()):.0%}): "
                "the best single learnware by MMD"
            ),
        )
    return replace(evidence, reason=f"{measured}; {soft}")
