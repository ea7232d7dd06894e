"""Migration 0007's re-keying: order-free keys, and two spaces of one column set merged exactly."""

from __future__ import annotations

import numpy as np
import pytest

from marketplace.learnwares.models import FeatureSpace, Learnware, Specification
from marketplace.learnwares.services.rekey import rekey_table_spaces
from marketplace.search.models import IndexChange, IndexState
from marketplace.submissions.models import Submission
from specs import RFFSketch, TableStandardizer, default_gamma, rkme_fit
from specs.columns import table_space_key
from specs.mmd import mmd_squared

pytestmark = pytest.mark.django_db
COLS = ["a", "b", "c"]


def _space(key, columns, X):
    std = TableStandardizer().fit(X).to_dict()
    return FeatureSpace.objects.create(
        key=key,
        kind="table",
        schema={"columns": columns},
        dim=3,
        gamma=default_gamma(3),
        standardization=std,
        sketch_seed=0,
        sketch_dim=64,
    )


def _spec(owner, space, X, name):
    lw = Learnware.objects.create(
        owner=owner,
        name=name,
        slug=name,
        kind="model",
        modality="table",
        task="classification",
        feature_space=space,
        license="MIT",
    )
    version = lw.versions.create(
        number=1, manifest={}, artifact_sha256="0" * 64, artifact_size=1, status="published"
    )
    Z = TableStandardizer.from_dict(space.standardization).transform(X)
    s = rkme_fit(Z, 20, space.gamma, random_state=0)
    doc = {"Z": s.Z_.tolist(), "beta": s.beta_.tolist(), "gamma": s.gamma_, "unit_rms": [1.0, 2.0, 3.0]}
    return Specification.objects.create(
        version=version,
        feature_space=space,
        rkme=doc,
        k=20,
        self_term=s.self_term(),
        sketch=b"",
        computed_from="client",
    ), s


def test_rekey_merges_an_order_only_duplicate_exactly(django_user_model):
    owner = django_user_model.objects.create_user("dev", password="x")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)) * [1, 10, 100] + [0, 5, 50]
    old = _space("table-old-abc", COLS, X)
    other = _space("table-old-cab", ["c", "a", "b"], X[:, [2, 0, 1]] * 1.1)
    IndexState.objects.create(key=other.key, generation=3)
    IndexChange.objects.create(key=other.key, generation=3, version_id=1)
    spec_a, fit_a = _spec(owner, old, X, "first")
    spec_b, _ = _spec(owner, other, X[:, [2, 0, 1]], "second")
    done = rekey_table_spaces(
        FeatureSpace=FeatureSpace,
        Specification=Specification,
        Learnware=Learnware,
        Submission=Submission,
        IndexState=IndexState,
        IndexChange=IndexChange,
    )
    key = table_space_key(COLS)
    assert done["merged"] == [{"from": "table-old-cab", "into": key}]
    assert list(FeatureSpace.objects.filter(kind="table").values_list("key", flat=True)) == [key]
    assert not IndexState.objects.filter(key__in=["table-old-cab", key]).exists()
    assert not IndexChange.objects.filter(
        key="table-old-cab"
    ).exists()  # the index is rebuilt from the database
    spec_b.refresh_from_db()
    space = FeatureSpace.objects.get(key=key)
    assert (
        spec_b.feature_space_id == space.id
        and Learnware.objects.get(name="second").feature_space_id == space.id
    )
    assert spec_b.rkme["unit_rms"] == [2.0, 3.0, 1.0]  # permuted from (c, a, b) into (a, b, c)
    # The moved RKME describes the same rows in the survivor's coordinates: close to the survivor's own spec
    # of them.
    Zb, bb = np.asarray(spec_b.rkme["Z"]), np.asarray(spec_b.rkme["beta"])
    assert mmd_squared(Zb, bb, fit_a.Z_, fit_a.beta_, space.gamma) < 0.01
    assert spec_b.self_term == pytest.approx(
        float(bb @ np.exp(-space.gamma * ((Zb[:, None] - Zb[None]) ** 2).sum(-1)) @ bb)
    )
    expected = RFFSketch(3, space.gamma, 64, random_state=0).transform(Zb, bb).astype("<f4").tobytes()
    assert bytes(spec_b.sketch) == expected
