"""`lwm search` output of a mixture: components named by learnware id, name and version, with the p-value;
a plausible mixture the test did not confirm is printed as a suggestion."""

from __future__ import annotations

from lwm_client.cli import _hits_text
from lwm_client.models import SearchResult


def _result(mixture: dict) -> SearchResult:
    hit = {
        "learnware_id": 7,
        "version_id": 70,
        "version": 2,
        "name": "digits-a",
        "modality": "table",
        "task": "classification",
        "mmd2": 0.01,
    }
    return SearchResult.from_dict({"results": [hit], "mixture": mixture})


def _component(lid: int, vid: int, name: str, weight: float) -> dict:
    return {
        "learnware_id": lid,
        "version_id": vid,
        "version": 1,
        "name": name,
        "weight": weight,
        "confidence": 0.5,
    }


def test_a_proposed_mixture_names_each_component_and_its_p_value():
    text = _hits_text(
        _result(
            {
                "proposed": True,
                "mmd2": 0.01,
                "best_single_mmd2": 0.05,
                "best_single_version_id": 70,
                "p_value": 0.005,
                "alpha": 0.05,
                "suggestion": None,
                "components": [_component(7, 70, "digits-a", 0.6), _component(8, 80, "digits-b", 0.4)],
            }
        )
    )
    assert "mixture proposed" in text and "p=0.005" in text
    assert "#7 digits-a v1: weight 0.60" in text and "#8 digits-b v1: weight 0.40" in text


def test_a_plausible_mixture_is_printed_as_a_suggestion_not_a_proposal():
    suggestion = {
        "components": [_component(7, 70, "digits-a", 0.8), _component(9, 90, "digits-c", 0.2)],
        "mmd2": 0.02,
        "gain": 0.001,
        "p_value": 0.12,
        "explanation": "...",
    }
    text = _hits_text(
        _result(
            {
                "proposed": False,
                "mmd2": 0.03,
                "best_single_mmd2": 0.03,
                "best_single_version_id": 70,
                "p_value": 0.12,
                "alpha": 0.05,
                "components": [],
                "suggestion": suggestion,
            }
        )
    )
    assert "mixture proposed" not in text
    assert "suggested mixture, not significant (p=0.120)" in text and "#9 digits-c v1: weight 0.20" in text
