"""The manifest ``learnware.yaml``: parse it safely and check every field at once.

All problems are collected, so the developer sees every bad field in one answer
(``details`` maps each field path to its reason). See ``docs/package-format.md``.
PyYAML (a dependency of the client and the server) is imported only by
:func:`parse_manifest`; :func:`check_manifest` works on an already parsed mapping.
"""

from __future__ import annotations

import re
from typing import Any

from specs.image_spaces import IMAGE_SPACES
from specs.packaging.choices import KINDS, MODALITIES, POOLINGS, TASKS, VISIBILITIES
from specs.packaging.errors import InvalidPackageError

MANIFEST_NAME = "learnware.yaml"
# SPDX identifiers accepted for a learnware; anything else is refused by name.
KNOWN_LICENSES = frozenset(
    [
        "MIT",
        "Apache-2.0",
        "BSD-2-Clause",
        "BSD-3-Clause",
        "ISC",
        "MPL-2.0",
        "GPL-2.0-only",
        "GPL-2.0-or-later",
        "GPL-3.0-only",
        "GPL-3.0-or-later",
        "LGPL-2.1-only",
        "LGPL-3.0-only",
        "AGPL-3.0-only",
        "CC0-1.0",
        "CC-BY-4.0",
        "CC-BY-SA-4.0",
        "CC-BY-NC-4.0",
        "Unlicense",
        "BSL-1.0",
        "EPL-2.0",
        "LicenseRef-Proprietary",
    ]
)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,119}$")
MAX_CLASSES = 10_000
MAX_COLUMNS = 4_096


def _text(
    doc: dict[str, Any], key: str, errors: dict[str, str], *, required: bool = True, max_len: int = 20_000
) -> str:
    value = doc.get(key)
    if value is None:
        if required:
            errors[key] = "is required"
        return ""
    if not isinstance(value, str) or len(value) > max_len:
        errors[key] = f"must be a string of at most {max_len} characters"
        return ""
    return value


def _choice(
    doc: dict[str, Any],
    key: str,
    choices: tuple[str, ...],
    errors: dict[str, str],
    default: str | None = None,
) -> str:
    value = doc.get(key, default)
    if value is None:
        errors[key] = f"is required (one of {', '.join(choices)})"
        return ""
    if value not in choices:
        errors[key] = f"must be one of {', '.join(choices)}, got {value!r}"
        return ""
    return str(value)


def _str_list(
    value: Any, key: str, errors: dict[str, str], *, min_len: int, max_len: int, unique: bool
) -> list[str]:
    if not isinstance(value, list) or not min_len <= len(value) <= max_len:
        errors[key] = f"must be a list of {min_len} to {max_len} strings"
        return []
    if not all(isinstance(v, str) and 0 < len(v) <= 200 for v in value):
        errors[key] = "every item must be a non-empty string of at most 200 characters" + _unquoted_hint(
            value
        )
        return []
    if unique and len(set(value)) != len(value):
        errors[key] = "items must be unique"
        return []
    return list(value)


def _columns(value: Any, errors: dict[str, str]) -> list[Any]:
    """``input.columns``: names, or ``{name, description, unit}`` mappings (kept as given; the
    descriptions feed the suggested column matches). Names must be unique."""
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        bad = [
            i
            for i, v in enumerate(value)
            if not (
                isinstance(v, str)
                or (
                    isinstance(v, dict)
                    and isinstance(v.get("name"), str)
                    and set(v) <= {"name", "description", "unit"}
                    and all(isinstance(x, str) for x in v.values())
                )
            )
        ]
        if bad:
            errors["input.columns"] = (
                f"items {bad[:5]} must be a name or a mapping {{name, description, unit}} of strings"
            )
            return []
        names = [v["name"] if isinstance(v, dict) else v for v in value]
        if _str_list(names, "input.columns", errors, min_len=1, max_len=MAX_COLUMNS, unique=True):
            return [dict(v) if isinstance(v, dict) else v for v in value]
        return []
    return _str_list(value, "input.columns", errors, min_len=1, max_len=MAX_COLUMNS, unique=True)


def _unquoted_hint(value: list[Any]) -> str:
    """Why an item a person typed as text is not a string: YAML turned it into a boolean or a number."""
    booleans = [i for i, v in enumerate(value) if isinstance(v, bool)]
    if booleans:
        return (
            f"; items {booleans} are YAML booleans ({', '.join(str(value[i]).lower() for i in booleans)}): "
            "YAML reads "
            'unquoted yes/no/on/off/true/false as booleans, so quote them, e.g. ["no", "yes"]'
        )
    numbers = [i for i, v in enumerate(value) if isinstance(v, (int, float))]
    if numbers:
        return f'; items {numbers} are YAML numbers: quote them, e.g. ["0", "1"]'
    return ""


def _positive_int(value: Any, key: str, errors: dict[str, str], limit: int = 100_000) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= limit:
        errors[key] = f"must be an integer in [1, {limit}], got {value!r}"
        return 0
    return value


def _input(doc: dict[str, Any], modality: str, errors: dict[str, str]) -> dict[str, Any]:
    spec = doc.get("input")
    if not isinstance(spec, dict):
        errors["input"] = "is required: a mapping (table: columns; image: shape; text: {})"
        return {}
    if modality == "table":
        return {"columns": _columns(spec.get("columns"), errors)}
    if modality == "image":
        shape = spec.get("shape")
        if not (isinstance(shape, list) and len(shape) == 3 and shape[0] in (1, 3)):
            errors["input.shape"] = "must be [channels (1 or 3), height, width]"
            return {}
        out: dict[str, Any] = {
            "shape": [_positive_int(s, f"input.shape[{i}]", errors, 1024) for i, s in enumerate(shape)]
        }
        space = spec.get("space")
        if space is not None:  # optional: absent means the default image space (specs.image_spaces)
            if space not in IMAGE_SPACES:
                errors["input.space"] = f"must be one of {sorted(IMAGE_SPACES)}, got {space!r}"
            else:
                out["space"] = space
        return out
    return {}


def _output(doc: dict[str, Any], task: str, errors: dict[str, str]) -> dict[str, Any]:
    spec = doc.get("output")
    if not isinstance(spec, dict):
        errors["output"] = "is required: classes (classification) or dim (regression, embedding)"
        return {}
    if task == "classification":
        classes = _str_list(
            spec.get("classes"), "output.classes", errors, min_len=2, max_len=MAX_CLASSES, unique=True
        )
        return {"classes": classes, "dim": len(classes)}
    return {"dim": _positive_int(spec.get("dim"), "output.dim", errors)}


def parse_manifest(raw: bytes) -> dict[str, Any]:
    """Parse ``learnware.yaml`` (safe YAML only) and check it; see :func:`check_manifest`.

    Raises
    ------
    InvalidPackageError
        ``upload:user:manifest-invalid`` (not UTF-8 YAML / not a mapping) or
        ``upload:user:manifest-field`` with ``details`` = {field: reason}.
    """
    import yaml  # only here: the rest of specs needs no YAML

    try:
        doc = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidPackageError(
            f"{MANIFEST_NAME} is not valid UTF-8 YAML: {exc}", code="upload:user:manifest-invalid"
        ) from None
    return check_manifest(doc)


def check_manifest(doc: Any) -> dict[str, Any]:
    """Check a parsed manifest; return it normalised (defaults filled, ``output.dim`` set).

    Raises
    ------
    InvalidPackageError
        ``upload:user:manifest-invalid`` (not a mapping) or ``upload:user:manifest-field``
        with ``details`` = {field: reason} listing every bad field at once.
    """
    if not isinstance(doc, dict):
        raise InvalidPackageError(
            f"{MANIFEST_NAME} must be a mapping of fields", code="upload:user:manifest-invalid"
        )
    errors: dict[str, str] = {}
    name = _text(doc, "name", errors, max_len=120)
    if name and not NAME_RE.match(name):
        errors["name"] = "must start with a letter or digit and use letters, digits, space, '.', '_' or '-'"
    manifest: dict[str, Any] = {
        "name": name,
        "description": _text(doc, "description", errors),
        "kind": _choice(doc, "kind", KINDS, errors),
        "modality": _choice(doc, "modality", MODALITIES, errors),
        "task": _choice(doc, "task", TASKS, errors),
        "license": _text(doc, "license", errors, max_len=64),
        "tags": _str_list(doc.get("tags", []), "tags", errors, min_len=0, max_len=30, unique=False),
        "visibility": _choice(doc, "visibility", VISIBILITIES, errors, default="public"),
        "organization": _text(doc, "organization", errors, required=False, max_len=100),
        "version": _text(doc, "version", errors, required=False, max_len=40),
        "base_model": _text(doc, "base_model", errors, required=doc.get("kind") == "adapter", max_len=120),
    }
    if manifest["license"] and manifest["license"] not in KNOWN_LICENSES:
        errors["license"] = f"{manifest['license']!r} is not a known SPDX identifier (e.g. MIT, Apache-2.0)"
    if manifest["kind"] == "adapter" and (manifest["modality"], manifest["task"]) != ("text", "embedding"):
        errors["kind"] = "adapters are text embedding modules: use modality: text and task: embedding"
    if manifest["base_model"] and manifest["kind"] == "model" and manifest["modality"] != "text":
        # A text model's input is a base model's embedding; table and image models take raw data.
        errors["base_model"] = "only adapters and text models name a base model (their encoder space)"
    if manifest["kind"] == "base_model":
        if manifest["modality"] not in ("text", "image") or manifest["task"] != "embedding":
            errors["kind"] = (
                "base models are text or image encoders: use modality: text or image and task: embedding"
            )
        manifest["pooling"] = _choice(doc, "pooling", POOLINGS, errors)
    if manifest["visibility"] == "organization" and not manifest["organization"]:
        errors["organization"] = "is required when visibility is organization"
    if manifest["modality"]:
        manifest["input"] = _input(doc, manifest["modality"], errors)
    if manifest["task"]:
        manifest["output"] = _output(doc, manifest["task"], errors)
    if errors:
        raise InvalidPackageError(
            f"{MANIFEST_NAME}: " + "; ".join(f"field '{k}' {v}" for k, v in errors.items()),
            code="upload:user:manifest-field",
            details=errors,
        )
    return manifest
