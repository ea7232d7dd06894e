"""``specs.tables``: the one CSV / NPZ table reader (submissions, search by data, samples, client)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from specs.tables import TableFileError, read_csv, read_npz


def test_a_csv_with_a_label_column_gives_features_columns_and_labels() -> None:
    table = read_csv("\ufeffa, y ,b\n1,x,2\n\n3.5, z ,-4e-1\n".encode(), label_column="y")
    assert table.columns == ["a", "b"] and table.labels == ["x", "z"]
    np.testing.assert_array_equal(table.X, [[1.0, 2.0], [3.5, -0.4]])


def test_an_empty_cell_is_nan_and_a_word_is_named_by_row_and_column() -> None:
    assert np.isnan(read_csv(b"a,b\n1,\n").X[0, 1])
    with pytest.raises(TableFileError, match=r"row 3, column 'b': 'x' is not a number") as caught:
        read_csv(b"a,b\n1,2\n3,x\n")
    assert caught.value.reason == "not-numeric"


@pytest.mark.parametrize(
    ("raw", "kwargs", "reason"),
    [
        (b"", {}, "empty-data"),
        (b"\xff\xfe", {}, "bad-format"),
        (b"a,b\n1,2,3\n", {}, "bad-format"),
        (b"a,b\n1,2\n", {"label_column": "y"}, "missing-labels"),
    ],
)
def test_bad_csv_files_are_refused_with_a_reason(raw: bytes, kwargs: dict[str, str], reason: str) -> None:
    with pytest.raises(TableFileError) as caught:
        read_csv(raw, **kwargs)
    assert caught.value.reason == reason


def test_a_header_is_detected_when_asked() -> None:
    assert read_csv(b"1,2\n3,4\n", header=None).columns is None
    assert read_csv(b"1,2\n3,4\n", header=None).X.shape == (2, 2)
    assert read_csv(b"a,b\n3,4\n", header=None).columns == ["a", "b"]


def test_an_npz_is_read_without_pickle() -> None:
    buffer = io.BytesIO()
    np.savez(buffer, X=np.ones((2, 3)), y=np.array([0, 1]))
    arrays = read_npz(buffer.getvalue())
    assert sorted(arrays) == ["X", "y"] and arrays["X"].shape == (2, 3)
    pickled = io.BytesIO()
    np.savez(pickled, X=np.array([{"a": 1}], dtype=object))
    with pytest.raises(TableFileError) as caught:
        read_npz(pickled.getvalue())
    assert caught.value.reason == "bad-format"
