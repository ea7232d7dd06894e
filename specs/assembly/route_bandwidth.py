"""The RKME job selector's kernel width, chosen per task without labels.

The space's gamma (~ the median heuristic) suits MMD between data sets, but per-row densities
under it are so flat that the routing is nearly uniform; the selector therefore routes with
``gamma * factor``. No single factor suits every space: 16x routed best on the digits and
Fashion-MNIST transform markets (benchmarks/route_bandwidth.py), 256x on the real Fashion-MNIST
market whose developers hold disjoint class pairs (0.72 -> 0.85, docs/submissions.md).

Criterion (no user labels needed): each member's own reduced points ``z_ij`` are samples of its
distribution with a known owner, so route every one of them with that point left out of its own
member's density (leave-one-out; otherwise a narrow kernel always sends a point home) and count
the share routed to its owner, weighted by ``max(beta_ij, 0)`` (the point's mass in the RKME;
negative weights are corrections, not samples). A member's share is averaged over the routed
members with the router's weights. The factor with the highest self-routing accuracy (ties ->
the smaller, smoother kernel) replaces the default only when its gain over the default exceeds
two standard errors of that paired gain: the default is what the transform markets validated,
and a member's RKME has only a few dozen points, so small differences are noise.

Measured (benchmarks/route_bandwidth.py, 20 two-domain users each; docs/submissions.md): with
the 2-SE margin every digits and Fashion-transform user keeps 16x (routing 0.971 / 0.930, as at
16x); a 1-SE margin moved 6 Fashion-transform users to 64x / 256x (0.929), no margin 12 (0.923).
On the real Fashion-MNIST market (developers on disjoint class pairs, benchmarks/reuse_markets.py
--quick) both two-domain users move to 256x: no-label accuracy 0.72 / 0.69 -> 0.845 / 0.855.

Soft routing (``specs.assembly.selector.RKMESoftSelector``) uses the responsibilities themselves,
so what matters there is that they are calibrated probabilities of origin, not that their argmax
is right: :func:`choose_soft_route_gamma_factor` picks the factor with the highest leave-one-out
log-likelihood of each point's own member (a proper scoring rule; the same points and weights as
above). Where members' data overlap it picks a wide kernel (hotel segments: 1x-8x, so the rows'
outputs are nearly averaged), where they are apart a narrow one (digit transforms: 16x-64x, the
hard route); benchmarks/issue20/label_free_assembly.py measures both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from specs.assembly._base import as_array
from specs.exceptions import DimensionMismatchError, InvalidParameterError
from specs.kernels import squared_distances

ROUTE_GAMMA_FACTORS = (4.0, 16.0, 64.0, 256.0)
SOFT_ROUTE_GAMMA_FACTORS = (1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0)
# A responsibility below this counts as this in the log-likelihood: one point far from every other
# point of its member would otherwise decide the factor alone (log 0).
MIN_RESPONSIBILITY = 1e-6
DEFAULT_ROUTE_GAMMA_FACTOR = 16.0
# Two standard errors: the default (validated on the transform markets) is kept unless another
# factor routes the members' own points home better beyond the noise of a few dozen points each.
SWITCH_Z = 2.0


@dataclass(frozen=True)
class RouteBandwidth:
    """The chosen multiple of the space's gamma and the self-routing accuracy of every factor tried."""

    factor: float
    factors: tuple[float, ...]
    accuracies: tuple[float, ...]


def self_routing_accuracy(
    Zs: Sequence[Any], betas: Sequence[Any], gamma: float, weights: Any = None
) -> float:
    """Leave-one-out self-routing accuracy of the members' reduced points at kernel ``gamma``.

    Parameters
    ----------
    Zs : sequence of (K_i, d) arrays, betas : sequence of (K_i,) arrays
        The members' RKMEs.
    gamma : float
        The routing kernel ``exp(-gamma ||x - z||^2)``.
    weights : (m,) array, optional
        The router's member weights (uniform when omitted); members of weight 0 are neither
        routed to nor scored.

    Returns
    -------
    float in [0, 1]
    """
    Z, beta, owner, w = _stack(Zs, betas, weights)
    point_w = _point_weights(beta, owner, w)
    return float(np.sum(point_w * _home(Z, beta, owner, w, gamma)))


def choose_route_gamma_factor(
    Zs: Sequence[Any],
    betas: Sequence[Any],
    gamma: float,
    weights: Any = None,
    factors: Sequence[float] = ROUTE_GAMMA_FACTORS,
    default: float = DEFAULT_ROUTE_GAMMA_FACTOR,
    z: float = SWITCH_Z,
) -> RouteBandwidth:
    """The multiple of the space's ``gamma`` to route with (see the module docstring).

    The best factor (ties -> the smaller) replaces ``default`` (one of ``factors``) only when its
    gain in self-routing accuracy exceeds ``z`` standard errors of that paired gain: a weighted
    mean over the points of the difference of two 0/1 outcomes, its variance
    ``sum_i w_i^2 sum_j p_ij^2 (d_ij - G_i)^2`` with ``p_ij`` the point's share of member i's
    positive mass and ``G_i`` member i's gain.
    """
    grid = tuple(sorted(float(f) for f in factors))
    if not grid or any(f <= 0 for f in grid) or float(default) not in grid:
        raise InvalidParameterError(
            f"factors {factors!r} must be positive and contain the default {default!r}"
        )
    if not gamma > 0:
        raise InvalidParameterError(f"gamma must be > 0, got {gamma!r}")
    Z, beta, owner, w = _stack(Zs, betas, weights)
    point_w = _point_weights(beta, owner, w)
    home = [_home(Z, beta, owner, w, gamma * f) for f in grid]
    acc = tuple(float(np.sum(point_w * h)) for h in home)
    best = int(np.argmax(acc))  # the first maximum: the smaller factor on ties
    base = grid.index(float(default))
    d = home[best].astype(float) - home[base]
    gain = float(np.sum(point_w * d))
    member_gain = np.bincount(owner, weights=point_w * d, minlength=w.shape[0])
    # point_w = w_i p_ij and member_gain_i = w_i G_i, so summing (point_w (d - G_i))^2 gives the variance.
    member_w = np.bincount(owner, weights=point_w, minlength=w.shape[0])
    share = np.divide(member_gain, member_w, out=np.zeros_like(member_w), where=member_w > 0)[owner]
    se = float(np.sqrt(np.sum((point_w * (d - share)) ** 2)))
    chosen = grid[best] if gain > 0 and gain > z * se else float(default)
    return RouteBandwidth(factor=chosen, factors=grid, accuracies=acc)


def _point_weights(beta: np.ndarray, owner: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``w_i max(beta_ij, 0) / sum_j max(beta_ij, 0)`` over scored members, summing to 1."""
    pos = np.maximum(beta, 0.0)
    mass = np.bincount(owner, weights=pos, minlength=w.shape[0])
    scored = (w > 0) & (mass > 0)
    if not scored.any():
        raise InvalidParameterError("no routed member has a positive RKME weight")
    wm = np.where(scored, w, 0.0) / np.sum(w[scored])
    return wm[owner] * np.divide(pos, mass[owner], out=np.zeros_like(pos), where=mass[owner] > 0)


def _loo_densities(
    Z: np.ndarray, beta: np.ndarray, owner: np.ndarray, w: np.ndarray, gamma: float
) -> np.ndarray:
    """(N, m) weighted member densities of every point, itself left out of its own member's
    density, each row rescaled by a common factor."""
    D = squared_distances(Z, Z)
    np.fill_diagonal(D, np.inf)
    live_col = w[owner] > 0
    # Rescale each row by its nearest live point (ratios unchanged) so far rows do not underflow.
    shift = D[:, live_col].min(axis=1, keepdims=True)
    shift[~np.isfinite(shift)] = 0.0  # a live member's only point: nothing else to route to
    K = np.exp(-gamma * np.maximum(D - shift, 0.0))  # only weight-0 columns (zeroed next) lie below
    K[:, ~live_col] = 0.0
    dens = np.zeros((Z.shape[0], w.shape[0]))
    np.add.at(dens.T, owner, (K * beta).T)
    return dens * w


def _home(Z: np.ndarray, beta: np.ndarray, owner: np.ndarray, w: np.ndarray, gamma: float) -> np.ndarray:
    """(N,) bool: point routed to its own member, itself left out of that member's density."""
    return np.asarray(_loo_densities(Z, beta, owner, w, gamma).argmax(axis=1) == owner)


def soft_routing_log_likelihood(
    Zs: Sequence[Any], betas: Sequence[Any], gamma: float, weights: Any = None
) -> float:
    """Leave-one-out mean log-responsibility of each reduced point's own member at kernel ``gamma``
    (points weighted as in :func:`self_routing_accuracy`; responsibilities floored at
    :data:`MIN_RESPONSIBILITY`)."""
    Z, beta, owner, w = _stack(Zs, betas, weights)
    point_w = _point_weights(beta, owner, w)
    dens = np.maximum(_loo_densities(Z, beta, owner, w, gamma), 0.0)  # as RKMEJobSelector.responsibilities
    total = dens.sum(axis=1)
    own = dens[np.arange(owner.shape[0]), owner]
    r = np.divide(own, total, out=np.zeros_like(own), where=total > 0)
    return float(np.sum(point_w * np.log(np.maximum(r, MIN_RESPONSIBILITY))))


def choose_soft_route_gamma_factor(
    Zs: Sequence[Any],
    betas: Sequence[Any],
    gamma: float,
    weights: Any = None,
    factors: Sequence[float] = SOFT_ROUTE_GAMMA_FACTORS,
) -> RouteBandwidth:
    """The multiple of ``gamma`` whose soft routing is best calibrated on the members' own points:
    the highest :func:`soft_routing_log_likelihood` (ties -> the smaller factor). ``accuracies``
    holds each factor's log-likelihood."""
    grid = tuple(sorted(float(f) for f in factors))
    if not grid or any(f <= 0 for f in grid):
        raise InvalidParameterError(f"factors {factors!r} must be positive")
    if not gamma > 0:
        raise InvalidParameterError(f"gamma must be > 0, got {gamma!r}")
    scores = tuple(soft_routing_log_likelihood(Zs, betas, gamma * f, weights) for f in grid)
    return RouteBandwidth(factor=grid[int(np.argmax(scores))], factors=grid, accuracies=scores)


def _stack(
    Zs: Sequence[Any], betas: Sequence[Any], weights: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if len(Zs) == 0 or len(Zs) != len(betas):
        raise DimensionMismatchError(f"got {len(Zs)} Z arrays and {len(betas)} beta arrays")
    Z = [as_array(z, f"Zs[{i}]") for i, z in enumerate(Zs)]
    B = [as_array(b, f"betas[{i}]").reshape(-1) for i, b in enumerate(betas)]
    for i, (z, b) in enumerate(zip(Z, B, strict=True)):
        if z.ndim != 2 or z.shape[0] != b.shape[0] or z.shape[1] != Z[0].shape[1]:
            raise DimensionMismatchError(f"Zs[{i}] {z.shape} / betas[{i}] {b.shape} do not match")
    m = len(Z)
    w = np.ones(m) / m if weights is None else as_array(weights, "weights").reshape(-1)
    if w.shape[0] != m or np.any(w < 0) or w.sum() <= 0:
        raise InvalidParameterError(f"weights must be {m} non-negative values, not all zero")
    return np.vstack(Z), np.concatenate(B), np.repeat(np.arange(m), [z.shape[0] for z in Z]), w / w.sum()
