"""LogME's tridiagonal route (n > d) against the exact route and the dense reference.

The tridiagonal route never forms eigenvectors; it must give the exact route's numbers,
and hand over to it wherever its error bound cannot vouch for them.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose

from specs.exceptions import InvalidDataError
from specs.transferability import LogME, _logme_gram, logme
from tests.specs.transferability.test_logme import reference_logme

# ``specs.transferability.logme`` the attribute is the function; the module is in sys.modules.
logme_module = sys.modules["specs.transferability.logme"]


def _exact_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise logme_module.Imprecise

    monkeypatch.setattr(logme_module, "_tridiagonal_evidence", refuse)


def _count_exact_route(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = logme_module.spectral_projection

    def counting(*args: object) -> object:
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(logme_module, "spectral_projection", counting)
    return calls


@pytest.mark.parametrize(
    ("n", "d", "regression", "epsilon"),
    [
        (400, 30, False, 0.0),
        (300, 200, False, 0.0),
        (250, 12, True, 0.0),
        (400, 30, False, 1e-5),
    ],
)
def test_tridiagonal_route_equals_the_exact_route(
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
    n: int,
    d: int,
    regression: bool,
    epsilon: float,
) -> None:
    y = rng.integers(0, 5, n)
    F = rng.normal(size=(5, d))[y] * 0.5 + rng.normal(size=(n, d))
    target = F[:, :3] @ rng.normal(size=(3, 2)) + rng.normal(size=(n, 2)) if regression else y
    calls = _count_exact_route(monkeypatch)
    fast = LogME(regression=regression, epsilon=epsilon).fit(F, target)
    assert calls == []  # well-conditioned F, n > d: the tridiagonal route vouched for itself
    _exact_only(monkeypatch)
    exact = LogME(regression=regression, epsilon=epsilon).fit(F, target)
    assert calls == [1]
    assert_allclose(fast.evidence_, exact.evidence_, rtol=1e-11)
    assert_allclose(fast.alpha_, exact.alpha_, rtol=1e-8)
    assert_allclose(fast.beta_, exact.beta_, rtol=1e-8)


def test_tridiagonal_route_equals_the_dense_reference(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    y = rng.integers(0, 4, 300)
    F = rng.normal(size=(4, 25))[y] + rng.normal(size=(300, 25))
    calls = _count_exact_route(monkeypatch)
    assert_allclose(logme(F, y), reference_logme(F, np.eye(4)[y]), rtol=1e-6)
    assert calls == []


def test_ill_conditioned_features_take_the_exact_route(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Column scales over 6 decades: the Gram's rounding swamps its smallest eigenvalues.
    y = rng.integers(0, 3, 200)
    F = (rng.normal(size=(3, 15))[y] + rng.normal(size=(200, 15))) * np.logspace(0, -6, 15)
    calls = _count_exact_route(monkeypatch)
    assert_allclose(logme(F, y), reference_logme(F, np.eye(3)[y]), rtol=1e-6)
    assert calls == [1]


def test_targets_in_the_span_of_the_features_are_still_named(rng: np.random.Generator) -> None:
    # n > d, but F holds the class indicators themselves: a noise-free fit, unbounded evidence.
    y = rng.integers(0, 3, 120)
    F = np.hstack([np.eye(3)[y], rng.normal(size=(120, 5))])
    with pytest.raises(InvalidDataError, match=r"y column 0 lies exactly in the span of F's 8 < n = 120"):
        logme(F, y)


@pytest.mark.parametrize("scale", [1e-160, 1e-6, 1e150, 1e160])
def test_tridiagonal_route_does_not_depend_on_the_scale_of_the_features(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, scale: float
) -> None:
    y = rng.integers(0, 4, 300)
    F = rng.normal(size=(4, 20))[y] + rng.normal(size=(300, 20))
    calls = _count_exact_route(monkeypatch)
    est, unscaled = LogME().fit(scale * F, y), LogME().fit(F, y)
    assert calls == []  # the Gram of F ~ 1e160 would overflow: F is scaled first, not refused
    assert_allclose(est.evidence_, unscaled.evidence_, rtol=1e-10)
    if abs(np.log10(scale)) <= 150:  # beyond, alpha itself leaves float64's range
        assert_allclose(
            est.alpha_, unscaled.alpha_ * scale**2, rtol=1e-8
        )  # m shrinks by 1/scale: alpha absorbs it


@pytest.mark.parametrize(("n", "d"), [(400, 10), (2000, 5), (300, 30)])
def test_features_without_signal_give_the_exact_routes_numbers(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, n: int, d: int
) -> None:
    # Labels independent of F: t = alpha / beta climbs far above the spectrum, where
    # d - t tr (T + t I)^-1 cancels and gamma comes from the eigenvalues or the series in s / t.
    y = rng.integers(0, 3, n)
    F = rng.normal(size=(n, d))
    calls = _count_exact_route(monkeypatch)
    fast = LogME().fit(F, y)
    assert calls == []
    assert fast.alpha_.max() > 1e3 * np.linalg.norm(F, 2) ** 2 / n  # a weak prior: t is large
    _exact_only(monkeypatch)
    exact = LogME().fit(F, y)
    assert_allclose(fast.evidence_, exact.evidence_, rtol=1e-11)
    assert_allclose(fast.score_, exact.score_, rtol=1e-12)


# t within the spectrum, above it (gamma = d - t tr cancels: eigenvalues) and far above (series).
@pytest.mark.parametrize(
    ("scale", "needs_eigenvalues"),
    [
        (1e-6, False),
        (1e-2, False),
        (1.0, False),
        (1e2, False),
        (1e4, True),
        (1e11, False),
    ],
)
def test_tridiagonal_sums_equal_sums_over_a_dense_eigensolvers_eigenvalues(
    rng: np.random.Generator, scale: float, needs_eigenvalues: bool
) -> None:
    n, d, classes = 400, 30, 5
    y = rng.integers(0, classes, n)
    F = rng.normal(size=(classes, d))[y] * 0.5 + rng.normal(size=(n, d))
    targets, _ = _logme_gram.reduce_gram(F, np.eye(classes)[y], 1.0)
    T = np.diag(targets.diag) + np.diag(targets.off, 1) + np.diag(targets.off, -1)
    s = np.linalg.eigvalsh(T)
    t = scale * s.max() * np.array([1.0, 1.5, 2.0, 3.0, 5.0])  # one t per target column
    denom = s[:, None] + t[None, :]
    assert_allclose(targets.trace_inverse(t), (1.0 / denom).sum(axis=0), rtol=1e-12)
    gamma, rest = targets.spectral_sums(t, n)
    assert_allclose(gamma, (s[:, None] / denom).sum(axis=0), rtol=1e-10)
    assert_allclose(rest, (n - d) + (t[None, :] / denom).sum(axis=0), rtol=1e-12)
    assert_allclose(targets.log_det(t), np.log1p(s[:, None] / t[None, :]).sum(axis=0), rtol=1e-10)
    dense = np.stack(
        [np.linalg.solve(T + t_c * np.eye(d), targets.Z[:, c]) for c, t_c in enumerate(t)], axis=1
    )
    assert_allclose(targets.solve(t), dense, rtol=1e-10, atol=1e-14 * np.abs(dense).max())
    # dsterf (as slow as the reduction's other half at d = 768) runs only where gamma cancels.
    assert (targets._eigenvalues is not None) == needs_eigenvalues


def test_apply_qt_equals_the_explicit_orthogonal_factor(rng: np.random.Generator) -> None:
    import scipy.linalg.lapack as lapack

    d = 40
    A = rng.normal(size=(60, d))
    G = A.T @ A
    c, diag, off, tau, info = lapack.dsytrd(G.T.copy(), lower=1)
    assert info == 0
    # Q = H(0) ... H(d-2), H(i) = I - tau_i v v^T with v = e_(i+1) + c[i+2:, i] below it.
    Q = np.eye(d)
    for i in range(d - 1):
        v = np.zeros(d)
        v[i + 1] = 1.0
        v[i + 2 :] = c[i + 2 :, i]
        Q = Q @ (np.eye(d) - tau[i] * np.outer(v, v))
    T = np.diag(diag) + np.diag(off, 1) + np.diag(off, -1)
    assert_allclose(Q.T @ G @ Q, T, atol=1e-10 * np.abs(G).max())  # the factor is the right one
    B = rng.normal(size=(d, 3))
    assert_allclose(_logme_gram.apply_qt(c, tau, B), Q.T @ B, atol=1e-12 * np.abs(B).max())
