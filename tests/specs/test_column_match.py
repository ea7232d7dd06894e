"""Suggested column matches: normalised names, optional embeddings, one use per column, never below the
bar."""

from __future__ import annotations

import numpy as np

from specs.column_match import name_similarity, name_tokens, suggest_matches


def test_names_are_normalised_across_case_separators_and_abbreviations():
    assert name_tokens("DepartureDelay") == name_tokens("dep_delay") == ["departure", "delay"]
    assert name_similarity("schedDepTime", "sched_dep_time") == 1.0
    assert name_similarity("carat", "passenger_count") < 0.3


def test_suggestions_pair_each_column_once_best_first_and_skip_weak_pairs():
    got = suggest_matches(["departure_delay", "row_id", "Dist"], ["dep_delay", "distance", "air_time"])
    assert [(s.yours, s.theirs) for s in got] == [("departure_delay", "dep_delay"), ("Dist", "distance")]
    assert all(s.confidence >= 0.5 and s.meaning is None for s in got)


def test_an_encoder_lifts_pairs_whose_names_differ_but_descriptions_agree():
    vectors = {"price usd": [1.0, 0.0], "cost: price in dollars (USD)": [0.98, 0.2], "weight": [0.0, 1.0]}

    def encode(texts):
        return np.asarray([vectors.get(t, [0.0, 1.0]) for t in texts])

    theirs = [{"name": "cost", "description": "price in dollars", "unit": "USD"}]
    assert suggest_matches(["price_usd"], theirs) == []  # the names alone do not reach the bar
    got = suggest_matches(["price_usd"], theirs, encode=encode)
    assert got and got[0].theirs == "cost" and got[0].meaning > 0.9
