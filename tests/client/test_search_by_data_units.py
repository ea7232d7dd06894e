"""``Client.search_by_data`` sends the table rows' ``unit_rms`` beside the RKME, as ``Client.submit``
does: the market's same-units prior needs it. Without it a user in the developers' units got the
unit-free ranking through search by data (flights: the wrong learnware first for a raw-units user
whose submission of the same RKME ranked its own first; benchmarks/reuse_markets.py --via api)."""

from __future__ import annotations

from typing import Any

import numpy as np
from lwm_client import Client
from lwm_client import data as local
from lwm_client.models import FeatureSpace
from numpy.testing import assert_allclose

from specs import TableStandardizer, default_gamma


def _space() -> FeatureSpace:
    rng = np.random.default_rng(1)
    std = TableStandardizer().fit(np.column_stack([rng.normal(5, 2, 200), rng.uniform(100, 900, 200)]))
    schema = {"columns": [{"name": "delay"}, {"name": "distance"}]}
    return FeatureSpace(
        key="table-k",
        kind="table",
        dim=2,
        gamma=default_gamma(2),
        standardization=std.to_dict(),
        schema=schema,
    )


def test_search_by_data_sends_the_rows_rms_and_columns_like_a_submission(monkeypatch: Any) -> None:
    rng = np.random.default_rng(2)
    X = np.column_stack([rng.normal(50, 20, 80), rng.uniform(1000, 9000, 80)])
    space = _space()
    spec = local.spec_table(X, space)
    client = Client("http://127.0.0.1:9", token="t")
    sent: list[dict[str, Any]] = []

    def fake_json(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        sent.append({"method": method, "path": path, **kwargs})
        return {"results": [], "mixture": None}

    monkeypatch.setattr(client.http, "json", fake_json)
    client.search_by_data((spec, space), k=5)
    (call,) = sent
    assert (call["method"], call["path"]) == ("POST", "search/by-data/")
    body = call["json"]
    # The RMS of each column, written out, and the same document a submission sends.
    assert_allclose(body["rkme"]["unit_rms"], np.sqrt(np.mean(X**2, axis=0)), rtol=1e-12)
    assert body["rkme"] == local.rkme_document(spec)
    assert body["feature_space"] == "table-k" and body["k"] == 5
