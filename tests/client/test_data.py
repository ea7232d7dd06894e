"""Local specs equal the server's: same space key, same standardisation, same RKME (Z, beta) for the same
rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lwm_client import data as local
from lwm_client.models import FeatureSpace
from numpy.testing import assert_allclose

from marketplace.learnwares.models import FeatureSpace as ServerSpace
from marketplace.learnwares.services.spaces import table_space_key
from marketplace.search.data import spec_from_file
from specs import TableStandardizer, default_gamma

COLUMNS = ["dep_delay", "distance", "hour"]


def rows(n: int = 150, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.normal(10, 30, n), rng.uniform(100, 2500, n), rng.integers(5, 23, n)]).astype(
        np.float64
    )


@pytest.fixture(autouse=True)
def same_k_as_the_server(monkeypatch, settings):
    # The client takes K from LWM_RKME_K, the server from its setting: one value on both sides, whatever an
    # earlier test module left in the environment.
    monkeypatch.setenv("LWM_RKME_K", str(settings.LWM_RKME_K))


@pytest.fixture
def spaces() -> tuple[FeatureSpace, ServerSpace]:
    std = TableStandardizer().fit(rows(300, seed=9)).to_dict()
    fields = {
        "key": table_space_key(COLUMNS),
        "kind": "table",
        "dim": 3,
        "gamma": default_gamma(3),
        "standardization": std,
        "schema": {"columns": COLUMNS},
    }
    return FeatureSpace(**fields), ServerSpace(**fields)


@pytest.mark.parametrize("columns", [COLUMNS, ["a"], ["x y", "é", "1,2"]])
def test_table_space_key_is_the_servers(columns):
    assert local.table_space_key(columns) == table_space_key(columns)


def test_rkme_of_a_csv_equals_the_servers_rkme_of_the_same_file(tmp_path, spaces):
    client_space, server_space = spaces
    X = rows()
    path = tmp_path / "data.csv"
    path.write_text(
        ",".join(COLUMNS) + "\n" + "\n".join(",".join(repr(float(v)) for v in r) for r in X) + "\n"
    )
    read, names, _ = local.read_table(path)
    assert names == COLUMNS
    mine = local.spec_table(read, client_space)
    theirs = spec_from_file(space=server_space, name="data.csv", content=path.read_bytes())
    assert_allclose(mine.Z_, theirs.Z_, rtol=1e-10, atol=1e-12)
    assert_allclose(mine.beta_, theirs.beta_, rtol=1e-10, atol=1e-12)
    assert mine.gamma_ == theirs.gamma_ == default_gamma(3)


def test_rkme_is_computed_in_the_spaces_coordinates_not_raw_units(spaces):
    client_space, _ = spaces
    X = rows()
    spec = local.spec_table(X, client_space)
    # Independent check: the RKME's kernel mean embedding is close to the one of the standardised rows.
    Xs = TableStandardizer.from_dict(client_space.standardization).transform(X)
    assert spec.mmd_to_data(Xs) < 1e-3
    assert spec.mmd_to_data(X) > 0.1


def test_csv_npz_dataframe_and_array_give_the_same_rows_and_labels(tmp_path):
    X, y = rows(20), np.array(["a", "b"] * 10)
    frame = pd.DataFrame(X, columns=COLUMNS).assign(label=y)
    frame.to_csv(tmp_path / "d.csv", index=False)
    np.savez(tmp_path / "d.npz", X=X, y=y, columns=np.array(COLUMNS))
    for source in (tmp_path / "d.csv", tmp_path / "d.npz", frame):
        got, names, labels = local.read_table(source, label_column="label")
        assert_allclose(got, X)
        assert names == COLUMNS and list(labels) == list(y)
    reordered, names, _ = local.read_table(frame.drop(columns="label"), columns=["hour", "dep_delay"])
    assert_allclose(reordered, X[:, [2, 0]])
    assert names == ["hour", "dep_delay"]


def test_wrong_width_and_non_finite_data_are_refused(spaces):
    from lwm_client.errors import BadRequest

    client_space, _ = spaces
    with pytest.raises(BadRequest):
        local.spec_table(rows()[:, :2], client_space)
    bad = rows()
    bad[0, 0] = np.nan
    with pytest.raises(BadRequest):
        local.read_table(bad)


def test_image_spec_uses_the_spaces_seeded_encoder():
    from specs.encoders import ConvImageEncoder

    images = np.random.default_rng(0).random((12, 1, 8, 8)).astype(np.float32)
    space = FeatureSpace(key="image-conv-0", kind="image", dim=128, gamma=1.0, schema={"seed": 0})
    assert_allclose(local.encode_images(images, space), ConvImageEncoder(0).encode(images), rtol=1e-6)
    spec = local.spec_encoded(local.encode_images(images, space), space)
    assert spec.Z_.shape == (12, 128)


def test_images_in_0_255_give_the_same_spec_as_in_0_1_as_on_the_server():
    from sklearn.datasets import load_digits

    pixels = (
        (load_digits().images[:40] * 255.0 / 16.0).round().astype(np.uint8)[:, None]
    )  # real digits, 0..255
    unit = pixels.astype(np.float32) / 255.0
    space = FeatureSpace(key="image-conv-0", kind="image", dim=128, gamma=1.0, schema={"seed": 0})
    for given in (pixels, pixels.astype(np.float64), unit):
        assert_allclose(local.read_images(given), unit, rtol=0, atol=1e-7)
    specs = [
        local.spec_encoded(local.encode_images(local.read_images(g), space), space) for g in (pixels, unit)
    ]
    assert_allclose(specs[0].Z_, specs[1].Z_, atol=1e-6)


def test_rows_to_upload_keep_a_csvs_bytes_and_pack_arrays_texts_and_images(tmp_path):
    import io
    import json

    path = tmp_path / "rows.csv"
    path.write_text("a,b\n1.5,2\n3,4\n")
    assert local.data_upload(str(path), "table") == (
        "rows.csv",
        path.read_bytes(),
        "application/octet-stream",
    )
    name, content, _ = local.data_upload(pd.DataFrame({"a": [1.5, 3.0], "b": [2.0, 4.0]}), "table")
    assert name == "data.csv" and content.decode().splitlines() == ["a,b", "1.5,2.0", "3.0,4.0"]
    name, content, _ = local.data_upload(np.arange(6.0).reshape(3, 2), "table")
    assert name == "data.npz" and np.array_equal(
        np.load(io.BytesIO(content))["X"], np.arange(6.0).reshape(3, 2)
    )
    name, content, _ = local.data_upload(["one text", "two"], "text")
    assert [json.loads(line)["text"] for line in content.decode().splitlines()] == ["one text", "two"]
    name, content, _ = local.data_upload(np.full((2, 1, 8, 8), 255, dtype=np.uint8), "image")
    assert name == "data.npz" and np.load(io.BytesIO(content))["images"].max() == pytest.approx(1.0)


def test_a_table_rkme_carries_the_rows_rms_so_the_market_can_convert_units(spaces):
    client_space, _ = spaces
    X = rows(80, seed=3)
    spec = local.spec_table(X, client_space)
    doc = local.rkme_document(spec)
    assert_allclose(doc["unit_rms"], [np.sqrt(np.mean(X[:, j] ** 2)) for j in range(3)], rtol=1e-12)
    import json

    from specs import rkme_from_json

    assert_allclose(rkme_from_json(json.dumps(doc)).Z_, spec.Z_)  # still a valid RKME document
