"""Search by data with a CSV: columns by name (order, extras, renames) and the cross-space stage."""

from __future__ import annotations

import io

import numpy as np
import pytest

from marketplace.learnwares.models import FeatureSpace
from marketplace.search import cross_space
from specs import rkme_fit
from tests.marketplace.search.factories import publish

pytestmark = pytest.mark.django_db
ALL = ["a", "b", "c", "d", "e", "f"]


def _space(key: str, columns: list[str]) -> FeatureSpace:
    return FeatureSpace.objects.create(
        key=key,
        kind="table",
        dim=len(columns),
        gamma=1.0 / (2 * len(columns)),
        schema={"columns": columns},
        sketch_dim=128,
        sketch_seed=7,
    )


@pytest.fixture
def world(alice):
    rng = np.random.default_rng(0)
    centers = 3.0 * rng.standard_normal((4, len(ALL)))
    A, B = _space("table-abcd", ["a", "b", "c", "d"]), _space("table-fedc", ["f", "e", "d", "c"])
    out = {}
    for space in (A, B):
        cols = [ALL.index(c) for c in space.schema["columns"]]
        for i in range(4):
            X = centers[i] + rng.standard_normal((300, len(ALL)))
            s = rkme_fit(X[:, cols], 30, space.gamma, random_state=0)
            out[(space.key, i)] = publish(space, alice, s.Z_, s.beta_, name=f"{space.key}-{i}")
    cross_space._CACHE.clear()
    return A, B, centers, out, rng


def _csv(names, X) -> io.BytesIO:
    f = io.BytesIO((",".join(names) + "\n" + "\n".join(",".join(f"{v:.5f}" for v in r) for r in X)).encode())
    f.name = "mine.csv"
    return f


def test_permuted_extra_and_renamed_columns_find_their_learnware_and_other_spaces(world, alice, client_for):
    A, B, centers, versions, rng = world
    X = centers[2] + rng.standard_normal((200, len(ALL)))
    names = ["d", "zz", "c", "alpha", "b"]
    rows = np.column_stack([X[:, 3], rng.normal(size=200), X[:, 2], X[:, 0], X[:, 1]])
    # A multipart form sends the map as column_map.<your name> = <learnware's name>.
    r = client_for(alice).post(
        "/api/v1/search/by-data/",
        {"feature_space": A.key, "file": _csv(names, rows), "k": 3, "column_map.alpha": "a"},
        format="multipart",
    )
    assert r.status_code == 200, r.json()
    got = r.json()
    assert got["results"][0]["version_id"] == versions[(A.key, 2)].id
    assert got["columns"]["extra"] == ["zz"] and got["columns"]["missing"] == []
    hit = got["cross_space"][0]
    assert hit["feature_space"] == B.key and hit["version_id"] == versions[(B.key, 2)].id
    assert hit["compared"] == ["d", "c"] and hit["missing"] == ["f", "e"] and hit["coverage"] == 0.5
    assert "missing: f, e" in hit["explanation"]


def test_a_file_lacking_a_column_gets_the_match_and_other_spaces_not_an_error(world, alice, client_for):
    A, B, centers, versions, rng = world
    X = centers[1] + rng.standard_normal((200, len(ALL)))
    names = ["b", "c", "d", "e", "f"]
    r = client_for(alice).post(
        "/api/v1/search/by-data/",
        {"feature_space": A.key, "file": _csv(names, X[:, 1:]), "k": 3},
        format="multipart",
    )
    assert r.status_code == 200, r.json()
    got = r.json()
    assert got["results"] == [] and got["columns"]["missing"] == ["a"]
    top = got["cross_space"][0]
    assert (
        top["version_id"] == versions[(B.key, 1)].id and top["coverage"] == 1.0
    )  # they hold all of B's columns
    assert any(h["feature_space"] == A.key and h["coverage"] == 0.75 for h in got["cross_space"])
    off = client_for(alice).post(
        "/api/v1/search/by-data/",
        {"feature_space": A.key, "file": _csv(names, X[:, 1:]), "cross_space": False},
        format="multipart",
    )
    assert off.status_code == 400 and off.json()["error"]["code"] == "search:user:missing-columns"


def test_a_learnware_sharing_fewer_columns_does_not_win_on_coverage_alone():
    # The user's rows follow L1 on the 3 of its 5 columns they hold; L2 has only those 3 columns (full
    # coverage) but another distribution on one of them. Coverage x similarity ranked L2 first (the
    # similarities of real marginals are all near 1); the noise-calibrated score does not.
    rng = np.random.default_rng(5)
    P = rng.standard_normal((2000, 5))
    Q = P[:, :3] + np.array([1.0, 0.0, 0.0])
    tables = []
    for vid, (cols, X) in enumerate([(["a", "b", "c", "d", "e"], P), (["a", "b", "c"], Q)]):
        s = rkme_fit(X, 50, 1.0 / (2 * len(cols)), random_state=0)
        tables.append(
            cross_space.SpaceTable(
                f"s{vid}",
                cols,
                s.gamma_,
                np.zeros(len(cols)),
                np.ones(len(cols)),
                False,
                np.asarray([vid]),
                s.Z_[None].astype(np.float32),
                s.beta_[None],
                np.asarray([X.shape[0]]),
            )
        )
    user = rng.standard_normal((500, 5))[:, [2, 0, 1]]
    hits = cross_space.cross_space_search(tables, ["c", "a", "b"], user, k=2)
    assert [h.version_id for h in hits] == [0, 1]
    by_id = {h.version_id: h.match for h in hits}
    assert by_id[0].coverage == 0.6 and by_id[1].coverage == 1.0
    assert by_id[0].mmd2 <= 2 * by_id[0].noise and by_id[1].mmd2 > 3 * by_id[1].noise
    assert by_id[1].coverage * by_id[1].similarity > by_id[0].coverage * by_id[0].similarity  # the old trap
