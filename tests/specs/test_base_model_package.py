"""Upload-time checks of ``kind: base_model`` packages (no model is loaded here).

The manifest's kind/modality/task/pooling rules, the ``model/`` layout, and the per-kind dtype rule
of the safetensors header: a BERT checkpoint's int64 buffers pass for a base model while an
adapter stays float-only.
"""

from __future__ import annotations

import json
import struct

import pytest

from specs.packaging import InvalidPackageError, package_inspect
from specs.packaging.manifest import check_manifest
from specs.packaging.safetensors_header import (
    BASE_MODEL_LIMITS,
    SafetensorsLimits,
    check_safetensors_header,
)
from tests.support.base_model_packages import base_model_folder, base_model_package, pickle_weights
from tests.support.packages import zip_bytes


def _manifest(**changes):
    doc = {
        "name": "tiny-bert",
        "description": "d",
        "kind": "base_model",
        "modality": "text",
        "task": "embedding",
        "pooling": "mean",
        "input": {},
        "output": {"dim": 32},
        "license": "MIT",
    }
    return {**doc, **changes}


def _safetensors(entries: dict[str, tuple[str, list[int], int]]) -> bytes:
    """A safetensors file whose tensors have the given (dtype, shape, bytes per element)."""
    header, offset = {}, 0
    for name, (dtype, shape, width) in entries.items():
        size = width
        for s in shape:
            size *= s
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * offset


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return base_model_folder(tmp_path_factory.mktemp("bert") / "model")


def test_a_base_model_manifest_needs_text_embedding_and_a_known_pooling():
    assert check_manifest(_manifest())["pooling"] == "mean"
    assert check_manifest(_manifest(pooling="cls"))["pooling"] == "cls"
    with pytest.raises(InvalidPackageError) as missing:
        check_manifest({k: v for k, v in _manifest().items() if k != "pooling"})
    assert "pooling" in missing.value.details
    with pytest.raises(InvalidPackageError) as bad:
        check_manifest(_manifest(pooling="max", modality="table", input={"columns": ["a"]}))
    assert set(bad.value.details) >= {"pooling", "kind"}


def test_the_tiny_bert_checkpoint_has_int64_buffers_which_only_the_base_model_rule_accepts(folder):
    weights = (folder / "model.safetensors").read_bytes()
    (size,) = struct.unpack("<Q", weights[:8])
    dtypes = {v["dtype"] for k, v in json.loads(weights[8 : 8 + size]).items() if k != "__metadata__"}
    assert "I64" in dtypes  # position_ids / token_type_ids: the reason for the per-kind rule
    assert check_safetensors_header(weights, "model.safetensors", BASE_MODEL_LIMITS) > 0
    with pytest.raises(InvalidPackageError) as adapter:
        check_safetensors_header(weights, "adapter_model.safetensors")  # the adapter default: floats only
    assert adapter.value.code == "upload:user:adapter-header" and "I64" in adapter.value.message


@pytest.mark.parametrize("dtype", ["I32", "U8", "BOOL", "I8"])
def test_the_base_model_rule_still_refuses_other_dtypes(dtype):
    data = _safetensors({"w": (dtype, [2, 2], 4 if dtype == "I32" else 1)})
    with pytest.raises(InvalidPackageError) as err:
        check_safetensors_header(data, "model.safetensors", BASE_MODEL_LIMITS)
    assert err.value.code == "upload:user:base-model-header"
    assert SafetensorsLimits().dtypes.keys() == {"F16", "BF16", "F32", "F64"}


def test_an_int64_span_is_sized_at_eight_bytes_per_element():
    good = _safetensors({"ids": ("I64", [1, 4], 8)})
    assert check_safetensors_header(good, "model.safetensors", BASE_MODEL_LIMITS) == 1
    short = _safetensors({"ids": ("I64", [1, 4], 4)})  # 16 bytes for 4 int64s: wrong
    with pytest.raises(InvalidPackageError, match="needs 32"):
        check_safetensors_header(short, "model.safetensors", BASE_MODEL_LIMITS)


def test_a_good_package_yields_the_flat_folder_and_needs_no_rkme(folder):
    package = package_inspect(base_model_package(folder))
    assert package.artifact_format == "hf_safetensors"
    assert set(package.artifact) == {p.name for p in folder.iterdir()}
    assert package.artifact["config.json"] == (folder / "config.json").read_bytes()
    assert package.rkme_json is None and package.summary()["spec"] == "none"


def _files(folder):
    return {f"model/{p.name}": p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("pickle-bin", "upload:user:pickle-artifact"),
        ("sub-folder", "upload:user:base-model-layout"),
        ("no-folder", "upload:user:base-model-layout"),
        ("no-weights", "upload:user:artifact-missing"),
        ("with-rkme", "upload:user:base-model-spec"),
        ("float-only-broken-header", "upload:user:base-model-header"),
    ],
)
def test_a_bad_base_model_package_is_refused_at_upload_by_name(folder, tmp_path, case, code):
    marker = tmp_path / "unpickled"
    extra: dict[str, bytes | str] = {}
    if case == "pickle-bin":
        extra = {"model/pytorch_model.bin": pickle_weights(marker)}
    elif case == "sub-folder":
        extra = {"model/1_Pooling/config.json": "{}"}
    elif case == "with-rkme":
        extra = {"rkme.json": "{}"}
    elif case == "float-only-broken-header":
        extra = {"model/model.safetensors": b"\xff" * 7}
    data = base_model_package(folder, extra=extra)
    if case in ("no-folder", "no-weights"):
        files = {"learnware.yaml": package_inspect(data).manifest and _yaml(data)}
        if case == "no-weights":
            files.update({k: v for k, v in _files(folder).items() if not k.endswith(".safetensors")})
        data = zip_bytes(files)
    with pytest.raises(InvalidPackageError) as err:
        package_inspect(data)
    assert err.value.code == code
    assert not marker.exists()  # nothing was unpickled


def _yaml(data: bytes) -> bytes:
    import io
    import zipfile

    return zipfile.ZipFile(io.BytesIO(data)).read("learnware.yaml")


def test_a_dtype_that_is_not_a_string_is_refused_by_name_not_by_a_crash():
    data = _safetensors({"w": (["F32"], [2], 4)})
    for limits in (BASE_MODEL_LIMITS, SafetensorsLimits()):
        with pytest.raises(InvalidPackageError) as err:
            check_safetensors_header(data, "model.safetensors", limits)
        assert err.value.code == limits.code and "dtype" in err.value.message
