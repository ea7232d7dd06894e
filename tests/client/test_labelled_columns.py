"""A labelled DataFrame travels with its column names (the market matches them by name and learns
the columns the data lack from them); an array travels without."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client"))

from lwm_client.submission_form import labelled_file  # noqa: E402


def _arrays(raw: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def test_a_labelled_frame_keeps_its_column_names_and_an_array_has_none():
    X = np.arange(12.0).reshape(4, 3)
    name, raw, _ = labelled_file(pd.DataFrame(X, columns=["b", "a", "c"]), np.array([0, 1, 0, 1]), "table")
    arrays = _arrays(raw)
    assert name == "labelled.npz" and arrays["columns"].tolist() == ["b", "a", "c"]
    np.testing.assert_array_equal(arrays["X"], X)
    assert "columns" not in _arrays(labelled_file(X, np.array([0, 1, 0, 1]), "table")[1])
