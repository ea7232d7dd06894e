"""Boundary checks shared by the modules of :mod:`specs`.

Every public function validates its inputs here once and then trusts them, so
each failure raises one :class:`~specs.exceptions.SpecError` subclass whose
message names the bad argument.
"""

from __future__ import annotations

import numbers

import numpy as np

from specs.exceptions import (
    DimensionMismatchError,
    InvalidDataError,
    InvalidParameterError,
)

# Boolean, integer and float arrays are numbers; object, string, complex,
# datetime and void arrays are not (complex would silently drop its imaginary part).
_NUMERIC_KINDS = frozenset("biuf")


def check_array(
    X: object,
    name: str = "X",
    *,
    ndim: int = 2,
    allow_empty: bool = False,
    copy: bool = False,
) -> np.ndarray:
    """Return ``X`` as a finite float64 array of rank ``ndim``.

    Parameters
    ----------
    X : array-like
        The data to check.
    name : str
        Name used in error messages.
    ndim : int
        Required rank (2 for data sets and reduced sets, 1 for weights).
    allow_empty : bool
        Whether zero rows are acceptable.
    copy : bool
        Force a copy even when ``X`` already is float64.

    Returns
    -------
    ndarray of float64, same shape as ``X``

    Raises
    ------
    InvalidDataError
        Wrong dtype (object, string, complex), wrong rank, no rows or no
        columns, NaN or infinity.
    """
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise InvalidDataError(f"{name} is not a rectangular numeric array: {exc}") from exc
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise InvalidDataError(f"{name} must be numeric (bool, int or float), got dtype {arr.dtype}")
    if arr.ndim != ndim:
        hint = " (reshape a single sample with X.reshape(1, -1))" if arr.ndim == 1 else ""
        raise InvalidDataError(f"{name} must be {ndim}-D, got shape {arr.shape}{hint}")
    if not allow_empty and arr.shape[0] == 0:
        raise InvalidDataError(f"{name} is empty: shape {arr.shape}")
    if ndim == 2 and arr.shape[1] == 0:
        raise InvalidDataError(f"{name} has no columns: shape {arr.shape}")
    arr = arr.astype(np.float64, copy=copy)
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise InvalidDataError(f"{name} contains NaN or infinity (first at index {tuple(bad)})")
    return arr


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` as an int > 0, else raise :class:`InvalidParameterError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise InvalidParameterError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_positive_float(value: object, name: str) -> float:
    """Return ``value`` as a finite float > 0, else raise :class:`InvalidParameterError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(f"{name} must be a positive number, got {value!r}")
    out = float(value)
    if not np.isfinite(out) or out <= 0.0:
        raise InvalidParameterError(f"{name} must be a finite number > 0, got {value!r}")
    return out


def check_spec(Z: object, beta: object, name: str = "spec") -> tuple[np.ndarray, np.ndarray]:
    """Validate one reduced set ``(Z, beta)``: Z (K, d), beta (K,), finite.

    Raises
    ------
    InvalidDataError
        Bad dtype, rank, NaN/inf.
    DimensionMismatchError
        ``len(beta) != len(Z)``.
    """
    Z = check_array(Z, f"{name}.Z")
    beta = check_array(beta, f"{name}.beta", ndim=1)
    if beta.shape[0] != Z.shape[0]:
        raise DimensionMismatchError(
            f"{name}.beta has {beta.shape[0]} weights but {name}.Z has {Z.shape[0]} points"
        )
    return Z, beta


def check_spec_batch(Zs: object, betas: object, name: str = "candidates") -> tuple[np.ndarray, np.ndarray]:
    """Validate a padded batch of reduced sets: Zs (m, K, d), betas (m, K).

    Raises
    ------
    InvalidDataError, DimensionMismatchError
    """
    Zs = check_array(Zs, f"{name} Zs", ndim=3)
    betas = check_array(betas, f"{name} betas", ndim=2)
    if betas.shape != Zs.shape[:2]:
        raise DimensionMismatchError(
            f"{name} betas has shape {betas.shape} but Zs has shape {Zs.shape}; "
            "expected betas of shape (m, K)"
        )
    return Zs, betas


def check_same_dim(d1: int, d2: int, what1: str, what2: str) -> None:
    """Raise :class:`DimensionMismatchError` unless both objects live in dimension d."""
    if d1 != d2:
        raise DimensionMismatchError(
            f"{what1} has dimension d={d1} but {what2} has d={d2}; "
            "specifications are comparable only within one feature space"
        )
