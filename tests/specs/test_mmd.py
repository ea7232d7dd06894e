from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from specs.exceptions import DimensionMismatchError, InvalidDataError
from specs.mmd import (
    batch_self_terms,
    cross_terms,
    mmd_squared,
    mmd_squared_batch,
    mmd_to_data,
    self_term,
)
from tests.specs.conftest import blobs


def brute_mmd2(Z1, b1, Z2, b2, gamma) -> float:
    """MMD^2 as ||sum b1 phi - sum b2 phi||^2 expanded over all point pairs, one at a time."""
    pts = [(z, w) for z, w in zip(Z1, b1, strict=True)] + [(z, -w) for z, w in zip(Z2, b2, strict=True)]
    return sum(wa * wb * math.exp(-gamma * float(np.sum((za - zb) ** 2))) for za, wa in pts for zb, wb in pts)


def random_spec(rng, K, d, shift=0.0):
    return rng.normal(size=(K, d)) + shift, rng.dirichlet(np.ones(K))


def test_mmd_squared_matches_pairwise_expansion(rng):
    (Z1, b1), (Z2, b2) = random_spec(rng, 6, 3), random_spec(rng, 4, 3, 0.5)
    assert_allclose(mmd_squared(Z1, b1, Z2, b2, 0.3), brute_mmd2(Z1, b1, Z2, b2, 0.3), rtol=1e-12)


def test_mmd_squared_is_zero_on_itself_symmetric_and_nonnegative(rng):
    (Z1, b1), (Z2, b2) = random_spec(rng, 8, 4), random_spec(rng, 5, 4, 1.0)
    assert mmd_squared(Z1, b1, Z1, b1, 0.2) == pytest.approx(0.0, abs=1e-14)
    assert mmd_squared(Z1, b1, Z2, b2, 0.2) == pytest.approx(mmd_squared(Z2, b2, Z1, b1, 0.2), rel=1e-13)
    for seed in range(20):
        r = np.random.default_rng(seed)
        assert mmd_squared(*random_spec(r, 3, 2), *random_spec(r, 3, 2), 5.0) >= 0.0


def test_mmd_squared_rejects_specs_of_different_dimension(rng):
    with pytest.raises(DimensionMismatchError, match="spec1.*d=3.*spec2.*d=4"):
        mmd_squared(*random_spec(rng, 3, 3), *random_spec(rng, 3, 4), 1.0)


def test_mmd_squared_rejects_beta_of_wrong_length(rng):
    with pytest.raises(DimensionMismatchError, match="spec1.beta"):
        mmd_squared(np.ones((3, 2)), np.ones(2), np.ones((3, 2)), np.ones(3), 1.0)


def padded_batch(rng, sizes, d):
    Kc = max(sizes)
    Zs, betas, parts = np.zeros((len(sizes), Kc, d)), np.zeros((len(sizes), Kc)), []
    for i, k in enumerate(sizes):
        Z, b = random_spec(rng, k, d, shift=0.3 * i)
        Zs[i, :k], betas[i, :k] = Z, b
        Zs[i, k:] = 99.0  # padding points far away: must not matter, their weight is 0
        parts.append((Z, b))
    return Zs, betas, parts


def test_batch_equals_pairwise_formula_with_padding_and_chunking(rng):
    Zs, betas, parts = padded_batch(rng, [5, 3, 7, 1, 6], 3)
    Z, b = random_spec(rng, 4, 3)
    expected = [mmd_squared(Z, b, Zc, bc, 0.5) for Zc, bc in parts]
    assert_allclose(mmd_squared_batch(Z, b, Zs, betas, 0.5), expected, rtol=1e-11, atol=1e-15)
    # Blocks of one candidate (tiny block_entries) give the same numbers.
    assert_allclose(
        mmd_squared_batch(Z, b, Zs, betas, 0.5, block_entries=1), expected, rtol=1e-11, atol=1e-15
    )
    st = batch_self_terms(Zs, betas, 0.5, block_entries=1)
    empty = (np.empty((0, 3)), np.empty(0))
    assert_allclose(st, [brute_mmd2(Zc, bc, *empty, 0.5) for Zc, bc in parts], rtol=1e-12)
    assert_allclose(st, [self_term(Zc, bc, 0.5) for Zc, bc in parts], rtol=1e-12)
    assert_allclose(mmd_squared_batch(Z, b, Zs, betas, 0.5, st), expected, rtol=1e-11, atol=1e-15)

    # <u, c> = (||u||^2 + ||c||^2 - MMD^2) / 2, each term by the pairwise expansion.
    def norm2(Zx, bx):
        return brute_mmd2(Zx, bx, np.empty((0, 3)), np.empty(0), 0.5)

    inner = [(norm2(Z, b) + norm2(Zc, bc) - brute_mmd2(Z, b, Zc, bc, 0.5)) / 2 for Zc, bc in parts]
    assert_allclose(cross_terms(Z, b, Zs, betas, 0.5), inner, rtol=1e-10)


def test_batch_rejects_wrong_shapes(rng):
    Zs, betas, _ = padded_batch(rng, [2, 2], 3)
    Z, b = random_spec(rng, 2, 3)
    with pytest.raises(DimensionMismatchError, match="betas"):
        mmd_squared_batch(Z, b, Zs, betas[:, :1], 1.0)
    with pytest.raises(DimensionMismatchError, match="query.*candidates"):
        mmd_squared_batch(Z[:, :2], b, Zs, betas, 1.0)
    with pytest.raises(InvalidDataError, match="3-D"):
        mmd_squared_batch(Z, b, Zs[0], betas, 1.0)
    with pytest.raises(DimensionMismatchError, match="self_terms"):
        mmd_squared_batch(Z, b, Zs, betas, 1.0, self_terms=np.ones(3))


def test_mmd_to_data_equals_mmd_to_uniform_weights(rng):
    X = blobs(rng, 40, 3, 0.0)
    Z, b = random_spec(rng, 5, 3)
    expected = brute_mmd2(Z, b, X, np.full(40, 1 / 40), 0.25)
    assert_allclose(mmd_to_data(Z, b, X, 0.25), expected, rtol=1e-11)
