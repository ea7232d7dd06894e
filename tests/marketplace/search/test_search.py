"""Search services and selectors on the database: permissions, filters, mixtures, lifecycle."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from marketplace.learnwares.choices import VersionStatus, Visibility
from marketplace.search import store
from marketplace.search.models import IndexChange, IndexState
from marketplace.search.selectors import search_by_data
from marketplace.search.services import index_rebuild, index_remove, index_snapshot
from specs import mmd_squared, rkme_fit
from tests.marketplace.search.factories import cluster_spec, make_space, publish

pytestmark = pytest.mark.django_db

D = 4


@pytest.fixture
def centers():
    return 4.0 * np.random.default_rng(5).standard_normal((12, D))


def _search(user, space, Z, beta, **kw):
    return search_by_data(user=user, feature_space=space.key, Z=Z, beta=beta, **kw)


def test_private_best_match_is_hidden_from_others_but_found_by_its_owner(alice, bob, centers):
    rng = np.random.default_rng(0)
    space = make_space()
    for i in range(8):
        publish(space, alice, *cluster_spec(rng, centers[i : i + 1], 20))
    secret = publish(space, bob, *cluster_spec(rng, centers[11:12], 20), visibility=Visibility.PRIVATE)
    Zq, bq = cluster_spec(rng, centers[11:12], 30)

    for_alice = _search(alice, space, Zq, bq, k=20, mixture=False)
    assert secret.id not in for_alice.ids.tolist()
    assert len(for_alice.ids) == 8  # every learnware alice may see, nothing else
    assert _search(bob, space, Zq, bq, k=3, mixture=False).ids[0] == secret.id


def test_filters_never_shorten_the_result_while_matches_exist(alice, centers, monkeypatch):
    from marketplace.search import selectors

    monkeypatch.setattr(selectors, "RERANK_K", 5)  # so most candidates of the first rounds fail the filter
    rng = np.random.default_rng(1)
    space = make_space()
    tagged = [
        publish(space, alice, *cluster_spec(rng, centers[10:11], 10), tags=["rare"]).id for _ in range(12)
    ]
    for _ in range(150):
        publish(space, alice, *cluster_spec(rng, centers[:2], 10))
    Zq, bq = cluster_spec(rng, centers[:2], 20)
    result = _search(alice, space, Zq, bq, k=10, filters={"tags": ["rare"]}, mixture=False)
    assert len(result.ids) == 10
    assert set(result.ids.tolist()) <= set(tagged)
    exact = sorted(tagged, key=lambda v: mmd_squared(Zq, bq, *_spec(v), space.gamma))[:10]
    assert sorted(result.ids.tolist()) == sorted(exact)
    assert len(_search(alice, space, Zq, bq, k=10, filters={"license": "GPL-3.0"}, mixture=False).ids) == 0


def _spec(version_id):
    from marketplace.learnwares.models import Specification

    return store.rkme_arrays(Specification.objects.get(version_id=version_id).rkme)


def test_results_carry_exact_mmd_and_sketch_distance(alice, centers):
    rng = np.random.default_rng(2)
    space = make_space()
    versions = [publish(space, alice, *cluster_spec(rng, centers[i : i + 2], 20)).id for i in range(6)]
    Zq, bq = cluster_spec(rng, centers[2:4], 40)
    result = _search(alice, space, Zq, bq, k=6, mixture=False)
    exact = {v: mmd_squared(Zq, bq, *_spec(v), space.gamma) for v in versions}
    assert_allclose(result.mmd2, [exact[int(v)] for v in result.ids], rtol=1e-3, atol=2e-4)  # float16 store
    assert result.ids[0] == min(exact, key=exact.get)
    from marketplace.learnwares.models import Specification

    q = store.sketcher(space).transform(Zq, bq)
    stored = {
        s.version_id: np.frombuffer(bytes(s.sketch), dtype=np.float32) for s in Specification.objects.all()
    }
    assert_allclose(
        result.sketch_distance, [np.sum((q - stored[int(v)]) ** 2) for v in result.ids], rtol=1e-4, atol=1e-6
    )


def _user_data(rng, centers, weights, n=3000):
    comp = rng.choice(len(centers), size=n, p=weights)
    return centers[comp] + 0.5 * rng.standard_normal((n, D))


@pytest.fixture
def source_market(alice, centers):
    """One learnware per source domain (an RKME fitted on its data) plus a few two-domain ones."""
    rng = np.random.default_rng(3)
    space = make_space()
    sources = []
    for i in range(8):
        spec = rkme_fit(_user_data(rng, centers[i : i + 1], [1.0], 1000), 20, space.gamma, random_state=i)
        sources.append(publish(space, alice, spec.Z_, spec.beta_).id)
    return space, sources


@pytest.mark.parametrize("planted", [(0, 3), (1, 4, 6)])
def test_mixture_search_finds_planted_mixtures(alice, centers, source_market, planted):
    space, sources = source_market
    rng = np.random.default_rng(len(planted))
    weights = np.full(len(planted), 1 / len(planted))
    X = _user_data(rng, centers[list(planted)], weights)
    user = rkme_fit(X, 30, space.gamma, random_state=0)
    result = _search(alice, space, user.Z_, user.beta_, n_samples=X.shape[0], k=5)
    mix = result.mixture
    assert mix.proposed, mix.reason
    assert sorted(mix.ids.tolist()) == sorted(sources[p] for p in planted)
    assert_allclose(np.sort(mix.weights), weights, atol=0.1)
    assert mix.mmd2 < mix.best_single_mmd2


def test_single_source_users_get_no_mixture(alice, centers, source_market):
    space, sources = source_market
    for seed in range(5):
        rng = np.random.default_rng(100 + seed)
        X = _user_data(rng, centers[seed : seed + 1], [1.0], 500)
        user = rkme_fit(X, 30, space.gamma, random_state=seed)
        result = _search(alice, space, user.Z_, user.beta_, n_samples=X.shape[0], k=5)
        assert not result.mixture.proposed, result.mixture.reason
        assert result.ids[0] == sources[seed]


def _store_kind(settings, tmp_path, disk: bool) -> None:
    """Re-rank store on local disk (from the first spec) or in RAM, as the settings choose."""
    settings.LWM_INDEX_DISK_MIN = 0 if disk else -1
    settings.LWM_INDEX_DIR = tmp_path / "index"


@pytest.mark.parametrize("disk", [False, True])
def test_rebuild_from_the_database_equals_the_incremental_index(alice, centers, settings, tmp_path, disk):
    _store_kind(settings, tmp_path, disk)
    rng = np.random.default_rng(4)
    space = make_space()
    versions = [
        publish(space, alice, *cluster_spec(rng, centers[i % 12 : i % 12 + 2], 15)) for i in range(30)
    ]
    index_remove(version=versions[3])
    versions[3].status = VersionStatus.YANKED
    versions[3].save()
    Zq, bq = cluster_spec(rng, centers[3:5], 30)
    incremental = _search(alice, space, Zq, bq, k=10, mixture=False)
    assert versions[3].id not in store.get_index(space.key, space)
    assert store.get_index(space.key, space).store.on_disk == disk

    index_rebuild(key=space.key)
    rebuilt = _search(alice, space, Zq, bq, k=10, mixture=False)
    assert store.get_index(space.key, space).store.on_disk == disk
    assert_array_equal(rebuilt.ids, incremental.ids)
    assert_allclose(rebuilt.mmd2, incremental.mmd2)
    assert rebuilt.generation > incremental.generation


@pytest.mark.parametrize("disk", [False, True])
def test_a_process_with_an_old_generation_catches_up_and_a_new_one_starts_from_the_snapshot(
    alice, centers, monkeypatch, settings, tmp_path, disk
):
    _store_kind(settings, tmp_path, disk)
    rng = np.random.default_rng(6)
    space = make_space()
    for i in range(5):
        publish(space, alice, *cluster_spec(rng, centers[i : i + 1], 10))
    old = store.get_index(space.key, space)
    index_snapshot(key=space.key)
    late = publish(space, alice, *cluster_spec(rng, centers[9:10], 10))  # another process publishes
    state = IndexState.objects.get(key=space.key)
    assert old.generation < state.generation and late.id not in old

    caught_up = store.get_index(space.key, space)
    assert caught_up is old and late.id in caught_up and caught_up.generation == state.generation

    store.forget()  # a fresh process: snapshot + the rows after it, no full scan
    monkeypatch.setattr(store, "build_from_db", lambda *a, **k: pytest.fail("should start from the snapshot"))
    fresh = store.get_index(space.key, space)
    assert len(fresh) == 6 and late.id in fresh and fresh.generation == state.generation
    assert fresh.store.on_disk == disk and sorted(fresh.store.row) == sorted(caught_up.store.row)


def test_index_add_is_idempotent(alice, centers):
    from marketplace.learnwares.models import Specification
    from marketplace.search.services import index_add

    rng = np.random.default_rng(7)
    space = make_space()
    v = publish(space, alice, *cluster_spec(rng, centers[:1], 10))
    index_add(specification=Specification.objects.get(version=v))
    assert len(store.get_index(space.key, space)) == 1


def test_a_cached_index_of_another_database_is_never_served(alice, centers):
    """A restored or flushed database recreates the index row: the cached copy must go."""
    from marketplace.learnwares.models import Learnware

    rng = np.random.default_rng(8)
    space = make_space()
    first = publish(space, alice, *cluster_spec(rng, centers[:1], 10))
    assert first.id in store.get_index(space.key, space)

    Learnware.objects.all().delete()
    IndexChange.objects.filter(key=space.key).delete()  # as after a restore: same key, fresh rows
    IndexState.objects.filter(key=space.key).delete()
    second = publish(space, alice, *cluster_spec(rng, centers[1:2], 10))
    index = store.get_index(space.key, space)
    assert second.id in index and first.id not in index and len(index) == 1
