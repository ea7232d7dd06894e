"""`lwm search --data f.csv --upload`: the rows are sent, and the cross-space hits are printed with the
market's noise-calibrated score and the compared / missing columns (never a raw similarity, which reads
~1 for any two real marginals)."""

from __future__ import annotations

import argparse
import json
import math

import pytest
from lwm_client import Client, errors
from lwm_client.cli import _hits_text, cmd_search
from lwm_client.models import SearchResult
from lwm_client.search_params import file_search_form

from tests.client.scripted_server import ScriptedServer

CROSS_HIT = {
    "feature_space": "table-abc",
    "version_id": 31,
    "learnware_id": 3,
    "name": "flights-delay",
    "version": 2,
    "compared": ["distance", "hour"],
    "missing": ["dep_delay"],
    "coverage": 0.6667,
    "mmd2": 0.0123,
    "similarity": 0.9877,
    "noise": 0.0100,
}
# The server's score, written out here from its definition: coverage x exp(-max(mmd2 - noise, 0) / noise).
CROSS_HIT["score"] = 0.6667 * math.exp(-(0.0123 - 0.0100) / 0.0100)
BODY = {
    "feature_space": "table-xyz",
    "generation": 4,
    "results": [],
    "mixture": None,
    "columns": {
        "matched": ["distance", "hour"],
        "missing": ["minute"],
        "extra": ["row_id"],
        "coverage": 0.67,
        "suggestions": [{"yours": "mins", "theirs": "minute", "confidence": 0.71}],
    },
    "cross_space": [CROSS_HIT],
}


def test_cross_space_hits_print_the_score_and_the_compared_and_missing_columns():
    text = _hits_text(SearchResult.from_dict(BODY))
    assert f"score={CROSS_HIT['score']:.3f}" in text and "coverage=0.67" in text
    assert "mmd2=0.0123 (noise 0.0100)" in text
    assert "compared on: distance, hour" in text and "missing (filled when reused): dep_delay" in text
    assert "sim=" not in text and "similarity" not in text
    assert "suggested rename (not applied): mins=minute (0.71)" in text
    assert "missing minute" in text and "extra (ignored) row_id" in text


def test_a_file_search_form_sends_renames_as_dict_fields():
    form = file_search_form("table-xyz", k=5, mixture=True, cross_space=True, renames={"mins": "minute"})
    assert form == {
        "feature_space": "table-xyz",
        "k": "5",
        "mixture": "true",
        "cross_space": "true",
        "column_map.mins": "minute",
    }


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("distance,hour,mins,row_id\n1,2,3,4\n5,6,7,8\n")
    return path


def test_the_cli_sends_the_file_and_prints_the_cross_space_match(csv_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "cfg.json"))
    with ScriptedServer() as server:
        server.push(200, BODY)
        args = argparse.Namespace(
            url=server.url,
            token="lwm_x",
            data=str(csv_file),
            upload=True,
            space="table-xyz",
            column_map="mins=minute",
            k=5,
            query=None,
            **dict.fromkeys(("modality", "task", "license", "owner", "tags")),
        )
        monkeypatch.setattr("lwm_client.cli._client", lambda a: Client(server.url, "lwm_x"))
        out, text = cmd_search(args)
        method, path, headers = server.requests[0]
    assert method == "POST" and path.endswith("/search/by-data/")
    assert headers["Content-Type"].startswith("multipart/form-data")
    assert json.loads(json.dumps(out))["cross_space"][0]["score"] == pytest.approx(CROSS_HIT["score"])
    assert "flights-delay" in text and "compared on: distance, hour" in text


def test_a_large_file_waits_for_the_search_job(csv_file, tmp_path, monkeypatch):
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "cfg.json"))
    with ScriptedServer() as server:
        server.push(202, {"job_id": "j1"}).push(200, {"id": "j1", "status": "succeeded", "result": BODY})
        client = Client(server.url, "lwm_x")
        client.poll_interval = 0
        result = client.search_by_file(csv_file, feature_space="table-xyz")
        assert result.cross_space[0]["compared"] == ["distance", "hour"]
        server.push(202, {"job_id": "j2"}).push(200, {"id": "j2", "status": "failed", "message": "boom"})
        with pytest.raises(errors.JobFailed):
            client.search_by_file(csv_file, feature_space="table-xyz")
