"""An adapter's safetensors header is bounded before the safetensors library allocates anything.

Memory is checked with ``tracemalloc`` (what the check itself allocates, relative to its input),
not with wall time. The API-level refusal is in ``test_formats_publish.py``.
"""

from __future__ import annotations

import tracemalloc

import pytest

from specs.packaging import InvalidPackageError, package_inspect
from specs.packaging.safetensors_header import SafetensorsLimits, check_safetensors_header
from tests.support import hostile_packages as hostile
from tests.support import packages


def _refused(data: bytes, limits: SafetensorsLimits | None = None) -> str:
    with pytest.raises(InvalidPackageError) as caught:
        check_safetensors_header(data, limits=limits)
    assert caught.value.code == "upload:user:adapter-header"
    return caught.value.message


def test_400k_declared_tensors_are_refused_from_the_length_prefix_without_parsing_the_header():
    weights = hostile.many_tensors_safetensors(400_000)
    tracemalloc.start()
    try:
        message = _refused(weights)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"declares a {len(weights) - 8}-byte header" in message
    assert peak < 64 * 1024  # no copy of the 36 MB header, no per-tensor object


def test_a_header_within_the_size_cap_but_over_the_tensor_cap_is_refused_by_count_with_bounded_memory():
    weights = hostile.many_tensors_safetensors(5000)
    tracemalloc.start()
    try:
        message = _refused(weights)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "declares 5000 tensors (limit 4096)" in message
    assert peak < 8 * len(weights)  # the parsed JSON of the header, nothing sized by the declared shapes


def test_the_upload_refuses_the_wide_adapter_by_name():
    data = hostile.adapter_package_with_weights(hostile.many_tensors_safetensors(400_000), name="wide")
    with pytest.raises(InvalidPackageError) as caught:
        package_inspect(data)
    assert (caught.value.code, caught.value.details["file"]) == (
        "upload:user:adapter-header",
        "adapter_model.safetensors",
    )


def _one(
    dtype: str = "F32", shape: list[int] | None = None, offsets: list[int] | None = None
) -> dict[str, object]:
    return {
        "dtype": dtype,
        "shape": shape if shape is not None else [2, 2],
        "data_offsets": offsets if offsets is not None else [0, 16],
    }


@pytest.mark.parametrize(
    ("header", "data", "reason"),
    [
        ({"a": _one(offsets=[0, 32])}, bytes(16), "outside the 16 bytes"),
        ({"a": _one(shape=[2, 3])}, bytes(16), "needs 24"),
        ({"a": _one(), "b": _one(offsets=[8, 24], shape=[2, 2])}, bytes(24), "overlap"),
        ({"a": _one(dtype="I64")}, bytes(16), "dtype 'I64'"),
        ({"a": _one(shape=[1, 1, 1, 1, 2, 2])}, bytes(16), "at most 4 sizes"),
        ({"a": _one(shape=[2, -2])}, bytes(16), "shape"),
        ({"a": _one(offsets=[True, 16])}, bytes(16), "data_offsets"),
        ({"a": [1, 2]}, b"", "not described by a mapping"),
        ({"__metadata__": {"k": 1}}, b"", "__metadata__"),
    ],
)
def test_each_bound_is_refused_with_its_reason(header, data, reason):
    assert reason in _refused(hostile.safetensors_with_header(header, data))


def test_a_length_prefix_beyond_the_file_and_a_non_json_header_are_refused():
    assert "shorter than the 8-byte" in _refused(b"\x01\x00")
    assert "but the file has" in _refused((1000).to_bytes(8, "little") + b"{}")
    assert "not UTF-8 JSON" in _refused((3).to_bytes(8, "little") + b"{\xff}")


def test_real_adapters_pass_and_keep_their_tensor_count():
    weights = packages.lora_files(layers=6)["adapter_model.safetensors"]
    assert check_safetensors_header(weights) == 24  # 6 layers x (query, value) x (lora_A, lora_B)
