"""A *published* text model on a published base model, run on raw texts here.

Such a model's manifest names its base by key only (``base_model: <key>``; its inputs are that base's
space's unit vectors, ``docs/package-format.md``). ``Client.download`` therefore also fetches the base's
newest published package into ``base_models/<sha256>.zip`` (verified against its sha256, as a
submission's referenced base is: :mod:`lwm_client.base_heads`) and records which one under
``base_models/by-key/<key>.json`` (learnware id, version, package sha256, declared pooling, width). The
``Predictor`` then embeds raw texts with that base as the market's sandbox embeds them
(``specs.adapter_bases.pooled_embeddings``: the declared pooling of the last hidden state,
L2-normalised), the folder checked by ``specs.base_models`` (safetensors only, no remote code). Without
that record (the model was not downloaded by this client) or ``base=`` (the base's package zip), raw
texts are refused by name (``predict:user:base-embeddings``); the base's embeddings are taken as they are.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from lwm_client.base_heads import base_cache_dir, open_base_folder
from lwm_client.errors import Forbidden, NotFound
from lwm_client.isolated import file_sha256
from specs.packaging.choices import MINILM_NAMES

if TYPE_CHECKING:
    from lwm_client.client import Client
    from lwm_client.models import Download


def model_base_key(manifest: dict[str, Any]) -> str | None:
    """The published base a text model names (None: none, or the MiniLM, whose local copy is used)."""
    key = str(manifest.get("base_model") or "")
    text_model = manifest.get("kind") == "model" and manifest.get("modality") == "text"
    return key if text_model and key and key not in MINILM_NAMES else None


def _record(key: str) -> Path:
    return base_cache_dir() / "by-key" / f"{key}.json"


def recorded_base(key: str) -> dict[str, Any] | None:
    """The base reference ``Client.download`` recorded for ``key`` (None: none here)."""
    path = _record(key)
    if not path.is_file():
        return None
    ref: dict[str, Any] = json.loads(path.read_text())
    return ref


def fetch_model_base(client: Client, download: Download) -> Download:
    """After downloading a package: for a text model on a published base, fetch that base's newest
    published package (once, verified against its sha256) and record it for :func:`recorded_base`."""
    from lwm_client.base_spaces import base_learnware

    try:
        with zipfile.ZipFile(download.path) as zf:
            manifest = yaml.safe_load(zf.read("learnware.yaml")) if "learnware.yaml" in zf.namelist() else {}
    except (zipfile.BadZipFile, yaml.YAMLError):  # not a package to run: loading it says so by name
        return download
    key = model_base_key(manifest if isinstance(manifest, dict) else {})
    if key is None:
        return download
    try:
        lw = base_learnware(client, key)
        version = client.version(lw.id, int(lw.latest_version or 0))
    except (NotFound, Forbidden):  # the model is downloaded; raw texts are then refused by name
        return download
    sha = version.artifact_sha256
    target = base_cache_dir() / f"{sha}.zip"
    if not (target.is_file() and file_sha256(target) == sha):
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download(lw.id, version.number, dest=target)  # verified against ``sha`` by the client
    ref = {
        "key": key,
        "name": lw.name,
        "learnware_id": lw.id,
        "version": version.number,
        "package_sha256": sha,
        "pooling": str(version.manifest.get("pooling") or "mean"),
        "dim": int((version.manifest.get("output") or {}).get("dim") or 0),
    }
    _record(key).parent.mkdir(parents=True, exist_ok=True)
    _record(key).write_text(json.dumps(ref, sort_keys=True))
    return download


def _pooling(ref: dict[str, Any] | None, base: str | Path | None) -> str | None:
    """The base's declared pooling: the record's, else the given base package's manifest."""
    if ref is not None:
        return str(ref.get("pooling") or "mean")
    if base is not None and Path(base).is_file():
        with zipfile.ZipFile(io.BytesIO(Path(base).read_bytes())) as zf:
            if "learnware.yaml" in zf.namelist():
                return str(yaml.safe_load(zf.read("learnware.yaml")).get("pooling") or "mean")
    return None


class ModelBase:
    """A text model's base, loaded once: texts in, the base space's unit rows out."""

    def __init__(self, key: str, base: str | Path | None) -> None:
        self.key, self.ref, self.given = key, recorded_base(key), base
        self.pooling = _pooling(self.ref, base)
        self._encoder: Any = None

    @property
    def available(self) -> bool:
        return self.pooling is not None

    def embed(self, texts: list[str]) -> np.ndarray:
        from specs.adapter_bases import pooled_embeddings
        from specs.base_models import inspect_model_folder, load_text_encoder

        if self._encoder is None:
            ref = self.ref or {"key": self.key}  # without a record: ``base=`` (its sha256 is not known here)
            self._encoder = load_text_encoder(inspect_model_folder(open_base_folder(ref, self.given)))
        return pooled_embeddings(self._encoder, texts, pooling=str(self.pooling))
