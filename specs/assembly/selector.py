"""Job selectors: route each user sample to the one learnware that should handle it.

* :class:`RKMEJobSelector` is zero-shot: member i's RKME ``(Z_i, beta_i)`` estimates the
  kernel mean embedding of its training distribution, so ``w_i sum_j beta_ij k(x, z_ij)``
  is (up to a shared constant) a kernel density of x under member i weighted by its
  mixture weight; a sample goes to the member with the largest value.
* :class:`RKMESoftSelector` is the same router without the hard decision: each sample's output
  is the members' outputs weighted by its responsibilities (a mixture of experts gated by the
  RKME densities). Where one member's density dominates it is the job selector; where the
  members' data overlap it averages instead of betting the row on a near coin flip.
* :class:`TrainedJobSelector` needs a labelled sample: each sample's target is the member
  with the lowest loss on it, and a multinomial logistic regression on the features
  learns to predict that target for new samples. Given an RKME job selector, it also
  takes that router's log-responsibilities as features, so a few labels can correct
  the zero-shot routing instead of learning the routing from scratch.

The learnware package's JobSelectorReuser does the second with the RKME assignment as
the target and a gradient-boosted selector; here the target is the measured loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from specs.assembly._base import (
    Assembly,
    Member,
    as_array,
    as_probabilities,
    as_regression,
    check_task,
    collect_outputs,
)
from specs.assembly.ensemble import member_losses
from specs.exceptions import (
    DimensionMismatchError,
    InvalidDataError,
    InvalidParameterError,
)
from specs.kernels import squared_distances
from specs.logistic import fit_softmax_regression


class _Router(Assembly):
    """predict / predict_proba by evaluating each member on the rows routed to it."""

    task: str
    n_classes: int | None
    n_members_: int  # set by fit

    def route(self, X: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _routed(self, members: Sequence[Member], X: Any) -> np.ndarray:
        self._check_fitted()
        Xa = as_array(X, "X")
        route = self.route(Xa)
        if len(members) != self.n_members_:
            raise DimensionMismatchError(
                f"got {len(members)} members, the selector was fitted on {self.n_members_}"
            )
        out: np.ndarray | None = None
        for i in np.unique(route):
            rows = np.flatnonzero(route == i)
            if not callable(members[i]) and len(members[i]) != Xa.shape[0]:
                raise DimensionMismatchError(f"members[{i}] has {len(members[i])} rows, X {Xa.shape[0]}")
            (o,) = collect_outputs([members[i]], Xa, rows=rows)
            o = (
                as_probabilities(o, self.n_classes, f"members[{i}]")
                if self.task == "classification" and self.n_classes is not None
                else as_regression(o, f"members[{i}]")
            )
            if out is None:
                out = np.zeros((Xa.shape[0], o.shape[1]))
            out[rows] = o
        assert out is not None
        return out

    def predict_proba(self, members: Sequence[Member], X: Any) -> np.ndarray:
        """Probabilities (n, C), each row from the member its sample is routed to."""
        if self.task != "classification":
            raise InvalidParameterError("predict_proba needs task='classification'")
        return self._routed(members, X)

    def predict(self, members: Sequence[Member], X: Any) -> np.ndarray:
        """Class index (n,) or regression output (n,) / (n, t) of each routed member."""
        out = self._routed(members, X)
        if self.task == "classification":
            return out.argmax(axis=1)
        return out[:, 0] if out.shape[1] == 1 else out


class RKMEJobSelector(_Router):
    """Zero-shot routing by RKME responsibilities.

    Parameters
    ----------
    task : {"classification", "regression"}
    n_classes : int, optional (classification)

    Attributes
    ----------
    Z_ : ndarray of shape (sum K_i, d)
        All members' reduced points, stacked.
    beta_ : ndarray of shape (sum K_i,)
    owner_ : ndarray of shape (sum K_i,), int
        Member index of each point.
    gamma_ : float
    weights_ : ndarray of shape (m,)
        Mixture weights (uniform when not given).
    """

    kind = "rkme_job_selector"
    _fitted_attribute = "Z_"

    def __init__(self, *, task: str = "classification", n_classes: int | None = None) -> None:
        self.task = check_task(task)
        self.n_classes = n_classes

    def fit(
        self, Zs: Sequence[Any], betas: Sequence[Any], gamma: float, weights: Any = None
    ) -> RKMEJobSelector:
        """Store the members' RKMEs (Z_i (K_i, d), beta_i (K_i,)), shared gamma and weights (m,)."""
        if len(Zs) == 0 or len(Zs) != len(betas):
            raise DimensionMismatchError(f"got {len(Zs)} Z arrays and {len(betas)} beta arrays")
        Z = [as_array(z, f"Zs[{i}]") for i, z in enumerate(Zs)]
        B = [as_array(b, f"betas[{i}]").reshape(-1) for i, b in enumerate(betas)]
        for i, (z, b) in enumerate(zip(Z, B, strict=True)):
            if z.ndim != 2 or z.shape[0] != b.shape[0] or z.shape[1] != Z[0].shape[1]:
                raise DimensionMismatchError(f"Zs[{i}] {z.shape} / betas[{i}] {b.shape} do not match")
        if not gamma > 0:
            raise InvalidParameterError(f"gamma must be > 0, got {gamma!r}")
        m = len(Z)
        w = np.ones(m) / m if weights is None else as_array(weights, "weights").reshape(-1)
        if w.shape[0] != m or np.any(w < 0) or w.sum() <= 0:
            raise InvalidParameterError(f"weights must be {m} non-negative values, not all zero")
        self.Z_ = np.vstack(Z)
        self.beta_ = np.concatenate(B)
        self.owner_ = np.repeat(np.arange(m), [z.shape[0] for z in Z])
        self.gamma_ = float(gamma)
        self.weights_ = w / w.sum()
        self.n_members_ = m
        return self

    def densities(self, X: Any) -> np.ndarray:
        """``w_i sum_j beta_ij k(x, z_ij)`` per sample and member, rescaled per row; (n, m).

        Each row is multiplied by ``exp(gamma * min_j ||x - z_j||^2)``, the minimum over
        the points of members with a positive weight, so that samples far from every point
        do not underflow to all-zero rows; ratios are unchanged. A member of weight 0 gets
        density 0 and is never routed to.
        """
        self._check_fitted()
        Xa = as_array(X, "X")
        if Xa.ndim != 2 or Xa.shape[1] != self.Z_.shape[1]:
            raise DimensionMismatchError(f"X has shape {Xa.shape}, the RKMEs have d={self.Z_.shape[1]}")
        D = squared_distances(Xa, self.Z_)
        live = self.weights_[self.owner_] > 0
        K = np.exp(-self.gamma_ * np.maximum(D - D[:, live].min(axis=1, keepdims=True), 0.0))
        dens = np.zeros((Xa.shape[0], self.n_members_))
        np.add.at(dens.T, self.owner_, (K * self.beta_).T)
        return dens * self.weights_

    def responsibilities(self, X: Any) -> np.ndarray:
        """Densities clipped at 0 and normalised per row; (n, m), rows sum to 1."""
        dens = np.maximum(self.densities(X), 0.0)
        total = dens.sum(axis=1, keepdims=True)
        return np.divide(dens, total, out=np.full(dens.shape, 1.0 / dens.shape[1]), where=total > 0)

    def route(self, X: Any) -> np.ndarray:
        """Member index (n,) with the largest weighted density."""
        return self.densities(X).argmax(axis=1)

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        header = {
            "task": self.task,
            "n_classes": self.n_classes,
            "gamma": self.gamma_,
            "n_members": self.n_members_,
        }
        return header, {"Z": self.Z_, "beta": self.beta_, "owner": self.owner_, "weights": self.weights_}

    @classmethod
    def _from_state(cls, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> RKMEJobSelector:
        obj = cls(task=header["task"], n_classes=header["n_classes"])
        m = int(header["n_members"])
        Zs = [arrays["Z"][arrays["owner"] == i] for i in range(m)]
        betas = [arrays["beta"][arrays["owner"] == i] for i in range(m)]
        return obj.fit(Zs, betas, float(header["gamma"]), arrays["weights"])


class RKMESoftSelector(RKMEJobSelector):
    """Zero-shot soft routing: ``sum_i r_i(x) f_i(x)``, ``r_i`` the RKME responsibilities
    (:meth:`RKMEJobSelector.responsibilities`) and ``f_i`` member i's output.

    It is the prediction of the mixture model the job selector already assumes (a row comes from
    member i with probability r_i(x)) instead of that model's single most likely member; its kernel
    should make the responsibilities calibrated rather than sharp
    (``specs.assembly.route_bandwidth.choose_soft_route_gamma_factor``). Members of weight 0 have
    responsibility 0 everywhere and are not evaluated.
    """

    kind = "rkme_soft_selector"

    def _routed(self, members: Sequence[Member], X: Any) -> np.ndarray:
        self._check_fitted()
        Xa = as_array(X, "X")
        if len(members) != self.n_members_:
            raise DimensionMismatchError(
                f"got {len(members)} members, the selector was fitted on {self.n_members_}"
            )
        r = self.responsibilities(Xa)
        out: np.ndarray | None = None
        for i in (int(j) for j in np.flatnonzero(r.max(axis=0) > 0)):
            (o,) = collect_outputs([members[i]], Xa)
            o = (
                as_probabilities(o, self.n_classes, f"members[{i}]")
                if self.task == "classification" and self.n_classes is not None
                else as_regression(o, f"members[{i}]")
            )
            if o.shape[0] != Xa.shape[0]:
                raise DimensionMismatchError(f"members[{i}] has {o.shape[0]} rows, X {Xa.shape[0]}")
            out = r[:, i, None] * o if out is None else out + r[:, i, None] * o
        assert out is not None  # each row's responsibilities sum to 1, so some member has r > 0
        return out


class TrainedJobSelector(_Router):
    """Route by a multinomial logistic regression trained to predict the best member.

    Parameters
    ----------
    task : {"classification", "regression"}
    n_classes : int, optional (classification)
    C : float, default=1.0
        Inverse L2 strength: loss = sum of cross-entropies + ||W||^2 / (2 C), fitted by
        ``specs.logistic.fit_softmax_regression`` (sklearn's convention: with two members one
        logit, stored as the columns [0, z]).
    max_iter : int, default=500

    Attributes
    ----------
    coef_ : ndarray of shape (d, m)
    intercept_ : ndarray of shape (m,)
    mean_, scale_ : ndarray of shape (d,)
        Feature standardisation learnt on the training X.
    router_ : RKMEJobSelector or None
        When given to ``fit``: its log-responsibilities (clipped at 1e-12) are m more
        features after X's d (``coef_``, ``mean_``, ``scale_`` then have d + m rows).
    """

    kind = "trained_job_selector"
    _fitted_attribute = "coef_"

    def __init__(
        self,
        *,
        task: str = "classification",
        n_classes: int | None = None,
        C: float = 1.0,
        max_iter: int = 500,
    ) -> None:
        self.task = check_task(task)
        self.n_classes = n_classes
        if not C > 0:
            raise InvalidParameterError(f"C must be > 0, got {C!r}")
        self.C, self.max_iter = float(C), int(max_iter)

    def fit(
        self, X: Any, members: Sequence[Member], y: Any, router: RKMEJobSelector | None = None
    ) -> TrainedJobSelector:
        """Learn the routing from features X (n, d), member outputs on X and labels y (n,).

        ``router`` (an RKME job selector over the same members) adds its log-responsibilities
        as features.
        """
        Xa = as_array(X, "X")
        if Xa.ndim != 2:
            raise InvalidDataError(f"X must be (n, d), got {Xa.shape}")
        if router is not None and router.n_members_ != len(members):
            raise DimensionMismatchError(
                f"the router has {router.n_members_} members, got {len(members)} outputs"
            )
        self.router_ = router
        losses = member_losses(collect_outputs(members, Xa), y, self.task, self.n_classes or 0)
        m = losses.shape[0]
        target = losses.argmin(axis=0)
        # A sample on which every member does equally well or badly says nothing about routing.
        informative = np.ptp(losses, axis=0) > 1e-12
        Xa = self._features(Xa)
        self.mean_ = Xa.mean(axis=0)
        self.scale_ = np.where(Xa.std(axis=0) > 0, Xa.std(axis=0), 1.0)
        self.n_members_ = m
        self.coef_, self.intercept_ = _routing_regression(
            (Xa[informative] - self.mean_) / self.scale_,
            target[informative],
            m,
            self.C,
            self.max_iter,
            fallback=np.bincount(target, minlength=m),
        )
        return self

    def _features(self, X: np.ndarray) -> np.ndarray:
        """X (n, d), and with a router its log-responsibilities: (n, d + m)."""
        if self.router_ is None:
            return X
        return np.hstack([X, np.log(np.maximum(self.router_.responsibilities(X), 1e-12))])

    def route(self, X: Any) -> np.ndarray:
        """Member index (n,) with the highest predicted probability of being best."""
        self._check_fitted()
        Xa = self._features(as_array(X, "X"))
        return (((Xa - self.mean_) / self.scale_) @ self.coef_ + self.intercept_).argmax(axis=1)

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        header = {
            "task": self.task,
            "n_classes": self.n_classes,
            "C": self.C,
            "max_iter": self.max_iter,
            "n_members": self.n_members_,
        }
        arrays = {"coef": self.coef_, "intercept": self.intercept_, "mean": self.mean_, "scale": self.scale_}
        if self.router_ is not None:
            router_header, router_arrays = self.router_._state()
            header["router_gamma"] = router_header["gamma"]
            arrays.update({f"router_{k}": v for k, v in router_arrays.items()})
        return header, arrays

    @classmethod
    def _from_state(cls, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> TrainedJobSelector:
        obj = cls(
            task=header["task"], n_classes=header["n_classes"], C=header["C"], max_iter=header["max_iter"]
        )
        obj.coef_, obj.intercept_ = arrays["coef"], arrays["intercept"]
        obj.mean_, obj.scale_ = arrays["mean"], arrays["scale"]
        obj.n_members_ = int(header["n_members"])
        obj.router_ = None
        if "router_gamma" in header:
            obj.router_ = RKMEJobSelector._from_state(
                {
                    "task": header["task"],
                    "n_classes": header["n_classes"],
                    "gamma": header["router_gamma"],
                    "n_members": header["n_members"],
                },
                {k.removeprefix("router_"): v for k, v in arrays.items() if k.startswith("router_")},
            )
        return obj


def _routing_regression(
    X: np.ndarray, t: np.ndarray, m: int, C: float, max_iter: int, fallback: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(coef (d, m), intercept (m,)) of the L2 logistic regression of the best member index t."""
    d = X.shape[1]
    if np.unique(t).shape[0] < 2:
        # One member (or none) is ever strictly best: route everything to the most frequent.
        return np.zeros((d, m)), np.eye(m)[int(np.argmax(fallback))]
    W, b = fit_softmax_regression(X, t, classes=np.arange(m), C=C, max_iter=max_iter).full_coef()
    return W.T, b
