"""The same-units prior of search by data (marketplace/search/same_units.py) on a synthetic table
market whose learnwares A and B differ only by the scale of one column (B's prices 1.6x A's), so
the unit-free comparison cannot tell them apart, plus a learnware C of another shape."""

from __future__ import annotations

import numpy as np
import pytest

from marketplace.learnwares.models import FeatureSpace
from marketplace.search.results import data_result_dict
from marketplace.search.same_units import FREE, SAME
from marketplace.search.selectors import search_by_data
from specs import mmd_squared
from specs.data_rkme import table_rkme
from specs.rkme import TableStandardizer
from specs.units import unit_rms
from tests.marketplace.search.factories import publish

pytestmark = pytest.mark.django_db

COLUMNS = ["price", "distance", "delay"]
K, N_DEV, N_USER = 60, 2000, 300


def _rows(rng: np.random.Generator, name: str, n: int) -> np.ndarray:
    base = np.column_stack([rng.normal(100.0, 15.0, n), rng.gamma(4.0, 250.0, n), rng.normal(10.0, 20.0, n)])
    if name == "B":
        base[:, 0] *= 1.6  # the same market at a higher price level: a difference of scale only
    if name == "C":
        base[:, 1] = rng.normal(3000.0, 100.0, n)  # another shape of distance
    return base


@pytest.fixture
def market(alice):
    rng = np.random.default_rng(11)
    dev = {name: _rows(rng, name, N_DEV) for name in "ABC"}
    std = TableStandardizer().fit(np.concatenate(list(dev.values())))
    space = FeatureSpace.objects.create(
        key="prices",
        kind="table",
        dim=3,
        gamma=1 / 6,
        sketch_dim=256,
        sketch_seed=7,
        schema={"columns": COLUMNS},
        standardization=std.to_dict(),
    )
    ids = {}
    for name, X in dev.items():
        spec = table_rkme(X, space.standardization, space.gamma, k=K)
        ids[name] = publish(
            space, alice, spec.Z_, spec.beta_, name=name, unit_rms=unit_rms(X), n_samples=N_DEV
        ).id
    return space, ids, rng


def _search(alice, space, X):
    spec = table_rkme(X, space.standardization, space.gamma, k=K)
    return search_by_data(
        user=alice,
        feature_space=space.key,
        Z=spec.Z_,
        beta=spec.beta_,
        n_samples=X.shape[0],
        k=3,
        mixture=False,
        user_rms=unit_rms(X),
    ), spec


@pytest.mark.parametrize("domain", ["A", "B"])
def test_a_user_in_the_developers_units_finds_the_learnware_of_its_own_scale(alice, market, domain):
    space, ids, rng = market
    result, _ = _search(alice, space, _rows(rng, domain, N_USER))
    assert result.units is not None and result.units.comparison == SAME
    assert int(result.ids[0]) == ids[domain]
    other = ids["B" if domain == "A" else "A"]
    same, free = result.units.same_mmd2, result.units.free_mmd2
    # The unit-free comparison cannot tell A from B (both within a few noises), the same-units one can.
    assert abs(free[ids["A"]] - free[ids["B"]]) < 3 * result.units.noise
    assert same[other] - same[ids[domain]] > 10 * result.units.noise
    body = data_result_dict(result)
    assert body["units"]["comparison"] == SAME
    assert body["results"][0]["units"]["comparison"] == SAME
    assert body["results"][0]["explanation"].startswith("best single match: same units")


def test_a_user_in_other_units_still_finds_a_match_unit_free_and_is_told_the_factor(alice, market):
    space, ids, rng = market
    units = np.array([10.0, 0.1, 1.0])  # cents instead of dollars, km instead of 100 m
    result, _ = _search(alice, space, _rows(rng, "B", N_USER) * units)
    assert result.units is not None and result.units.comparison == FREE
    assert int(result.ids[0]) in (ids["A"], ids["B"])  # the unit-free space cannot tell A from B
    assert int(result.ids[-1]) == ids["C"]
    body = data_result_dict(result)
    row = next(r for r in body["results"] if r["version_id"] == ids["B"])
    assert row["units"]["comparison"] == FREE
    summary = row["units"]["units"]
    assert summary["differ"] and summary["columns_differing"] == 2
    factors = {c["column"]: c["factor"] for c in summary["largest"]}
    assert factors["price"] == pytest.approx(10.0, rel=0.1)
    assert factors["distance"] == pytest.approx(0.1, rel=0.1)
    assert "other units" in row["explanation"] and "price x" in row["explanation"]


def test_the_same_units_mmd2_is_the_mmd2_of_the_users_spec_moved_into_the_candidates_units(alice, market):
    from marketplace.learnwares.models import Specification
    from marketplace.search import store

    space, ids, rng = market
    X = _rows(rng, "A", N_USER)
    result, spec = _search(alice, space, X)
    std = TableStandardizer.from_dict(space.standardization)
    for name, vid in ids.items():
        doc = Specification.objects.get(version_id=vid).rkme
        factor = unit_rms(X) / np.asarray(doc["unit_rms"])
        moved = ((spec.Z_ * std.scale_ + std.mean_) * factor - std.mean_) / std.scale_
        want = mmd_squared(moved, spec.beta_, *store.rkme_arrays(doc), space.gamma)
        assert result.units.same_mmd2[vid] == pytest.approx(want, rel=1e-2, abs=2e-4), name  # float16 store


def test_without_the_users_rms_the_ranking_is_the_unit_free_one(alice, market):
    space, ids, rng = market
    X = _rows(rng, "A", N_USER)
    spec = table_rkme(X, space.standardization, space.gamma, k=K)
    plain = search_by_data(
        user=alice, feature_space=space.key, Z=spec.Z_, beta=spec.beta_, n_samples=N_USER, k=3, mixture=False
    )
    assert plain.units is None
    assert np.all(np.diff(plain.mmd2) >= 0)


def test_the_api_applies_the_prior_to_a_csv_and_to_an_rkme_sent_with_its_unit_rms(alice, market, client_for):
    import io

    from tests.marketplace.search.factories import rkme_doc

    space, ids, rng = market
    X = _rows(rng, "B", N_USER)
    csv = io.BytesIO(("\n".join(",".join(repr(float(v)) for v in row) for row in X) + "\n").encode())
    csv.name = "rows.csv"
    api = client_for(alice)
    r = api.post(
        "/api/v1/search/by-data/",
        {"feature_space": space.key, "file": csv, "k": 3, "cross_space": False},
        format="multipart",
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["units"]["comparison"] == SAME and body["results"][0]["version_id"] == ids["B"]
    assert body["results"][0]["units"]["comparison"] == SAME
    spec = table_rkme(X * 10.0, space.standardization, space.gamma, k=K)
    doc = rkme_doc(spec.Z_, spec.beta_, space.gamma, n_samples=N_USER) | {
        "unit_rms": unit_rms(X * 10.0).tolist()
    }
    r = api.post("/api/v1/search/by-data/", {"feature_space": space.key, "rkme": doc, "k": 3}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["units"]["comparison"] == FREE
    bad = doc | {"unit_rms": [1.0, -2.0, 3.0]}
    r = api.post("/api/v1/search/by-data/", {"feature_space": space.key, "rkme": bad, "k": 3}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "search:user:bad-rkme"


@pytest.mark.parametrize("rms", [1e300, 1e-300])
def test_an_rkme_whose_unit_rms_leaves_float32s_range_is_refused_not_a_500(alice, market, client_for, rms):
    # 1e300 passed the check (finite, > 0) and the response then held infinities: a 500.
    from tests.marketplace.search.factories import rkme_doc

    space, _, rng = market
    X = _rows(rng, "A", N_USER)
    spec = table_rkme(X, space.standardization, space.gamma, k=K)
    doc = rkme_doc(spec.Z_, spec.beta_, space.gamma, n_samples=N_USER) | {"unit_rms": [rms, 1.0, 1.0]}
    api = client_for(alice)
    r = api.post("/api/v1/search/by-data/", {"feature_space": space.key, "rkme": doc, "k": 3}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "search:user:bad-rkme", r.content
    assert "float32" in r.json()["error"]["message"]


@pytest.mark.parametrize("factor", [1e34, 1e300])
def test_a_file_of_huge_values_is_ranked_or_refused_by_name_never_a_500(alice, market, client_for, factor):
    # 1e34 (finite in float32): the same-units factors squared overflowed float32 and the response held NaN;
    # 1e300 (beyond float32): refused like a submission's.
    import io
    import json
    import math

    space, _, rng = market
    X = _rows(rng, "A", N_USER) * factor
    csv = io.BytesIO(("\n".join(",".join(repr(float(v)) for v in row) for row in X) + "\n").encode())
    csv.name = "rows.csv"
    api = client_for(alice)
    r = api.post(
        "/api/v1/search/by-data/",
        {"feature_space": space.key, "file": csv, "k": 3, "cross_space": False},
        format="multipart",
    )
    if factor > 3.4e38:
        assert r.status_code == 400 and r.json()["error"]["code"] == "search:user:bad-file", r.content
        return
    assert r.status_code == 200, r.content
    numbers: list[float] = []
    json.loads(r.content, parse_constant=lambda c: numbers.append(float(c)))  # NaN/Infinity would land here
    assert numbers == []
    moved = [h["units"]["same_units_mmd2"] for h in r.json()["results"]]
    assert moved and all(math.isfinite(v) and v >= 0 for v in moved)
