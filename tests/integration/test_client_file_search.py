"""``Client.search_by_file`` against the live server (inline search, no worker): the CSV's rows are sent
as multipart, ``column_map`` reaches the API as a dict, and a file lacking a column gets the cross-space
hits with their noise-calibrated score and the compared / missing columns."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client"))

from lwm_client import Client  # noqa: E402
from lwm_client.cli import _hits_text  # noqa: E402

from tests.marketplace.portal.factories import make_learnware  # noqa: E402
from tests.marketplace.portal.test_column_renames import renamed_csv  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_file_search_sends_the_renames_and_shows_the_cross_space_match(
    live_server, alice, tmp_path, monkeypatch
):
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "lwm.json"))
    lwm = Client(live_server.url)
    lwm.login("alice", "alice-pass-123")
    near = make_learnware(alice, name="near")
    path = tmp_path / "mine.csv"
    path.write_bytes(renamed_csv())  # columns c, row_id, a_value, b: the space's a is a_value here

    lacking = lwm.search_by_file(path, feature_space="table-portal", k=5)
    assert lacking.columns is not None and lacking.columns["missing"] == ["a"]
    assert [(s["yours"], s["theirs"]) for s in lacking.columns["suggestions"]] == [("a_value", "a")]
    hit = lacking.cross_space[0]
    assert hit["learnware_id"] == near.learnware_id and hit["name"] == "near"
    assert sorted(hit["compared"]) == ["b", "c"] and hit["missing"] == ["a"]
    assert 0 < hit["score"] <= hit["coverage"] + 1e-9
    text = _hits_text(lacking)
    assert f"score={hit['score']:.3f}" in text and "missing (filled when reused): a" in text

    # The renames reach the API as a dict: every column matched, the space found from the header alone.
    renamed = lwm.search_by_file(path, column_map={"a_value": "a"}, k=5)
    assert renamed.feature_space == "table-portal"
    assert (
        renamed.columns is not None
        and renamed.columns["missing"] == []
        and renamed.columns["extra"] == ["row_id"]
    )
    assert [r.name for r in renamed.results] == ["near"]
