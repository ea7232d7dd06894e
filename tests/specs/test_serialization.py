from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from specs.exceptions import SerializationError
from specs.rkme import rkme_fit
from specs.serialization import (
    arrays_to_bytes,
    bytes_to_arrays,
    rkme_from_bytes,
    rkme_from_json,
    rkme_to_bytes,
    rkme_to_json,
)


@pytest.fixture
def spec(rng):
    return rkme_fit(rng.normal(size=(200, 3)) * 1e3, K=7, random_state=0)


def test_json_round_trip_is_bit_exact(spec):
    text = rkme_to_json(spec)
    doc = json.loads(text)
    assert (doc["format"], doc["version"], doc["d"], doc["K"], doc["n_samples"]) == ("lwm-rkme", 1, 3, 7, 200)
    back = rkme_from_json(text)
    assert_array_equal(back.Z_, spec.Z_)
    assert_array_equal(back.beta_, spec.beta_)
    assert back.gamma_ == spec.gamma_ and back.n_samples_ == 200
    assert back.mmd(spec) == 0.0
    assert rkme_to_json(back) == text


def test_bytes_round_trip_is_exact_and_readable_by_safetensors(spec):
    data = rkme_to_bytes(spec)
    back = rkme_from_bytes(data)
    assert_array_equal(back.Z_, spec.Z_)
    assert_array_equal(back.beta_, spec.beta_)
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    loaded = safetensors_numpy.load(data)
    assert_array_equal(loaded["Z"], spec.Z_)


def test_generic_arrays_round_trip_keeps_dtypes_shapes_and_header():
    arrays = {
        "w": np.arange(6, dtype=np.float32).reshape(2, 3),
        "ids": np.array([3, -1], dtype=np.int64),
        "mask": np.array([True, False]),
        "scalar": np.float64(2.5),
        "empty": np.empty((0, 4)),
        "big_endian": np.array([1.5, 2.5], dtype=">f8"),
    }
    header = {"recipe": "ensemble", "weights": [0.25, 0.75], "nested": {"k": 1}}
    out_header, out = bytes_to_arrays(arrays_to_bytes(header, arrays))
    assert out_header == header
    assert set(out) == set(arrays)
    for name, arr in arrays.items():
        assert_array_equal(out[name], arr)
        assert out[name].shape == np.shape(arr)
        assert out[name].dtype == np.asarray(arr).dtype.newbyteorder("=")
    out["w"][0, 0] = 9.0  # own, writable memory
    assert arrays_to_bytes(header, arrays) == arrays_to_bytes(header, arrays)  # deterministic


def mutate(text: str, **changes) -> str:
    doc = json.loads(text)
    for key, value in changes.items():
        if value is ...:
            del doc[key]
        else:
            doc[key] = value
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"format": "other"}, "format"),
        ({"version": 2}, "version"),
        ({"version": "1"}, "version"),
        ({"version": True}, "version"),
        ({"gamma": 0}, "gamma"),
        ({"gamma": "0.1"}, "gamma"),
        ({"K": 6}, "Z"),
        ({"d": 0}, "d"),
        ({"n_samples": -5}, "n_samples"),
        ({"Z": ...}, "Z"),
        ({"beta": [0.1, 0.2]}, "beta"),
        ({"beta": [[0.1]] * 7}, "beta"),
        ({"nonnegative_beta": "yes"}, "nonnegative_beta"),
    ],
)
def test_json_loading_names_the_bad_field(spec, changes, field):
    with pytest.raises(SerializationError, match=field):
        rkme_from_json(mutate(rkme_to_json(spec), **changes))


def test_json_loading_rejects_non_finite_strings_and_garbage(spec):
    doc = json.loads(rkme_to_json(spec))
    doc["Z"][2][1] = float("nan")
    with pytest.raises(SerializationError, match="'Z' contains NaN"):
        rkme_from_json(json.dumps(doc))  # Python writes the NaN literal
    doc["Z"][2][1] = "1.0"
    with pytest.raises(SerializationError, match="'Z'"):
        rkme_from_json(json.dumps(doc))
    with pytest.raises(SerializationError, match="JSON"):
        rkme_from_json("{not json")
    with pytest.raises(SerializationError, match="object"):
        rkme_from_json("[1, 2]")


def test_bytes_loading_rejects_corrupt_containers(spec):
    data = rkme_to_bytes(spec)
    with pytest.raises(SerializationError, match="shorter"):
        bytes_to_arrays(data[:5])
    with pytest.raises(SerializationError, match="header length"):
        bytes_to_arrays(struct.pack("<Q", 10**9) + data[8:])
    with pytest.raises(SerializationError, match="trailing"):
        bytes_to_arrays(data + b"\0" * 8)
    with pytest.raises(SerializationError, match="'Z'.*offsets|'beta'.*offsets"):
        bytes_to_arrays(data[:-8])
    nan = arrays_to_bytes({}, {"x": np.array([1.0, np.nan])})
    with pytest.raises(SerializationError, match="'x' contains NaN"):
        bytes_to_arrays(nan)
    assert np.isnan(bytes_to_arrays(nan, check_finite=False)[1]["x"][1])
    wrong = arrays_to_bytes({"format": "lwm-rkme"}, {"Z": spec.Z_.astype(np.float32), "beta": spec.beta_})
    with pytest.raises(SerializationError, match="version"):
        rkme_from_bytes(wrong)
    header, _ = bytes_to_arrays(data)
    with pytest.raises(SerializationError, match="'Z' must be float64"):
        rkme_from_bytes(arrays_to_bytes(header, {"Z": spec.Z_.astype(np.float32), "beta": spec.beta_}))


def test_writing_rejects_unsupported_content():
    with pytest.raises(SerializationError, match="dtype"):
        arrays_to_bytes({}, {"s": np.array(["a"])})
    with pytest.raises(SerializationError, match="JSON"):
        arrays_to_bytes({"x": float("nan")}, {})
    with pytest.raises(SerializationError, match="__metadata__"):
        arrays_to_bytes({}, {"__metadata__": np.ones(1)})
    with pytest.raises(SerializationError, match="unfitted"):
        rkme_to_json(type(rkme_fit(np.ones((2, 1)), K=1))())
