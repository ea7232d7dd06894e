"""The search API over HTTP: by RKME JSON, by a small file, a large file as a job, and by text."""

from __future__ import annotations

import io

import numpy as np
import pytest

from marketplace.jobs.models import Job
from marketplace.learnwares.choices import Visibility
from marketplace.search import selectors
from specs import mmd_squared
from tests.marketplace.search.factories import cluster_spec, make_space, publish, rkme_doc

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(alice, bob):
    rng = np.random.default_rng(0)
    centers = 4.0 * rng.standard_normal((6, 4))
    space = make_space()
    cards = np.eye(384, dtype=np.float32)[:6]
    versions = [
        publish(
            space,
            alice,
            *cluster_spec(rng, centers[i : i + 1], 20),
            card=cards[i],
            name=f"lw{i}",
            license="MIT" if i % 2 else "Apache-2.0",
            tags=["fraud"] if i < 3 else [],
        )
        for i in range(5)
    ]
    hidden = publish(
        space,
        bob,
        *cluster_spec(rng, centers[5:6], 20),
        card=cards[5],
        name="secret",
        visibility=Visibility.PRIVATE,
    )
    return space, centers, versions, hidden, rng


def test_by_data_with_an_rkme_json_returns_every_score(market, alice, client_for):
    space, centers, versions, _, rng = market
    Z, beta = cluster_spec(rng, centers[2:3], 30)
    body = {"feature_space": space.key, "rkme": rkme_doc(Z, beta, space.gamma, n_samples=500), "k": 3}
    r = client_for(alice).post("/api/v1/search/by-data/", body, format="json")
    assert r.status_code == 200, r.json()
    top = r.json()["results"][0]
    assert top["version_id"] == versions[2].id
    spec = versions[2].specification.rkme
    assert top["mmd2"] == pytest.approx(
        mmd_squared(Z, beta, np.array(spec["Z"]), np.array(spec["beta"]), space.gamma), abs=2e-4
    )
    assert {"sketch_distance", "mixture_weight", "explanation"} <= set(top)
    assert r.json()["mixture"]["proposed"] is False


def test_by_data_with_a_small_csv_specs_it_in_the_request(market, alice, client_for):
    space, centers, versions, _, rng = market
    X = centers[1] + 0.5 * rng.standard_normal((200, 4))
    csv = "a,b,c,d\n" + "\n".join(",".join(f"{v:.5f}" for v in row) for row in X)
    f = io.BytesIO(csv.encode())
    f.name = "mine.csv"
    r = client_for(alice).post(
        "/api/v1/search/by-data/", {"feature_space": space.key, "file": f, "k": 2}, format="multipart"
    )
    assert r.status_code == 200, r.json()
    assert r.json()["results"][0]["version_id"] == versions[1].id


def test_by_data_with_a_large_file_returns_a_job(market, alice, client_for, settings):
    space, centers, _, _, rng = market
    settings.LWM_SEARCH_INLINE_MAX_BYTES = 100
    buf = io.BytesIO()
    np.savez(buf, X=centers[0] + rng.standard_normal((50, 4)))
    buf.seek(0)
    buf.name = "big.npz"
    r = client_for(alice).post(
        "/api/v1/search/by-data/", {"feature_space": space.key, "file": buf}, format="multipart"
    )
    assert r.status_code == 202, r.json()
    job = Job.objects.get(id=r.json()["job_id"])
    assert job.task_name == "search.by_data" and job.owner == alice and job.task_args[1] == space.key


def test_by_data_rejects_a_wrong_dimension_and_a_bad_rkme(market, alice, client_for):
    space, *_ = market
    bad_dim = rkme_doc(np.zeros((3, 5)), np.full(3, 1 / 3), 0.1)
    r = client_for(alice).post(
        "/api/v1/search/by-data/", {"feature_space": space.key, "rkme": bad_dim}, format="json"
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "search:user:dimension-mismatch"
    r = client_for(alice).post(
        "/api/v1/search/by-data/", {"feature_space": space.key, "rkme": {"format": "x"}}, format="json"
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "search:user:bad-rkme"


def test_text_search_ranks_cards_applies_filters_and_hides_private_ones(market, alice, api, monkeypatch):
    _, _, versions, hidden, _ = market
    query = np.zeros(384, dtype=np.float32)
    query[5], query[2], query[1] = 1.0, 0.8, 0.5
    monkeypatch.setattr(selectors, "encode_query", lambda text: query)
    got = [x["version_id"] for x in api.get("/api/v1/search/", {"q": "fraud", "limit": 3}).json()["results"]]
    assert hidden.id not in got and got[:2] == [versions[2].id, versions[1].id]
    r = api.get(
        "/api/v1/search/", {"q": "fraud", "tags": "fraud", "license": "Apache-2.0", "min_similarity": 0}
    ).json()
    assert [x["version_id"] for x in r["results"]] == [versions[2].id, versions[0].id]
    assert r["results"][0]["similarity"] == pytest.approx(0.8 / np.sqrt(1.89), rel=1e-5)
    listing = api.get("/api/v1/search/", {"modality": "table"}).json()["results"]
    assert {x["version_id"] for x in listing} == {v.id for v in versions}
    assert api.get("/api/v1/search/", {"task": "nonsense"}).status_code == 400


def test_text_search_drops_cards_below_the_relevance_cut_off(market, api, monkeypatch):
    _, _, versions, _, _ = market
    query = np.zeros(384, dtype=np.float32)
    query[2], query[1], query[7] = (
        0.6,
        0.3,
        np.sqrt(0.55),
    )  # a unit vector: cosines 0.6, 0.3 and 0 with the cards of lw2, lw1, lw0
    monkeypatch.setattr(selectors, "encode_query", lambda text: query)
    results = api.get("/api/v1/search/", {"q": "zzqx"}).json()["results"]
    assert [x["version_id"] for x in results] == [versions[2].id]
    assert results[0]["similarity"] == pytest.approx(0.6, rel=1e-5)
    assert 0.3 < selectors.MIN_SIMILARITY < 0.6
    everything = api.get("/api/v1/search/", {"q": "zzqx", "min_similarity": 0}).json()["results"]
    assert len(everything) == len(versions)


def test_full_text_keeps_only_cards_whose_words_match(market, api, monkeypatch):
    from django.db import connection

    from marketplace.learnwares.models import Learnware

    if connection.vendor != "postgresql":
        pytest.skip("full text search runs on PostgreSQL only")
    _, _, versions, _, _ = market
    Learnware.objects.filter(id=versions[3].learnware_id).update(
        description="Detects card fraud in payments."
    )
    monkeypatch.setattr(
        selectors, "encode_query", lambda text: np.eye(384, dtype=np.float32)[100]
    )  # cosine 0 to all
    got = [x["version_id"] for x in api.get("/api/v1/search/", {"q": "payments fraud"}).json()["results"]]
    assert got == [versions[3].id]
    assert api.get("/api/v1/search/", {"q": "xqzvbnm plorf"}).json()["results"] == []
