"""Per-column units of table rows, and the map from a user's units into a learnware's.

The table spaces are unit-free (``TableStandardizer``): each upload is divided column by
column by its own root mean square (RMS) before it is compared, so a user who measures in
thousands finds the learnwares fitted in units. Their models, however, take rows in the
units they were trained in, so the user's rows must be converted.

An RMS mixes units with the distribution: a user whose rows are half "upright" and half
"inverted" digits has border columns with an RMS far from either domain's, in the same
units. So the factor is not ``r_u / r_m`` of one member but the one that explains the
user's second moments by the identified mixture: if the user's rows, in the market's
units, come from members i with weights w_i, then ``E[x^2] = sum_i w_i r_i^2``, and in
the user's units (x_user = s * x) ``r_u^2 = s^2 * sum_i w_i r_i^2``, so

    s = r_u / sqrt(sum_i w_i r_i^2)        (per column; x_member = x_user / s).

For a single-domain user (one weight 1) this is ``r_u / r_m``. The weights come from
identification, which is unit-free, so a user in other units gets exactly the same
weights and the same converted rows as in the market's units. The assumption is that the
mixture's developers measured in the same units (each learnware's own RMS is known, not
its units, so nothing finer can be told apart).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from specs.exceptions import InvalidDataError

# Columns whose factor is beyond this (either way) are reported as in other units. Real unit
# changes are x1.6 (miles) and more; the estimate's own error from the identified weights was
# under 10 % on the digits mixtures, so 1.25 separates the two.
UNIT_TOLERANCE = 1.25


def unit_rms(X: np.ndarray) -> np.ndarray:
    """Per-column root mean square of rows X (n, d); 1 for all-zero columns (left as they are)."""
    X = np.asarray(X, dtype=np.float64)
    rms = np.sqrt(np.mean(X * X, axis=0))
    return np.where(rms > 0, rms, 1.0)


RMS_RANGE = (float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max))


def check_rms(values: Any, d: int) -> np.ndarray:
    """A stored RMS vector as (d,) float64; raises :class:`InvalidDataError` unless d finite values > 0."""
    try:
        rms = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InvalidDataError(f"unit_rms must be {d} numbers: {exc}") from None
    if rms.shape[0] != d or not np.isfinite(rms).all() or (rms <= 0).any():
        raise InvalidDataError(f"unit_rms must be {d} finite numbers > 0, got {rms.shape[0]} values")
    # Beyond float32's range (what models run in) the unit factors and the scores built on them are
    # infinite or zero, and a response or result holding them is not JSON.
    if (rms < RMS_RANGE[0]).any() or (rms > RMS_RANGE[1]).any():
        raise InvalidDataError(
            f"unit_rms must lie in [{RMS_RANGE[0]:.3g}, {RMS_RANGE[1]:.3g}] (the float32 range models run in)"
        )
    return rms


def mixture_unit_factor(
    user_rms: np.ndarray, member_rms: Sequence[np.ndarray], weights: Sequence[float]
) -> np.ndarray:
    """s (d,): how many of the user's units one market unit is, per column (module docstring).

    ``member_rms`` are the RMS vectors of the identified members, ``weights`` their
    identification weights (renormalised here; one member of weight 1 for a single domain)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] != len(member_rms) or w.shape[0] == 0 or (w < 0).any() or w.sum() <= 0:
        raise InvalidDataError(f"weights must be {len(member_rms)} values >= 0 with a positive sum")
    R = np.stack([np.asarray(r, dtype=np.float64) for r in member_rms])
    market = np.sqrt((w / w.sum()) @ (R * R))
    return np.asarray(user_rms, dtype=np.float64) / np.where(market > 0, market, 1.0)


class UnitsOutOfRange(InvalidDataError):
    """A user's rows that cannot be put into a learnware's units in float32; ``columns``: their indices."""

    def __init__(self, message: str, columns: Sequence[int]) -> None:
        super().__init__(message)
        self.columns = [int(c) for c in columns]


def member_scale(factor: np.ndarray) -> np.ndarray:
    """``1 / factor`` (d,): what takes a user's rows into the members' units (``x_member = x * scale``),
    the ``input_map.scale`` a recipe stores; models and the package's predictor apply it in float32.

    Raises :class:`UnitsOutOfRange` for the columns whose scale lies outside float32's normal range
    (``RMS_RANGE``): there it is 0 or infinite, so every converted value would be 0 or inf/NaN.
    The factor is not clipped as search clips it (``FACTOR_CAP``): a real change of units can exceed
    x1e6 (bytes and gigabytes, x1e9) and must be converted exactly, while search's clip changes no
    score (beyond it every kernel value between distinct points is already 0)."""
    scale = 1.0 / np.asarray(factor, dtype=np.float64)
    bad = np.flatnonzero(~((scale >= RMS_RANGE[0]) & (scale <= RMS_RANGE[1])))
    if bad.size:
        raise UnitsOutOfRange(
            f"factors {[float(f) for f in np.asarray(factor)[bad[:5]]]} between your units and the "
            f"learnwares' are beyond float32's range [{1 / RMS_RANGE[1]:.3g}, {1 / RMS_RANGE[0]:.3g}]",
            bad.tolist(),
        )
    return scale


def rows_in_units(X32: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Rows X32 (n, d) times ``scale`` (:func:`member_scale`) in float32, as ``specs.recipe.member_inputs``
    computes them; raises :class:`UnitsOutOfRange` naming the columns whose converted values overflow
    float32 (a model would see inf there)."""
    with np.errstate(over="ignore"):  # an overflow is what is looked for below
        out = np.ascontiguousarray(np.asarray(X32, dtype=np.float32) * np.asarray(scale, dtype=np.float32))
    bad = np.flatnonzero(~np.isfinite(out).all(axis=0))
    if bad.size:
        raise UnitsOutOfRange(
            f"converted into the learnware's units, values pass float32's ±{RMS_RANGE[1]:.3g}", bad.tolist()
        )
    return out


def units_summary(
    scale: np.ndarray, columns: Sequence[str] | None = None, *, shown: int = 5
) -> dict[str, Any]:
    """What a report says about the user's units: the columns in other units and by how much.

    ``scale`` is :func:`mixture_unit_factor` (user units per market unit); a column differs
    when its factor is outside [1/UNIT_TOLERANCE, UNIT_TOLERANCE]."""
    scale = np.asarray(scale, dtype=np.float64)
    names = list(columns) if columns is not None else [f"column {i}" for i in range(scale.shape[0])]
    off = np.abs(np.log(scale)) > np.log(UNIT_TOLERANCE)
    order = np.argsort(-np.abs(np.log(scale)), kind="stable")
    worst = [{"column": names[i], "factor": float(scale[i])} for i in order[:shown] if off[i]]
    return {
        "differ": bool(off.any()),
        "columns_differing": int(off.sum()),
        "columns": int(scale.shape[0]),
        "max_factor": float(np.exp(np.abs(np.log(scale)).max())) if scale.size else 1.0,
        "largest": worst,
    }


def same_units_points(Z: np.ndarray, factor: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """A user's reduced set Z (K, d), in a unit-free space's coordinates ``(x / r_u - mean) / scale``,
    moved to ``(x / r_c - mean) / scale``: the coordinates the same rows would have if divided by a
    learnware's RMS r_c instead of their own r_u. ``factor`` is ``r_u / r_c``; since
    ``x / r_c = (x / r_u) * factor``, ``z -> ((z * scale + mean) * factor - mean) / scale``
    (broadcast over leading axes of ``factor``: (m, d) factors give (m, K, d))."""
    factor = np.asarray(factor, dtype=np.float64)
    return (np.asarray(Z, dtype=np.float64) * scale + mean) * factor[..., None, :] / scale - (mean / scale)


FACTOR_CAP = 1e6


def same_units_mmd2(
    Z: np.ndarray,
    beta: np.ndarray,
    factors: np.ndarray,
    mean: np.ndarray,
    scale: np.ndarray,
    Zs: np.ndarray,
    betas: np.ndarray,
    self_terms: np.ndarray,
    gamma: float,
) -> np.ndarray:
    """MMD² (m,) between the user's RKME put into each of m learnwares' units and their RKMEs.

    ``factors`` (m, d) are ``r_u / r_c`` per learnware (:func:`same_units_points`), ``Zs`` (m, Kc, d),
    ``betas`` (m, Kc) and ``self_terms`` (m,) the learnwares' unit-free RKMEs. The user's weights are
    kept and its points moved: exact for the moved point set, and the moved set summarises the
    moved rows as well as Z summarises the rows when the factors are near 1 — the case this
    comparison has to decide (factors far from 1 give an MMD² far above any noise either way).

    Kernel blocks in float32, each sum's last stage in float64, as ``SpaceIndex.rerank``. The moved
    set's self-term needs no points: the offsets cancel in differences, so
    ``||p_i - p_j||^2 = sum_d f_d^2 (z_id - z_jd)^2``, one GEMM for all m learnwares.
    """
    Z = np.asarray(Z, dtype=np.float64)
    # Beyond FACTOR_CAP the moved points are so far apart that every kernel value between distinct
    # points is 0 in float32 already; unclipped, f² overflows float32 (a user's 1e34 values) and the
    # blocks below turn to inf - inf = NaN.
    f = np.clip(np.asarray(factors, dtype=np.float64), 1.0 / FACTOR_CAP, FACTOR_CAP)
    m, (K, d) = f.shape[0], Z.shape
    b64 = np.asarray(beta, dtype=np.float64)
    b32 = b64.astype(np.float32)
    g = np.float32(-gamma)
    # self-terms: (K*K, d) squared differences x (d, m) squared factors
    diff = ((Z[:, None, :] - Z[None, :, :]) ** 2).reshape(K * K, d).astype(np.float32)
    E = diff @ (f * f).T.astype(np.float32)
    E *= g
    np.exp(E, out=E)
    user = b64 @ np.tensordot(b32, E.reshape(K, K, m), axes=(0, 0)).astype(np.float64)  # (m,)
    # cross-terms: the moved points P (m, K, d) against each learnware's Zs (m, Kc, d)
    offset = (np.asarray(mean, dtype=np.float64) / scale) * (f - 1.0)
    P = (Z.astype(np.float32)[None, :, :] * f.astype(np.float32)[:, None, :]) + offset.astype(np.float32)[
        :, None, :
    ]
    B = np.asarray(Zs, dtype=np.float32)
    sq = np.matmul(P, B.transpose(0, 2, 1))
    sq *= -2.0
    sq += np.einsum("mkd,mkd->mk", P, P)[:, :, None]
    sq += np.einsum("mld,mld->ml", B, B)[:, None, :]
    np.maximum(sq, 0.0, out=sq)
    sq *= g
    np.exp(sq, out=sq)
    v = np.matmul(b32[None, None, :], sq)[:, 0, :]  # (m, Kc): beta' K, float32 like the re-rank
    cross = np.einsum("ml,ml->m", v.astype(np.float64), np.asarray(betas, dtype=np.float64))
    return np.maximum(user - 2.0 * cross + np.asarray(self_terms, dtype=np.float64), 0.0)
