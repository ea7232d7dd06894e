"""Package checks that need no model loading: zip safety, manifest fields, artifact formats."""

from __future__ import annotations

import pytest

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.packages import package_inspect, package_without
from specs.packaging.zipsafe import ZipLimits
from tests.support import packages


@pytest.mark.parametrize("case", sorted(packages.SYNC_FAILURES - {"unknown-base"}))
def test_inspect_refuses_each_unsafe_or_malformed_package_with_its_code(case):
    build, code = packages.FAILURES[case]
    with pytest.raises(ValidationFailed) as caught:
        package_inspect(build())
    assert caught.value.code == code
    assert caught.value.message


def test_missing_manifest_fields_are_all_named_at_once():
    data = packages.build_table_model_package(
        manifest={"license": ..., "task": "guessing", "output": {"classes": ["only"]}}
    )
    with pytest.raises(ValidationFailed) as caught:
        package_inspect(data)
    assert set(caught.value.details) == {"license", "task"}
    assert "license" in caught.value.message


def test_an_unknown_licence_and_a_bad_column_list_are_refused_by_field():
    data = packages.build_table_model_package(
        manifest={"license": "WTFPL-9", "input": {"columns": ["a", "a"]}}
    )
    with pytest.raises(ValidationFailed) as caught:
        package_inspect(data)
    assert set(caught.value.details) == {"license", "input.columns"}


def test_a_package_may_hold_many_files_but_not_more_than_the_limit():
    data = packages.build_table_model_package(extra={f"docs/{i}.md": "x" for i in range(10)})
    assert package_inspect(data).manifest["name"] == "table-model"
    with pytest.raises(ValidationFailed) as caught:
        package_inspect(data, limits=ZipLimits(max_files=5))
    assert caught.value.code == "upload:user:too-many-files"


def test_a_nested_archive_is_refused_by_name_and_by_magic_bytes():
    for name in ("inner.zip", "data.bin.txt"):
        data = packages.build_table_model_package(extra={name: packages.zip_bytes({"a": b"b"})})
        with pytest.raises(ValidationFailed) as caught:
            package_inspect(data)
        assert caught.value.code == "upload:user:nested-archive" and caught.value.details["file"] == name


def test_a_zip_that_lies_about_sizes_still_hits_the_expansion_budget():
    data = packages.zip_bomb(4 * 2**20)
    with pytest.raises(ValidationFailed) as caught:
        package_inspect(data, limits=ZipLimits(max_total_uncompressed=2**20, max_ratio=1e9))
    assert caught.value.code == "upload:user:zip-bomb"


def test_torch_export_models_are_refused_by_name_and_adapters_are_recognised():
    export = packages.zip_bytes(
        {
            "learnware.yaml": packages.manifest_yaml(
                name="exported",
                description="",
                kind="model",
                modality="table",
                task="regression",
                input={"columns": ["a", "b", "c"]},
                output={"dim": 2},
                license="MIT",
            ),
            "model.pt2": packages.export_model_bytes(3, 2),
            "rkme.json": packages.rkme_json(packages.table_data("abc"), 1 / 6),
        }
    )
    with pytest.raises(ValidationFailed) as caught:
        package_inspect(export)
    assert (caught.value.code, caught.value.details["file"]) == ("upload:user:unsafe-format", "model.pt2")
    as_pt = packages.build_table_model_package(
        model=packages.export_model_bytes(3, 2)
    )  # the same archive named model.pt
    with pytest.raises(ValidationFailed) as caught:
        package_inspect(as_pt)
    assert caught.value.code == "upload:user:unsafe-format"
    adapter = package_inspect(packages.build_lora_adapter_package())
    assert adapter.artifact_format == "peft_lora" and set(adapter.artifact) == {
        "adapter_config.json",
        "adapter_model.safetensors",
    }


def test_a_sample_and_an_rkme_together_are_ambiguous_and_neither_is_missing_spec():
    both = packages.build_table_model_package(sample="csv", extra={"rkme.json": "{}"})
    with pytest.raises(ValidationFailed, match="not both"):
        package_inspect(both)
    neither = packages.build_table_model_package(rkme=False)
    with pytest.raises(ValidationFailed) as caught:
        package_inspect(neither)
    assert caught.value.code == "upload:user:spec-missing"


def test_stripping_the_sample_keeps_every_other_file_byte_identical():
    data = packages.build_table_model_package(sample="csv")
    stripped = package_without(data, {"sample.csv"})
    kept = package_inspect(stripped, require_spec=False)
    assert kept.sample_kind is None
    assert kept.artifact == package_inspect(data).artifact
    assert package_without(data, {"sample.csv"}) == stripped  # deterministic
