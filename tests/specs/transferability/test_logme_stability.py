"""LogME stays finite on the inputs that made it NaN in the submissions pipeline.

Mean-pooled MiniLM layer states of a 16-sentence sample: n = 16 < d = 384, a dominant
common component with a few outlier dimensions, near-duplicate sentences. With n < d
the targets always lie in the span of F and the evidence peaks as the noise precision
runs to infinity; the old Gram-based fixed point overflowed there and returned NaN.
The reference below maximises the marginal likelihood N(y; 0, F F^T / alpha + I / beta)
directly, with dense linear algebra and a generic optimiser.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
from numpy.testing import assert_allclose

from specs.exceptions import InvalidDataError
from specs.transferability import LogME, logme


def minilm_like_states(
    n_dup: int, *, n: int = 16, d: int = 384, dup: float = 1e-3, seed: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    common = rng.normal(size=d)
    common[:3] *= 30  # the few large outlier dimensions of transformer hidden states
    F = common + 0.3 * rng.normal(size=(n, d))
    y = np.arange(n) % 2
    for j in range(n_dup):  # the same sentence again, up to float noise, with the same label
        F[n - 1 - j] = F[j] + dup * rng.normal(size=d)
        y[n - 1 - j] = y[j]
    return F, y


def dense_log_likelihood(F: np.ndarray, y: np.ndarray, log_alpha: float, log_beta: float) -> float:
    """log N(y; 0, F F^T / alpha + I / beta), divided by n: the evidence, without eigenvalues."""
    n = F.shape[0]
    C = F @ F.T * np.exp(-log_alpha) + np.eye(n) * np.exp(-log_beta)
    sign, logdet = np.linalg.slogdet(C)
    assert sign > 0
    return float(-0.5 * (logdet + y @ np.linalg.solve(C, y) + n * np.log(2 * np.pi)) / n)


def dense_max_log_evidence(F: np.ndarray, y: np.ndarray) -> float:
    """The largest of :func:`dense_log_likelihood` a generic optimiser finds over (alpha, beta)."""
    # Wide bounds: with n < d the maximum sits where beta is effectively infinite.
    bounds = [(-60.0, 60.0), (-60.0, 90.0)]
    runs = [
        scipy.optimize.minimize(
            lambda p: -dense_log_likelihood(F, y, *p),
            x0,
            method="L-BFGS-B",
            bounds=bounds,
            options={"ftol": 1e-15, "gtol": 1e-12},
        )
        for x0 in ([0.0, 0.0], [-np.log((F * F).sum() / F.shape[0]), 10.0], [5.0, 40.0])
    ]
    return float(-min(r.fun for r in runs))


@pytest.mark.parametrize("n_dup", [1, 4])
def test_logme_is_finite_on_minilm_like_states_and_equals_the_dense_maximum(n_dup: int) -> None:
    F, y = minilm_like_states(n_dup)
    est = LogME().fit(F, y)
    assert np.isfinite(est.score_)
    targets = [(y == c).astype(float) for c in (0, 1)]
    # What LogME reports is attained: the dense likelihood at its (alpha_, beta_) ...
    attained = [
        dense_log_likelihood(F, t, np.log(a), np.log(b))
        for t, a, b in zip(targets, est.alpha_, est.beta_, strict=True)
    ]
    assert_allclose(est.evidence_, attained, rtol=0, atol=1e-8)
    # ... and no generic search does better (it stops a hair short on the flat ridge beta -> inf).
    found = [dense_max_log_evidence(F, t) for t in targets]
    assert np.all(est.evidence_ >= np.array(found) - 1e-9)
    assert_allclose(est.evidence_, found, rtol=0, atol=1e-5)


@pytest.mark.parametrize("scale", [1e-150, 1e-6, 1e6, 1e150])
def test_logme_does_not_depend_on_the_scale_of_the_features(scale: float) -> None:
    # alpha absorbs any rescaling of F, so the maximised evidence is the same.
    F, y = minilm_like_states(4)
    score = logme(F, y)
    assert np.isfinite(score)
    assert_allclose(logme(scale * F, y), score, rtol=1e-9)


def test_logme_of_zero_features_is_the_noise_only_evidence() -> None:
    y = np.arange(16) % 2
    n = y.shape[0]
    # F = 0: y ~ N(0, I / beta), maximised at beta = n / ||y||^2 for each one-hot column.
    per_column = [0.5 * np.log(n / (y == c).sum()) - 0.5 - 0.5 * np.log(2 * np.pi) for c in (0, 1)]
    assert_allclose(LogME().fit(np.zeros((n, 384)), y).evidence_, per_column, rtol=1e-12)


def test_logme_names_exact_duplicates_that_make_the_evidence_unbounded() -> None:
    F, y = minilm_like_states(1, dup=0.0)  # an exact duplicate row with its label: a noise-free fit exists
    with pytest.raises(InvalidDataError, match=r"y column 0 lies exactly in the span of F's 15 < n = 16"):
        logme(F, y)
    assert np.isfinite(LogME(epsilon=1e-5).fit(F, y).score_)  # thuml's guard bounds it
