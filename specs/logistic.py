"""L2-penalised (multinomial) logistic regression: the one trainer of the product.

Every place that fits a linear softmax classifier (the job selector's router, the text
adapters' head, the from-scratch baseline, the demo's linear learnwares) calls
``fit_softmax_regression``; a caller that ships a torch module builds it from the fitted
coefficients (``torch_linear``) instead of training one in torch.

Objective (sklearn's ``LogisticRegression(C=C)`` with ``lbfgs``, so results compare):

    sum_i s_i * (-log p(y_i | x_i)) + ||W||^2 / (2 C)

with sample weights s_i (1 by default); the intercept is not penalised. Two classes use
sklearn's binary form: one logit z = x @ coef[0] + intercept[0] for the second class
(p = sigmoid(z)); three or more use one logit per class (softmax). The two forms are not the
same model under the penalty (a two-column softmax penalises both columns), which is why the
binary form is kept: it is what sklearn fits.

Classes listed in ``classes`` but absent from ``y`` are allowed with three or more classes
(the job selector has members that are never best): their unpenalised intercept falls until
the optimiser stops, so their probability is small but positive. At least two classes must
be present.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.optimize
import scipy.special

from specs.exceptions import DimensionMismatchError, InvalidDataError, InvalidParameterError


@dataclass(frozen=True)
class SoftmaxRegression:
    """A fitted model: ``coef`` (1, d) for two classes else (k, d), ``intercept`` (1,) or (k,),
    in sklearn's layout; ``classes`` (k,) orders the probability columns."""

    classes: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    n_iter: int

    def full_coef(self) -> tuple[np.ndarray, np.ndarray]:
        """(k, d) weights and (k,) biases of one logit per class (binary: [0, z])."""
        if self.classes.shape[0] == 2:
            return np.vstack([np.zeros_like(self.coef), self.coef]), np.concatenate([[0.0], self.intercept])
        return self.coef, self.intercept

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits (n, k), one column per class."""
        W, b = self.full_coef()
        Xa = np.asarray(X, dtype=np.float64)
        if Xa.ndim != 2 or Xa.shape[1] != W.shape[1]:
            raise DimensionMismatchError(f"X must be (n, {W.shape[1]}), got {Xa.shape}")
        return Xa @ W.T + b

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities (n, k), columns in the order of ``classes``."""
        return scipy.special.softmax(self.decision_function(X), axis=1)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes[self.decision_function(X).argmax(axis=1)]


def fit_softmax_regression(
    X: Any,
    y: Any,
    classes: Any = None,
    *,
    C: float = 1.0,
    sample_weight: Any = None,
    max_iter: int = 1000,
    tol: float = 1e-6,
) -> SoftmaxRegression:
    """Fit the objective of the module docstring with L-BFGS from zero coefficients.

    ``classes`` defaults to the sorted labels of ``y``; ``tol`` bounds the largest gradient
    entry of the objective divided by the total sample weight (sklearn's convention).
    """
    Xa, codes, cls, s = _checked(X, y, classes, C, sample_weight)
    k, d = cls.shape[0], Xa.shape[1]
    binary = k == 2
    q = 1 if binary else k
    T = np.eye(k)[codes]
    total = float(s.sum())

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        W, b = theta[: q * d].reshape(q, d), theta[q * d :]
        value, gW, gb = _loss(Xa, T, s, C, W, b, binary)
        return value / total, np.concatenate((gW.ravel(), gb)) / total

    res = scipy.optimize.minimize(
        loss,
        np.zeros(q * d + q),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": int(max_iter), "gtol": float(tol), "ftol": 64 * np.finfo(float).eps, "maxls": 50},
    )
    return SoftmaxRegression(
        classes=cls, coef=res.x[: q * d].reshape(q, d), intercept=res.x[q * d :], n_iter=int(res.nit)
    )


def penalised_loss(
    model: SoftmaxRegression, X: Any, y: Any, *, C: float, sample_weight: Any = None
) -> tuple[float, np.ndarray, np.ndarray]:
    """The objective at ``model`` and its gradient (same shapes as ``coef`` and ``intercept``)."""
    Xa, codes, cls, s = _checked(X, y, model.classes, C, sample_weight)
    T = np.eye(cls.shape[0])[codes]
    return _loss(Xa, T, s, C, model.coef, model.intercept, cls.shape[0] == 2)


def torch_linear(model: SoftmaxRegression) -> Any:
    """A float32 ``torch.nn.Linear(d, k)`` whose logits are ``model.decision_function``'s."""
    import torch  # the client imports specs without needing torch for this module

    W, b = model.full_coef()
    linear = torch.nn.Linear(W.shape[1], W.shape[0])
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(W, dtype=torch.float32))
        linear.bias.copy_(torch.tensor(b, dtype=torch.float32))
    return linear


def _loss(
    X: np.ndarray, T: np.ndarray, s: np.ndarray, C: float, W: np.ndarray, b: np.ndarray, binary: bool
) -> tuple[float, np.ndarray, np.ndarray]:
    logits = X @ W.T + b
    if binary:
        logits = np.hstack([np.zeros((X.shape[0], 1)), logits])
    log_p = logits - scipy.special.logsumexp(logits, axis=1, keepdims=True)
    G = s[:, None] * (np.exp(log_p) - T)
    if binary:
        G = G[:, 1:]
    value = -float((s[:, None] * T * log_p).sum()) + float((W * W).sum()) / (2 * C)
    return value, G.T @ X + W / C, G.sum(axis=0)


def _checked(
    X: Any, y: Any, classes: Any, C: float, sample_weight: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X (n, d) float64, class codes (n,), classes (k,), weights (n,)), or a named error."""
    if not C > 0:
        raise InvalidParameterError(f"C must be > 0, got {C!r}")
    Xa = np.asarray(X, dtype=np.float64)
    y_arr = np.asarray(y).reshape(-1)
    if Xa.ndim != 2 or Xa.shape[0] != y_arr.shape[0] or Xa.shape[0] == 0:
        raise DimensionMismatchError(
            f"X must be (n, d) with n = len(y) > 0, got {Xa.shape} and {y_arr.shape[0]} labels"
        )
    if not np.isfinite(Xa).all():
        raise InvalidDataError("X holds NaN or infinite values")
    cls = np.unique(y_arr) if classes is None else np.asarray(classes)
    codes = np.searchsorted(cls, y_arr) if classes is None else _codes(cls, y_arr)
    if np.unique(codes).shape[0] < 2:
        raise InvalidDataError("y must hold at least two classes")
    s = (
        np.ones(Xa.shape[0])
        if sample_weight is None
        else np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    )
    if s.shape[0] != Xa.shape[0] or not np.isfinite(s).all() or (s < 0).any() or s.sum() <= 0:
        raise InvalidDataError("sample_weight must be n finite non-negative numbers with a positive sum")
    return Xa, codes, cls, s


def _codes(classes: np.ndarray, y: np.ndarray) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes.tolist())}
    unknown = sorted({str(v) for v in y.tolist() if v not in index})
    if unknown:
        raise InvalidDataError(f"labels not in classes: {', '.join(unknown[:5])}")
    if len(index) != classes.shape[0]:
        raise InvalidParameterError("classes must be distinct")
    return np.array([index[v] for v in y.tolist()], dtype=np.int64)
