"""Direct evaluation of a candidate whose label space matches the user's task.

When a learnware predicts the user's own labels (or target), its predictions on the
labelled sample are the most direct evidence: accuracy and macro-F1 for classification,
RMSE and R^2 for regression.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from specs.exceptions import (
    DimensionMismatchError,
    InvalidDataError,
    InvalidParameterError,
)
from specs.transferability._checks import _as_numpy


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t, p = _as_numpy(y_true).reshape(-1), _as_numpy(y_pred).reshape(-1)
    if t.shape != p.shape:
        raise DimensionMismatchError(f"y_pred has {p.shape[0]} values but y_true has {t.shape[0]}")
    if t.shape[0] == 0:
        raise InvalidDataError("y_true is empty")
    return t, p


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of exact matches; y_true, y_pred of shape (n,)."""
    t, p = _pair(y_true, y_pred)
    return float((t == p).mean())


def macro_f1(y_true: Any, y_pred: Any) -> float:
    """Unweighted mean of per-class F1 over the classes in y_true or y_pred.

    A class with no true and no predicted sample cannot occur (it is not in the union);
    a class with F1's denominator 0 (never predicted correctly nor present) scores 0.
    """
    t, p = _pair(y_true, y_pred)
    classes = np.union1d(t, p)
    t_idx, p_idx = np.searchsorted(classes, t), np.searchsorted(classes, p)
    tp = np.bincount(t_idx[t_idx == p_idx], minlength=classes.shape[0]).astype(np.float64)
    support = np.bincount(t_idx, minlength=classes.shape[0])
    predicted = np.bincount(p_idx, minlength=classes.shape[0])
    denom = support + predicted
    f1 = np.divide(2.0 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1.mean())


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error over all entries (lower is better)."""
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((t.astype(np.float64) - p.astype(np.float64)) ** 2)))


def r2_score(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` (1 is perfect).

    Raises
    ------
    InvalidDataError
        If y_true is constant (SS_tot = 0), where R^2 is undefined.
    """
    t, p = _pair(y_true, y_pred)
    t, p = t.astype(np.float64), p.astype(np.float64)
    ss_tot = float(((t - t.mean()) ** 2).sum())
    if ss_tot == 0.0:
        raise InvalidDataError("y_true is constant: R^2 is undefined")
    return 1.0 - float(((t - p) ** 2).sum()) / ss_tot


def direct_scores(y_true: Any, y_pred: Any, *, task: str) -> dict[str, float]:
    """All direct metrics of one candidate: classification or regression.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
    task : {"classification", "regression"}

    Returns
    -------
    dict
        ``{"accuracy", "macro_f1"}`` or ``{"rmse", "r2"}``.
    """
    if task == "classification":
        return {"accuracy": accuracy(y_true, y_pred), "macro_f1": macro_f1(y_true, y_pred)}
    if task == "regression":
        return {"rmse": rmse(y_true, y_pred), "r2": r2_score(y_true, y_pred)}
    raise InvalidParameterError(f"task must be 'classification' or 'regression', got {task!r}")
