"""specs.packaging: the Django-free package checks shared by the server and the client."""

from __future__ import annotations

import io
import stat
import subprocess
import sys
import zipfile

import pytest
import yaml

from specs.exceptions import SpecError
from specs.packaging import (
    ARTIFACT_FORMATS,
    KINDS,
    MODALITIES,
    TASKS,
    VISIBILITIES,
    InvalidPackageError,
    ZipLimits,
    check_manifest,
    package_inspect,
    parse_manifest,
    read_zip,
)

MANIFEST = {
    "name": "m",
    "description": "d",
    "kind": "model",
    "modality": "table",
    "task": "regression",
    "input": {"columns": ["a", "b"]},
    "output": {"dim": 1},
    "license": "MIT",
}


def _zip(files: dict[str, bytes], *, link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = stat.S_IFLNK if name == link else stat.S_IFREG
            info.external_attr = (mode | 0o644) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def _code(call, *args, **kwargs) -> str:
    with pytest.raises(InvalidPackageError) as err:
        call(*args, **kwargs)
    assert isinstance(err.value, SpecError)
    return err.value.code


def test_it_imports_without_django_or_the_marketplace():
    # A fresh interpreter: the test process itself has Django loaded by pytest-django.
    probe = (
        "import sys, specs.packaging; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'marketplace', 'workers', "
        "'lwm_client', 'rest_framework'}); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_choices_list_the_same_values_as_the_django_text_choices():
    from marketplace.learnwares import choices

    assert tuple(choices.Kind.values) == KINDS
    assert tuple(choices.Modality.values) == MODALITIES
    assert tuple(choices.Task.values) == TASKS
    assert tuple(choices.Visibility.values) == VISIBILITIES
    assert tuple(choices.ArtifactFormat.values) == ARTIFACT_FORMATS


@pytest.mark.parametrize(
    ("files", "link", "code"),
    [
        ({"../evil.txt": b"x"}, None, "upload:user:path-traversal"),
        ({"/etc/passwd": b"x"}, None, "upload:user:absolute-path"),
        ({"link": b"target"}, "link", "upload:user:symlink"),
        ({"inner.zip": b"x"}, None, "upload:user:nested-archive"),
        ({"hidden.dat": b"\x1f\x8b rest"}, None, "upload:user:nested-archive"),
        ({"big.txt": b"0" * (2 * 2**20)}, None, "upload:user:zip-bomb"),
    ],
)
def test_read_zip_refuses_unsafe_entries_naming_the_file(files, link, code):
    data = _zip(files, link=link)
    with pytest.raises(InvalidPackageError) as err:
        read_zip(data)
    assert err.value.code == code
    assert err.value.details == {"file": next(iter(files))}


def test_read_zip_enforces_size_and_count_limits():
    data = _zip({f"f{i}.txt": b"x" for i in range(3)})
    assert _code(read_zip, data, ZipLimits(max_files=2)) == "upload:user:too-many-files"
    assert _code(read_zip, data, ZipLimits(max_bytes=len(data) - 1)) == "upload:user:too-large"
    assert _code(read_zip, b"not a zip") == "upload:user:corrupt-zip"
    assert read_zip(data, ZipLimits(max_files=3)) == {f"f{i}.txt": b"x" for i in range(3)}


def test_manifest_lists_every_bad_field_at_once():
    bad = {**MANIFEST, "kind": "widget", "license": "WTFPL-9", "visibility": "organization"}
    with pytest.raises(InvalidPackageError) as err:
        check_manifest(bad)
    assert err.value.code == "upload:user:manifest-field"
    assert set(err.value.details) == {"kind", "license", "organization"}
    assert "must be one of model, adapter, base_model, got 'widget'" in err.value.details["kind"]


def test_only_text_models_and_adapters_name_a_base_model():
    text = {**MANIFEST, "modality": "text", "input": {}, "base_model": "alice-tiny-bert"}
    assert check_manifest(text)["base_model"] == "alice-tiny-bert"
    with pytest.raises(InvalidPackageError) as err:
        check_manifest({**MANIFEST, "base_model": "alice-tiny-bert"})  # a table model
    assert set(err.value.details) == {"base_model"}, err.value.details


def test_manifest_is_normalised_and_yaml_errors_have_their_own_code():
    parsed = parse_manifest(
        yaml.safe_dump({**MANIFEST, "task": "classification", "output": {"classes": ["x", "y"]}}).encode()
    )
    assert parsed["visibility"] == "public" and parsed["output"] == {"classes": ["x", "y"], "dim": 2}
    assert _code(parse_manifest, b"name: [unclosed") == "upload:user:manifest-invalid"
    assert _code(parse_manifest, b"- a list") == "upload:user:manifest-invalid"


def test_package_inspect_refuses_a_pickle_and_a_missing_manifest():
    assert (
        _code(package_inspect, _zip({"learnware.yaml": yaml.safe_dump(MANIFEST).encode(), "w.pkl": b"x"}))
        == "upload:user:pickle-artifact"
    )
    assert _code(package_inspect, _zip({"model.pt": b"x"})) == "upload:user:manifest-missing"
    legacy = _zip(
        {
            "learnware.yaml": yaml.safe_dump(MANIFEST).encode(),
            "model.pt": b"\x80\x02legacy",
            "rkme.json": b"{}",
        }
    )
    assert _code(package_inspect, legacy) == "upload:user:pickle-artifact"
