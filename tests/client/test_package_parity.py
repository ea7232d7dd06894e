"""The client's `package check` must refuse exactly what the server's upload refuses, with the same error.

Both wrap the one implementation in ``specs.packaging``; this guards the two translations
of its ``InvalidPackageError`` (code, message and details must arrive unchanged).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from lwm_client.errors import PackageError
from lwm_client.packages import build_package, csv_sample, package_check

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.packages import package_inspect
from tests.support import hostile_packages as hostile
from tests.support import packages

TEXTS = ["one sentence", "another sentence"]
EXTRA_FAILURES = {
    "manifest-missing": lambda: packages.zip_bytes({"model.pt": packages.linear_model_bytes(3, 2)}),
    "manifest-yaml": lambda: packages.zip_bytes({"learnware.yaml": "name: [unclosed", "model.pt": b""}),
    "bad-license": lambda: packages.build_table_model_package(manifest={"license": "WTFPL-9"}),
    "bad-name": lambda: packages.build_table_model_package(manifest={"name": "../evil"}),
    "adapter-on-table": lambda: packages.build_table_model_package(
        manifest={"kind": "adapter", "base_model": "x"}
    ),
    "no-model": lambda: packages.zip_bytes(
        {
            "learnware.yaml": packages.manifest_yaml(
                name="n",
                description="d",
                kind="model",
                modality="table",
                task="regression",
                input={"columns": ["a"]},
                output={"dim": 1},
                license="MIT",
            ),
            "rkme.json": "{}",
        }
    ),
    "both-spec-and-sample": lambda: packages.build_table_model_package(
        extra={"rkme.json": "{}"}, sample="csv"
    ),
    "text-sample-on-table": lambda: packages.build_table_model_package(
        extra={"sample.jsonl": "{}"}, rkme=False
    ),
    "no-spec": lambda: packages.build_table_model_package(rkme=False),
    "export-named-pt": lambda: packages.build_table_model_package(model=packages.export_model_bytes(3, 2)),
    "export-pt2": lambda: hostile.table_package(
        packages.export_model_bytes(3, 2), name="e", file="model.pt2"
    ),
    "load-time-code": lambda: hostile.table_package(
        hostile.scripted(hostile.SetstateModel("/nonexistent/x")), name="s"
    ),
    "adapter-header": lambda: hostile.adapter_package_with_weights(
        hostile.many_tensors_safetensors(5000), name="h"
    ),
    "pickle-suffix": lambda: packages.build_table_model_package(extra={"weights.pkl": b"x"}),
    "nested-zip": lambda: packages.build_table_model_package(extra={"more.zip": b"PK\x03\x04"}),
    "bad-adapter-rank": lambda: packages.zip_bytes(
        {
            **{
                "learnware.yaml": packages.manifest_yaml(
                    name="a",
                    description="d",
                    kind="adapter",
                    modality="text",
                    task="embedding",
                    input={},
                    output={"dim": 384},
                    license="MIT",
                    base_model="all-minilm-l6-v2",
                ),
                "rkme.json": "{}",
            },
            **packages.lora_files(),
            "adapter_config.json": json.dumps({"peft_type": "LORA", "r": 0}),
        }
    ),
}
HAPPY = {
    "table-rkme": lambda: packages.build_table_model_package(),
    "table-csv": lambda: packages.build_table_model_package(sample="csv"),
    "table-npz": lambda: packages.build_table_model_package(sample="npz"),
    "image-png": lambda: packages.build_image_model_package(sample="png"),
    "text-jsonl": lambda: packages.build_text_model_package(sample=TEXTS),
    "lora": lambda: packages.build_lora_adapter_package(),
}


def _error(check, error_type: type[Exception], data: bytes) -> tuple[str, str, dict] | None:
    try:
        check(data)
    except error_type as exc:
        return exc.code, exc.message, exc.details
    return None


def server_error(data: bytes) -> tuple[str, str, dict] | None:
    return _error(package_inspect, ValidationFailed, data)


def client_error(data: bytes) -> tuple[str, str, dict] | None:
    return _error(package_check, PackageError, data)


def client_code(data: bytes) -> str | None:
    error = client_error(data)
    return None if error is None else error[0]


# "unknown-base" is decided against the server's registry of base models, not by the package alone.
CASES = {
    **{k: v[0] for k, v in packages.FAILURES.items() if k in packages.SYNC_FAILURES - {"unknown-base"}},
    **EXTRA_FAILURES,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_client_check_refuses_with_the_servers_code_message_and_details(case):
    data = CASES[case]()
    expected = server_error(data)
    assert expected is not None, f"{case} should be refused by the server"
    assert expected[0].startswith("upload:user:")
    assert client_error(data) == expected


@pytest.mark.parametrize("case", sorted(HAPPY))
def test_client_check_accepts_what_the_server_accepts_with_the_same_manifest(case):
    data = HAPPY[case]()
    server = package_inspect(data)
    client = package_check(data)
    assert client.manifest == server.manifest
    assert (client.artifact_format, client.sample_kind, sorted(client.sample)) == (
        str(server.artifact_format),
        server.sample_kind,
        sorted(server.sample),
    )


def test_built_package_passes_both_checks_and_is_byte_identical_when_rebuilt():
    X = packages.table_data(["a", "b"], 20)
    manifest = {
        "name": "built",
        "description": "d",
        "kind": "model",
        "modality": "table",
        "task": "classification",
        "input": {"columns": ["a", "b"]},
        "output": {"classes": ["no", "yes"]},
        "license": "MIT",
    }
    model = packages.linear_model_bytes(2, 2)
    first = build_package(manifest=manifest, model=model, sample={"sample.csv": csv_sample(["a", "b"], X)})
    again = build_package(manifest=manifest, model=model, sample={"sample.csv": csv_sample(["a", "b"], X)})
    assert first == again
    assert package_check(first).sample_kind == package_inspect(first).sample_kind == "csv"
    rows = package_check(first).sample["sample.csv"].decode().splitlines()[1:]
    np.testing.assert_allclose(np.array([[float(v) for v in r.split(",")] for r in rows]), X)


def test_deep_check_runs_the_model_and_catches_a_wrong_output_width():
    assert package_check(packages.build_table_model_package(), deep=True).manifest["output"]["dim"] == 2
    wrong = packages.build_table_model_package(model=packages.linear_model_bytes(3, 5))
    assert client_code(wrong) is None  # the upload check cannot see it ...
    with pytest.raises(PackageError) as err:  # ... the deep check can, with the pipeline's code
        package_check(wrong, deep=True)
    assert err.value.code == packages.FAILURES["output-shape"][1]
