"""Job selectors on a constructed mixture task where each member is right on one domain."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from specs.assembly import Assembly, RKMEJobSelector, RKMESoftSelector, TrainedJobSelector
from specs.kernels import rbf_kernel
from specs.rkme import RKMESpecification

CENTRES = np.array([[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]])


def _task(rng: np.random.Generator, n_per: int = 120):
    domain = np.repeat(np.arange(3), n_per)
    X = CENTRES[domain] + rng.normal(size=(3 * n_per, 2))
    y = (X[:, 0] + X[:, 1] > CENTRES[domain].sum(axis=1)).astype(int)
    members = []
    for i in range(3):
        # Member i knows the rule of domain i and is wrong elsewhere.
        pred = np.where(domain == i, y, 1 - y)
        members.append(np.eye(2)[pred] * 0.8 + 0.1)
    return X, y, domain, members


def _rkmes(rng: np.random.Generator, X: np.ndarray, domain: np.ndarray):
    specs = [RKMESpecification(K=10, gamma=0.5, random_state=i).fit(X[domain == i]) for i in range(3)]
    return [s.Z_ for s in specs], [s.beta_ for s in specs]


def test_densities_equal_direct_kernel_sums(rng: np.random.Generator) -> None:
    X, _, domain, _ = _task(rng, 30)
    Zs, betas = _rkmes(rng, X, domain)
    sel = RKMEJobSelector(n_classes=2).fit(Zs, betas, 0.5, weights=[0.2, 0.3, 0.5])
    direct = np.stack(
        [w * rbf_kernel(X, Z, 0.5) @ b for w, Z, b in zip([0.2, 0.3, 0.5], Zs, betas, strict=True)], axis=1
    )
    got = sel.densities(X)
    # densities are rescaled per row; the ratios between members are what routes.
    assert_allclose(
        got / got.sum(axis=1, keepdims=True), direct / direct.sum(axis=1, keepdims=True), rtol=1e-9
    )
    assert_allclose(sel.responsibilities(X).sum(axis=1), 1.0)


def test_rkme_selector_beats_every_member(rng: np.random.Generator) -> None:
    X, y, domain, members = _task(rng)
    Zs, betas = _rkmes(rng, X, domain)
    sel = RKMEJobSelector(n_classes=2).fit(Zs, betas, 0.5)
    acc = (sel.predict(members, X) == y).mean()
    member_acc = [(m.argmax(axis=1) == y).mean() for m in members]
    assert (sel.route(X) == domain).mean() > 0.95
    assert acc > max(member_acc) + 0.2, (acc, member_acc)


def test_trained_selector_beats_every_member_on_new_data(rng: np.random.Generator) -> None:
    X, y, _, members = _task(rng)
    Xt, yt, _, members_t = _task(np.random.default_rng(7))
    sel = TrainedJobSelector(n_classes=2).fit(X, members, y)
    acc = (sel.predict(members_t, Xt) == yt).mean()
    assert acc > max((m.argmax(axis=1) == yt).mean() for m in members_t) + 0.2


def test_selectors_round_trip_and_call_members_on_routed_rows(rng: np.random.Generator) -> None:
    X, y, domain, members = _task(rng, 40)
    Zs, betas = _rkmes(rng, X, domain)
    calls: list[int] = []

    def member(i: int):
        def f(Xs: np.ndarray) -> np.ndarray:
            calls.append(len(Xs))
            return np.full(len(Xs), i % 2)

        return f

    for sel in (
        RKMEJobSelector(n_classes=2).fit(Zs, betas, 0.5),
        TrainedJobSelector(n_classes=2).fit(X, members, y),
    ):
        loaded = Assembly.from_bytes(sel.to_bytes())
        assert type(loaded) is type(sel)
        assert_array_equal(loaded.route(X), sel.route(X))
        assert_array_equal(loaded.predict_proba(members, X), sel.predict_proba(members, X))
    calls.clear()
    RKMEJobSelector(n_classes=2).fit(Zs, betas, 0.5).predict([member(i) for i in range(3)], X)
    assert sum(calls) == len(X)


def test_rkme_selector_rejects_mismatched_specs(rng: np.random.Generator) -> None:
    with pytest.raises(Exception, match="do not match"):
        RKMEJobSelector().fit([np.zeros((3, 2)), np.zeros((3, 4))], [np.ones(3), np.ones(3)], 1.0)


def test_a_member_of_weight_zero_is_never_routed_to_and_the_others_route_as_without_it(
    rng: np.random.Generator,
) -> None:
    X, _, domain, _ = _task(rng, 40)
    Zs, betas = _rkmes(rng, X, domain)
    # Far to the right, nearest to member 1's points: rescaling by the distance to those would
    # underflow every routed member's density to 0.
    far = X + np.array([80.0, 0.0])
    with_zero = RKMEJobSelector(n_classes=2).fit(Zs, betas, 2.0, weights=[1.0, 0.0, 1.0])
    without = RKMEJobSelector(n_classes=2).fit([Zs[0], Zs[2]], [betas[0], betas[2]], 2.0)
    for rows in (X, far):
        route = with_zero.route(rows)
        assert not np.any(route == 1)
        assert_array_equal(route, np.array([0, 2])[without.route(rows)])
        dens = with_zero.densities(rows)
        assert np.all(np.isfinite(dens)) and np.all(dens[:, 1] == 0)


def test_trained_selector_with_a_router_uses_its_log_responsibilities_as_features(
    rng: np.random.Generator,
) -> None:
    X, y, domain, members = _task(rng, 40)
    Zs, betas = _rkmes(rng, X, domain)
    router = RKMEJobSelector(n_classes=2).fit(Zs, betas, 0.5)
    sel = TrainedJobSelector(n_classes=2).fit(X, members, y, router=router)
    features = np.hstack([X, np.log(np.maximum(router.responsibilities(X), 1e-12))])  # (n, d + m)
    assert sel.coef_.shape == (X.shape[1] + 3, 3)
    assert_allclose(sel.mean_, features.mean(axis=0), rtol=1e-12)
    direct = (((features - sel.mean_) / sel.scale_) @ sel.coef_ + sel.intercept_).argmax(axis=1)
    assert_array_equal(sel.route(X), direct)
    loaded = Assembly.from_bytes(sel.to_bytes())
    assert_array_equal(loaded.route(X), sel.route(X))
    assert_allclose(loaded.router_.densities(X), router.densities(X), rtol=1e-12)
    # The router knows the domains; the plain selector only sees 2-d positions. Both learn them here.
    assert (sel.route(X) == domain).mean() >= (router.route(X) == domain).mean() - 0.05
    with pytest.raises(Exception, match="router has 3 members"):
        TrainedJobSelector(n_classes=2).fit(X, members[:2], y, router=router)


def test_the_soft_selector_weights_each_rows_outputs_by_direct_kernel_responsibilities(
    rng: np.random.Generator,
) -> None:
    X, y, domain, members = _task(rng, 40)
    Zs, betas = _rkmes(rng, X, domain)
    weights = [1.0, 1.0, 0.0]  # the third member is outside the mixture: never evaluated
    soft = RKMESoftSelector(n_classes=2).fit(Zs, betas, 0.5, weights=weights)
    # Independent: kernel sums written out, normalised per row, clipped at 0 as densities are.
    direct = np.stack([w * rbf_kernel(X, Z, 0.5) @ b for w, Z, b in zip(weights, Zs, betas, strict=True)], 1)
    direct = np.maximum(direct, 0.0)
    r = direct / direct.sum(axis=1, keepdims=True)
    expected = r[:, :1] * members[0] + r[:, 1:2] * members[1]

    def never(X_: np.ndarray) -> np.ndarray:
        raise AssertionError("a member of weight 0 was evaluated")

    assert_allclose(soft.predict_proba([members[0], members[1], never], X), expected, atol=1e-9)
    # Apart, the soft router is the job selector's routing almost everywhere.
    hard = RKMEJobSelector(n_classes=2).fit(Zs, betas, 0.5, weights=weights)
    agree = soft.predict([members[0], members[1], members[2]], X) == hard.predict(members, X)
    assert agree.mean() > 0.95
    back = Assembly.from_bytes(soft.to_bytes())
    assert isinstance(back, RKMESoftSelector)
    assert_allclose(back.predict_proba(members, X), soft.predict_proba(members, X), atol=1e-12)


def test_the_soft_selector_averages_where_the_members_data_overlap(rng: np.random.Generator) -> None:
    # Both members' RKMEs summarise the same rows: every responsibility is 1/2, so the soft router
    # is the plain average while the hard router bets each row on one member.
    X, _, _, members = _task(rng, 40)
    spec = RKMESpecification(K=10, gamma=0.5, random_state=0).fit(X)
    soft = RKMESoftSelector(n_classes=2).fit([spec.Z_, spec.Z_], [spec.beta_, spec.beta_], 0.5)
    assert_allclose(soft.predict_proba(members[:2], X), (members[0] + members[1]) / 2, atol=1e-12)
