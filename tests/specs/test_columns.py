"""Columns matched by name: the order-free space key, column_map validation, alignment of rows."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from specs.columns import ColumnError, align, align_complete, apply_column_map, column_names, table_space_key

COLUMNS = ["month", "hour", "dep_delay", "distance"]


def test_space_key_is_the_same_for_every_order_of_the_columns():
    keys = {table_space_key(list(p)) for p in itertools.permutations(COLUMNS)}
    assert len(keys) == 1
    assert table_space_key(COLUMNS) != table_space_key(COLUMNS[:3])
    assert table_space_key(COLUMNS) == table_space_key(
        [{"name": c, "description": "x"} for c in reversed(COLUMNS)]
    )


def test_duplicate_names_are_refused_by_name():
    with pytest.raises(ColumnError) as err:
        column_names(["a", "b", "a"])
    assert err.value.code == "columns:duplicate-column" and err.value.columns == ["a"]


def test_alignment_reorders_drops_extras_and_reports():
    user = ["id", "distance", "month", "dep_delay", "hour", "note"]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(7, len(user)))
    a = align_complete(user, COLUMNS)
    out = a.apply(X)
    for j, c in enumerate(COLUMNS):
        np.testing.assert_array_equal(out[:, j], X[:, user.index(c)])
    assert a.extra == ["id", "note"] and a.missing == [] and a.coverage == 1.0
    assert a.report()["reordered"] is True
    assert a.apply(X.astype(np.float32)).dtype == np.float32  # model inputs keep their dtype


def test_missing_columns_are_named_or_filled_with_nan():
    a = align(["hour", "month"], COLUMNS)
    assert a.missing == ["dep_delay", "distance"] and a.coverage == 0.5
    out = a.apply(np.array([[1.0, 2.0]]))
    np.testing.assert_array_equal(out[0, :2], [2.0, 1.0])
    assert np.isnan(out[0, 2:]).all()
    with pytest.raises(ColumnError) as err:
        align_complete(["hour", "month", "departure_delay"], COLUMNS)
    assert err.value.code == "columns:missing-column" and err.value.columns == ["dep_delay", "distance"]
    assert "departure_delay" in str(err.value)  # the unmatched columns are shown, to be renamed


def test_column_map_renames_and_is_validated():
    assert apply_column_map(["departure_delay", "hour"], {"departure_delay": "dep_delay"}) == [
        "dep_delay",
        "hour",
    ]
    with pytest.raises(ColumnError) as err:
        apply_column_map(["hour"], {"departure_delay": "dep_delay"})
    assert err.value.code == "columns:unknown-column" and err.value.columns == ["departure_delay"]
    with pytest.raises(ColumnError) as err:
        apply_column_map(["a", "b"], {"a": "x", "b": "x"})
    assert err.value.code == "columns:duplicate-target"
    with pytest.raises(ColumnError) as err:  # renamed onto a column the user already has
        apply_column_map(["a", "b"], {"a": "b"})
    assert err.value.code == "columns:duplicate-target"
    with pytest.raises(ColumnError) as err:
        apply_column_map(["a"], {"a": 3})  # type: ignore[dict-item]
    assert err.value.code == "columns:bad-map"


def test_alignment_round_trips_through_json():
    a = align(["b", "a", "z"], ["a", "b", "c"])
    b = type(a).from_dict(a.to_dict())
    assert b.to_dict() == a.to_dict() and b.missing == ["c"] and b.extra == ["z"]
