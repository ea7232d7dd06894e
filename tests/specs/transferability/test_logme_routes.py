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
from specs.transferability import LogME, logme
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


@pytest.mark.parametrize(("n", "d", "regression", "epsilon"), [
    (400, 30, False, 0.0), (300, 200, False, 0.0), (250, 12, True, 0.0), (400, 30, False, 1e-5),
])
def test_tridiagonal_route_equals_the_exact_route(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch,
                                                  n: int, d: int, regression: bool, epsilon: float) -> None:
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


def test_tridiagonal_route_equals_the_dense_reference(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    y = rng.integers(0, 4, 300)
    F = rng.normal(size=(4, 25))[y] + rng.normal(size=(300, 25))
    calls = _count_exact_route(monkeypatch)
    assert_allclose(logme(F, y), reference_logme(F, np.eye(4)[y]), rtol=1e-6)
    assert calls == []


def test_ill_conditioned_features_take_the_exact_route(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
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
        rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, scale: float) -> None:
    y = rng.integers(0, 4, 300)
    F = rng.normal(size=(4, 20))[y] + rng.normal(size=(300, 20))
    calls = _count_exact_route(monkeypatch)
    est, unscaled = LogME().fit(scale * F, y), LogME().fit(F, y)
    assert calls == []  # the Gram of F ~ 1e160 would overflow: F is scaled first, not refused
    assert_allclose(est.evidence_, unscaled.evidence_, rtol=1e-10)
    if abs(np.log10(scale)) <= 150:  # beyond, alpha itself leaves float64's range
        assert_allclose(est.alpha_, unscaled.alpha_ * scale**2, rtol=1e-8)  # m shrinks by 1/scale: alpha absorbs it
