"""`lwm submit --column-map`: the renames reach the client as the dict `Client.submit` / `spec_table` take."""

from __future__ import annotations

import argparse
from types import SimpleNamespace
from typing import Any

import pytest
from lwm_client import errors
from lwm_client.cli import _renames, cmd_submit


class RecordingClient:
    """Stands in for `Client`: records what the CLI hands it (the HTTP side has its own tests)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def spec_table(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append(("spec_table", args, kwargs))
        return "rkme-with-renames"

    def spec(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append(("spec", args, kwargs))
        return "rkme"

    def submit(self, *args: Any, **kwargs: Any) -> SimpleNamespace:
        self.calls.append(("submit", args, kwargs))
        return SimpleNamespace(id="s1", status="queued", stage="accepted")


def _args(**over: Any) -> argparse.Namespace:
    base: dict[str, Any] = dict(
        data="mine.csv", labelled=None, label_column="label", modality="table", task="classification",
        space=None, name="", no_wait=True, wait_timeout=1.0, download=None, upload=False, column_map="",
    )  # fmt: skip
    return argparse.Namespace(**{**base, **over})


def test_renames_parse_pairs_and_ignore_blanks():
    assert _renames(" departure_delay = dep_delay ,mins=minute,,junk") == {
        "departure_delay": "dep_delay",
        "mins": "minute",
    }
    assert _renames("") is None


@pytest.fixture
def client(monkeypatch) -> RecordingClient:
    fake = RecordingClient()
    monkeypatch.setattr("lwm_client.cli._client", lambda args: fake)
    monkeypatch.setattr("lwm_client.cli._plain", lambda obj: {"id": obj.id})
    return fake


def test_upload_sends_the_renames_with_the_rows(client):
    cmd_submit(_args(upload=True, column_map="mins=minute"))
    (name, _, kwargs), *_ = [c for c in client.calls if c[0] == "submit"]
    assert kwargs["data"] == "mine.csv" and kwargs["column_map"] == {"mins": "minute"}


def test_an_rkme_submission_specs_the_table_after_the_renames(client):
    cmd_submit(_args(column_map="mins=minute"))
    assert client.calls[0] == ("spec_table", ("mine.csv",), {"space": None, "column_map": {"mins": "minute"}})
    assert client.calls[1][0] == "submit" and client.calls[1][1] == ("rkme-with-renames",)


def test_without_renames_the_plain_spec_is_used(client):
    cmd_submit(_args())
    assert [c[0] for c in client.calls] == ["spec", "submit"]


def test_renames_on_images_are_a_usage_error(client):
    with pytest.raises(errors.ConfigError, match="--column-map"):
        cmd_submit(_args(modality="image", column_map="a=b"))
    assert client.calls == []
