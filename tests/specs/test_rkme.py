from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
import scipy.optimize
from numpy.testing import assert_allclose, assert_array_equal

from specs.exceptions import (
    IncompatibleSpaceError,
    InvalidDataError,
    InvalidParameterError,
    NotFittedError,
    SerializationError,
)
from specs.kernels import default_gamma
from specs.rkme import RKMESpecification, TableStandardizer, _Objective, rkme_fit
from tests.specs.conftest import blobs
from tests.specs.test_mmd import brute_mmd2


def two_blobs(rng, n=300, d=3):
    return np.vstack([blobs(rng, n // 2, d, -1.0), blobs(rng, n - n // 2, d, 1.5, 0.5)])


def test_fit_sets_shapes_and_default_gamma(rng):
    X = two_blobs(rng, d=4)
    spec = RKMESpecification(K=10, random_state=0).fit(X)
    assert spec.Z_.shape == (10, 4) and spec.beta_.shape == (10,)
    assert spec.Z_.dtype == np.float64 and spec.beta_.dtype == np.float64
    assert spec.gamma_ == default_gamma(4) and spec.n_samples_ == 300 and spec.n_features_in_ == 4


def test_mmd_to_data_matches_pairwise_expansion(rng):
    X = two_blobs(rng, n=60)
    spec = rkme_fit(X, K=6, gamma=0.3, random_state=0)
    expected = brute_mmd2(spec.Z_, spec.beta_, X, np.full(60, 1 / 60), 0.3)
    assert_allclose(spec.mmd_to_data(X), expected, rtol=1e-9)


def test_fidelity_improves_as_K_grows(rng):
    X = two_blobs(rng, n=400)
    errors = [rkme_fit(X, K=K, gamma=0.5, random_state=0).mmd_to_data(X) for K in (2, 5, 15, 40)]
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < errors[0] / 10


def test_beta_is_the_closed_form_optimum_for_the_fitted_points(rng):
    X = two_blobs(rng)
    spec = rkme_fit(X, K=8, gamma=0.4, random_state=1)
    G = np.exp(-0.4 * ((spec.Z_[:, None] - spec.Z_[None]) ** 2).sum(-1))
    c = np.exp(-0.4 * ((spec.Z_[:, None] - X[None]) ** 2).sum(-1)).mean(axis=1)
    assert_allclose(spec.beta_, np.linalg.solve(G + spec.ridge * np.eye(8), c), rtol=1e-6)


@pytest.mark.parametrize("nonneg", [False, True])
def test_gradient_of_objective_matches_finite_differences(rng, nonneg):
    X = two_blobs(rng, n=80)
    obj = _Objective(X, 0.4, 1e-6, nonneg)
    z0 = rng.normal(size=5 * 3)
    err = scipy.optimize.check_grad(lambda z: obj(z)[0], lambda z: obj(z)[1], z0, epsilon=1e-7)
    assert err < 1e-5 * np.linalg.norm(obj(z0)[1]) + 1e-9


def test_refining_points_improves_on_kmeans_initialisation(rng):
    X = two_blobs(rng, n=400)
    init = RKMESpecification(K=10, gamma=0.5, max_iter=1, random_state=0).fit(X).mmd_to_data(X)
    full = RKMESpecification(K=10, gamma=0.5, tol=1e-12, max_iter=500, random_state=0).fit(X)
    assert full.n_iter_ > 1
    assert full.mmd_to_data(X) < 0.9 * init
    # It stopped at a stationary point of the objective, not at the iteration cap.
    obj = _Objective(X, 0.5, full.ridge, False)
    start = RKMESpecification(K=10, gamma=0.5, max_iter=1, random_state=0).fit(X)
    assert np.linalg.norm(obj(full.Z_.ravel())[1]) < 1e-3 * np.linalg.norm(obj(start.Z_.ravel())[1])


def test_nonnegative_beta_satisfies_kkt(rng):
    X = two_blobs(rng)
    spec = RKMESpecification(K=12, gamma=0.4, nonnegative_beta=True, random_state=0).fit(X)
    Z, b = spec.Z_, spec.beta_
    assert (b >= 0).all()
    G = np.exp(-0.4 * ((Z[:, None] - Z[None]) ** 2).sum(-1)) + spec.ridge * np.eye(12)
    c = np.exp(-0.4 * ((Z[:, None] - X[None]) ** 2).sum(-1)).mean(axis=1)
    grad = G @ b - c
    assert_allclose(grad[b > 1e-12], 0.0, atol=1e-9)
    assert (grad[b <= 1e-12] >= -1e-9).all()


def test_same_seed_gives_identical_spec_and_other_seed_differs(rng):
    X = two_blobs(rng)
    a, b = rkme_fit(X, K=7, random_state=3), rkme_fit(X, K=7, random_state=3)
    assert_array_equal(a.Z_, b.Z_)
    assert_array_equal(a.beta_, b.beta_)
    assert not np.array_equal(a.Z_, rkme_fit(X, K=7, random_state=4).Z_)


def test_fewer_rows_than_K_gives_the_exact_embedding(rng):
    X = rng.normal(size=(5, 3))
    spec = rkme_fit(X, K=100, random_state=0)
    assert spec.Z_.shape == (5, 3)
    assert spec.mmd_to_data(X) == pytest.approx(0.0, abs=1e-14)


def test_duplicates_collapse_to_distinct_rows_with_frequencies(rng):
    rows = rng.normal(size=(4, 2))
    X = rows[[0, 0, 0, 1, 2, 2, 3, 3, 3, 3] * 30]
    spec = rkme_fit(X, K=10, random_state=0)
    assert spec.Z_.shape == (4, 2)
    order = [int(np.argmin(((rows - z) ** 2).sum(1))) for z in spec.Z_]
    assert_allclose(spec.beta_, np.array([0.3, 0.1, 0.2, 0.4])[order], rtol=1e-12)
    assert spec.mmd_to_data(X) == pytest.approx(0.0, abs=1e-14)


def test_constant_columns_and_many_duplicates_still_fit(rng):
    X = np.hstack([rng.normal(size=(200, 2)), np.full((200, 1), 7.0)])
    X = np.vstack([X, X[:50]])
    spec = rkme_fit(X, K=20, gamma=0.5, random_state=0)
    assert np.isfinite(spec.Z_).all() and np.isfinite(spec.beta_).all()
    assert spec.mmd_to_data(X) < 0.01


def test_subsampled_fit_keeps_memory_bounded_on_a_million_rows():
    X = np.random.default_rng(0).normal(size=(1_000_000, 4))
    tracemalloc.start()
    spec = RKMESpecification(K=20, max_iter=5, random_state=0).fit(X)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # A dense K x n kernel would be 160 MB; X itself (32 MB) is not copied.
    assert peak < 60 * 2**20, peak
    assert spec.n_samples_ == 1_000_000


def test_mmd_between_specs_requires_same_gamma(rng):
    X = two_blobs(rng)
    a = rkme_fit(X, K=5, gamma=0.5, random_state=0)
    b = rkme_fit(X + 1.0, K=5, gamma=0.5, random_state=0)
    assert_allclose(a.mmd(b), brute_mmd2(a.Z_, a.beta_, b.Z_, b.beta_, 0.5), rtol=1e-10)
    with pytest.raises(IncompatibleSpaceError, match="gamma"):
        a.mmd(rkme_fit(X, K=5, gamma=0.4, random_state=0))


def test_unfitted_spec_raises_not_fitted():
    with pytest.raises(NotFittedError, match="fit"):
        RKMESpecification().self_term()


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), "infinity"),
        (np.empty((0, 3)), "empty"),
        (np.arange(5.0), "2-D"),
        (np.array([["1", "2"]]), "numeric"),
        (np.array([[1, None]], dtype=object), "numeric"),
    ],
)
def test_fit_rejects_bad_data_naming_X(X, match):
    with pytest.raises(InvalidDataError, match=match) as err:
        RKMESpecification(K=2).fit(X)
    assert str(err.value).startswith("X ")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"K": 0}, "K"),
        ({"K": -3}, "K"),
        ({"K": 2.5}, "K"),
        ({"gamma": 0.0}, "gamma"),
        ({"gamma": -1.0}, "gamma"),
        ({"tol": 0.0}, "tol"),
        ({"ridge": -1.0}, "ridge"),
    ],
)
def test_fit_rejects_bad_parameters_naming_them(kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        RKMESpecification(**kwargs).fit(np.ones((4, 2)))


def test_standardizer_is_invariant_to_per_column_units(rng):
    ref = np.hstack([rng.normal(3.0, 1.0, (500, 1)), rng.gamma(2.0, 5.0, (500, 1)), np.zeros((500, 1))])
    space = TableStandardizer().fit(ref)
    upload = ref[:100] + 0.5
    factors = np.array([1000.0, 0.001, 3.0])  # e.g. kilograms to grams
    assert_allclose(space.transform(upload * factors), space.transform(upload), rtol=1e-12, atol=1e-12)
    plain = TableStandardizer(scale_invariant=False).fit(ref)
    assert not np.allclose(plain.transform(upload * factors), plain.transform(upload))


@pytest.mark.parametrize("scale_invariant", [True, False])
def test_standardizer_centres_reference_and_keeps_domain_shift(rng, scale_invariant):
    ref = rng.normal(5.0, 2.0, (4000, 2))
    space = TableStandardizer(scale_invariant=scale_invariant).fit(ref)
    assert_allclose(space.transform(ref).mean(0), 0.0, atol=1e-12)
    assert_allclose(space.transform(ref).std(0), 1.0, rtol=1e-12)
    # A domain shifted in location stays distinguishable (per-upload centring would
    # map both to the same distribution); the invariant mode keeps it as a change
    # of the location/spread ratio, so weaker.
    other = space.transform(rng.normal(8.0, 2.0, (4000, 2)))
    same = space.transform(rng.normal(5.0, 2.0, (4000, 2)))
    ours = rkme_fit(space.transform(ref), K=20, gamma=0.25, random_state=0)
    far, near = ours.mmd_to_data(other), ours.mmd_to_data(same)
    assert far > 10 * near, (far, near)
    if not scale_invariant:
        assert_allclose(other.mean(0), 1.5, atol=0.1)


def test_standardizer_round_trips_through_json_and_rejects_bad_fields(rng):
    space = TableStandardizer().fit(np.hstack([rng.normal(size=(50, 2)), np.ones((50, 1))]))
    assert space.scale_[2] == 1.0
    back = TableStandardizer.from_dict(json.loads(json.dumps(space.to_dict())))
    assert_array_equal(back.mean_, space.mean_)
    assert_array_equal(back.scale_, space.scale_)
    bad = space.to_dict() | {"scale": [1.0, -1.0, 1.0]}
    with pytest.raises(SerializationError, match="scale"):
        TableStandardizer.from_dict(bad)
    with pytest.raises(SerializationError, match="version"):
        TableStandardizer.from_dict(space.to_dict() | {"version": 9})
