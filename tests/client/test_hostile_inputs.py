"""What an outsider hands the client that used to end in a traceback (ValueError, FileNotFoundError,
ColumnError, a TorchScript RuntimeError) instead of a named error or a result."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
from lwm_client import Client
from lwm_client import data as local
from lwm_client.errors import BadRequest, ConfigError, LwmError, PackageError
from lwm_client.predict import Predictor
from lwm_client.submission_form import labelled_file, submission_request
from numpy.testing import assert_allclose

from tests.support import packages

COLUMNS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def table_package() -> tuple[bytes, torch.nn.Linear]:
    torch.manual_seed(5)
    linear = torch.nn.Linear(3, 2).eval()
    return packages.build_table_model_package(
        model=packages.torchscript_bytes(linear, torch.zeros(2, 3))
    ), linear


def _expected(linear: torch.nn.Linear, X: np.ndarray) -> np.ndarray:
    logits = X @ linear.weight.detach().numpy().T.astype(np.float64) + linear.bias.detach().numpy()
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _code(fn, kind: type[LwmError] = LwmError) -> str:
    with pytest.raises(kind) as caught:
        fn()
    return caught.value.code


def test_predict_refuses_missing_columns_words_nan_and_other_widths_by_name(table_package):
    data, linear = table_package
    predictor = Predictor.from_bytes(data)
    X = packages.table_data(COLUMNS, 8, seed=2)
    frame = pd.DataFrame(X, columns=COLUMNS)
    assert _code(lambda: predictor.predict(frame[["a", "b"]]), ConfigError) == "predict:user:columns"
    assert _code(lambda: predictor.predict(frame.assign(b="x")), ConfigError) == "predict:user:not-numeric"
    assert _code(lambda: predictor.predict([["x", "y", "z"]]), ConfigError) == "predict:user:not-numeric"
    with_nan = X.copy()
    with_nan[3, 1] = np.nan
    assert _code(lambda: predictor.predict(with_nan), ConfigError) == "predict:user:nan"
    assert _code(lambda: predictor.predict(X[:, :2]), ConfigError) == "predict:user:columns"
    assert _code(lambda: predictor.predict(np.c_[X, X]), ConfigError) == "predict:user:columns"
    # A DataFrame in another order with an extra column, and one row as a flat vector, are predicted.
    shuffled = frame[["c", "a", "b"]].assign(extra=1.0)
    assert_allclose(predictor.predict_proba(shuffled), _expected(linear, X), rtol=1e-5, atol=1e-6)
    assert_allclose(predictor.predict_proba(X[4]), _expected(linear, X[4:5]), rtol=1e-5, atol=1e-6)


def test_a_text_model_takes_one_string_as_one_text_and_names_bad_texts_and_widths():
    predictor = Predictor.from_bytes(packages.build_text_model_package())
    one = predictor.predict_proba("a single sentence about football")
    assert one.shape[0] == 1
    assert_allclose(one, predictor.predict_proba(["a single sentence about football"]))
    assert _code(lambda: predictor.predict([5, None]), ConfigError) == "predict:user:not-text"
    assert _code(lambda: predictor.predict([]), ConfigError) == "predict:user:empty"
    assert _code(lambda: predictor.predict(np.zeros((2, 10))), ConfigError) == "predict:user:columns"


def test_load_names_a_missing_file_a_folder_and_a_file_that_is_not_a_zip(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a package")
    for path in (tmp_path / "missing.zip", tmp_path, text):
        assert _code(lambda p=path: Client.load(p), PackageError) == "predict:user:not-a-package"


def test_tables_with_words_nan_or_a_missing_path_are_refused_by_name(tmp_path):
    frame = pd.DataFrame(packages.table_data(COLUMNS, 6, seed=3), columns=COLUMNS)
    with pytest.raises(BadRequest) as caught:
        local.read_table(frame.assign(b="jan"))
    assert caught.value.code == "data:user:not-numeric" and "'b'" in caught.value.message
    with pytest.raises(BadRequest) as caught:
        local.read_table(frame.assign(c=np.where(np.arange(6) == 2, np.nan, 1.0)))
    assert caught.value.code == "data:user:nan" and "'c'" in caught.value.message
    missing = tmp_path / "data.csv"
    for fn in (
        lambda: local.read_table(missing),
        lambda: local.data_upload(missing, "table"),
        lambda: local.data_upload(str(tmp_path / "t.jsonl"), "text"),
    ):
        assert _code(fn, BadRequest) == "data:user:missing-file"
    assert _code(lambda: local.read_table([["x", "y"]]), BadRequest) == "data:user:not-numeric"


def test_an_uploaded_header_keeps_a_name_with_a_comma_or_a_quote_as_one_column():
    from specs.tables import read_csv

    names = ["mo,nth", 'say "hi"', "c"]
    frame = pd.DataFrame(packages.table_data(names, 4, seed=4), columns=names)
    _, raw, _ = local.data_upload(frame, "table")
    table = read_csv(raw)
    assert table.columns == names
    assert_allclose(table.X, frame.to_numpy())


def test_labels_with_missing_values_or_categories_are_sent_as_strings_and_a_length_mismatch_is_named():
    X = pd.DataFrame(packages.table_data(COLUMNS, 5, seed=6), columns=COLUMNS)
    y = pd.Series(["late", None, "on-time", np.nan, "late"])
    name, raw, _ = labelled_file(X, y, "table")
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        assert npz["y"].tolist() == ["late", "", "on-time", "", "late"]  # the market names rows 2 and 4
    _, raw, _ = labelled_file(X, pd.Series(["a", "b", "a", "b", "a"], dtype="category"), "table")
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        assert npz["y"].tolist() == ["a", "b", "a", "b", "a"]
    with pytest.raises(BadRequest) as caught:
        labelled_file(X, ["a", "b"], "table")
    assert caught.value.code == "data:user:labels-mismatch"
    with pytest.raises(BadRequest) as caught:
        submission_request(
            None,
            data=X,
            labelled=(X.assign(a="word"), ["a"] * 5),
            task="classification",
            modality="table",
            requirements=None,
            name="",
            column_map=None,
        )
    assert caught.value.code == "data:user:not-numeric"


def test_a_text_with_a_lone_surrogate_is_refused_naming_its_line_from_a_list_and_a_jsonl_file(tmp_path):
    # JSON may escape a lone surrogate; the market refuses it, and MiniLM's tokenizer fails on it.
    path = tmp_path / "texts.jsonl"
    path.write_text('{"text": "fine"}\n{"text": "broken \\udfff"}\n', encoding="utf-8")
    for source, where in ((path, "line 2"), (["fine", "also", "x\ud800"], "text 3")):
        with pytest.raises(BadRequest) as caught:
            local.read_texts(source)
        assert caught.value.code == "data:user:invalid" and where in caught.value.message
    with pytest.raises(BadRequest):
        local.data_upload(["x\ud800"], "text")  # nothing is sent
    assert local.read_texts(["\U0001f600 fine"]) == ["\U0001f600 fine"]
