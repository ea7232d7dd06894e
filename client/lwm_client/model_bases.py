"""A *published* text model on a published base model, run on raw texts here.

Such a model's manifest names its base by key only (``base_model: <key>``; its inputs are that base's
space's unit vectors, ``docs/package-format.md``); the market pins each version, when it publishes, to
the base version it was checked against (the version's ``base_pin``: learnware id, version, package
sha256, folder digest, pooling, width — an adapter submission recipe's ``base``). ``Client.download``
therefore also fetches exactly that base version's package into ``base_models/<sha256>.zip`` (verified
against the pin's sha256, as a submission's referenced base is: :mod:`lwm_client.base_heads`; a pinned
version the market no longer shows is ``download:user:base-not-visible``) and records the pin under
``base_models/by-package/<model sha256>.json``. The ``Predictor`` then embeds raw texts with that base as
the market's sandbox embeds them (``specs.adapter_bases.pooled_embeddings``: the declared pooling of the
last hidden state, L2-normalised), the folder checked by ``specs.base_models`` (safetensors only, no
remote code) and its digest compared with the pin's (``predict:user:adapter-base-checksum``; a given
``base=`` zip is first checked against the pin's sha256).

A version published before pins existed (no ``base_pin``) keeps the earlier behaviour: the base's
*newest* published package, recorded under ``base_models/by-key/<key>.json``, without a digest to check.
Without either record (the model was not downloaded by this client) or ``base=`` (the base's package
zip), raw texts are refused by name (``predict:user:base-embeddings``); the base's embeddings are taken as
they are.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from lwm_client.base_heads import base_cache_dir, open_base_folder, package_sha
from lwm_client.errors import Forbidden, NotFound, UnsafeArtifactError
from lwm_client.isolated import file_sha256
from specs.packaging.choices import MINILM_NAMES

if TYPE_CHECKING:
    from lwm_client.client import Client
    from lwm_client.models import Download


BASE_KEY = re.compile(r"[-a-zA-Z0-9_]{1,120}")  # the market's base keys are slugs (``BaseModel.key``)


def model_base_key(manifest: dict[str, Any]) -> str | None:
    """The published base a text model names (None: none, or the MiniLM, whose local copy is used).
    The key names a file here (``by-key/<key>.json``), so anything but a slug is refused by name: a
    crafted manifest's ``../../x`` must never reach a path."""
    key = str(manifest.get("base_model") or "")
    text_model = manifest.get("kind") == "model" and manifest.get("modality") == "text"
    if not (text_model and key and key not in MINILM_NAMES):
        return None
    if not BASE_KEY.fullmatch(key):
        raise UnsafeArtifactError(
            f"the package's base_model {key[:80]!r} is not a base model key (letters, digits, '-', '_')",
            code="predict:user:base-key",
        )
    return key


def _record(key: str) -> Path:
    return base_cache_dir() / "by-key" / f"{key}.json"


def _pin_record(package_sha256: str) -> Path:
    return base_cache_dir() / "by-package" / f"{package_sha({'package_sha256': package_sha256})}.json"


def _read(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    ref: dict[str, Any] = json.loads(path.read_text())
    return ref


def recorded_base(key: str, package_sha256: str | None = None) -> dict[str, Any] | None:
    """The base reference ``Client.download`` recorded for the model package ``package_sha256`` (its
    pin), else for ``key`` (an unpinned model's newest base); None: none here."""
    pinned = _read(_pin_record(package_sha256)) if package_sha256 else None
    return pinned or _read(_record(key))


def _manifest(path: Path) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = yaml.safe_load(zf.read("learnware.yaml")) if "learnware.yaml" in zf.namelist() else {}
    except (zipfile.BadZipFile, yaml.YAMLError):  # not a package to run: loading it says so by name
        return {}
    return manifest if isinstance(manifest, dict) else {}


def fetch_model_base(client: Client, download: Download, pin: dict[str, Any] | None = None) -> Download:
    """After downloading a package: for a text model on a published base, fetch the base version it is
    pinned to (``pin``: the version's ``base_pin``), once, verified against its sha256, and record the pin
    for :func:`recorded_base`; an unpinned (older) version gets the base's newest published package.

    Raises
    ------
    BaseModelMissing
        ``download:user:base-not-visible``: the market answers 404/403 for the pinned base version.
    IntegrityError
        The pinned base's package is not the pin's sha256 (nothing is kept).
    """
    key = model_base_key(_manifest(download.path))
    if key is None:
        return download
    if pin and pin.get("package_sha256"):
        from lwm_client.base_heads import fetch_base_package

        fetch_base_package(client, pin)
        _write(_pin_record(download.sha256), {**pin, "key": key})
        return download
    return _fetch_newest(client, key, download)


def _write(path: Path, ref: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ref, sort_keys=True))


def _fetch_newest(client: Client, key: str, download: Download) -> Download:
    """An unpinned model's base: the newest published version (the behaviour before pins)."""
    from lwm_client.base_spaces import base_learnware

    try:
        lw = base_learnware(client, key)
        version = client.version(lw.id, int(lw.latest_version or 0))
    except (NotFound, Forbidden):  # the model is downloaded; raw texts are then refused by name
        return download
    sha = package_sha({"package_sha256": version.artifact_sha256})
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
    _write(_record(key), ref)
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

    def __init__(self, key: str, base: str | Path | None, package_sha256: str | None = None) -> None:
        self.key, self.ref, self.given = key, recorded_base(key, package_sha256), base
        self.pooling = _pooling(self.ref, base)
        self._encoder: Any = None

    @property
    def available(self) -> bool:
        return self.pooling is not None

    @property
    def pinned(self) -> bool:
        """The market recorded the exact base version (its folder digest is then checked)."""
        return bool((self.ref or {}).get("folder_digest"))

    def embed(self, texts: list[str]) -> np.ndarray:
        from specs.adapter_bases import pooled_embeddings
        from specs.base_models import inspect_model_folder, load_text_encoder

        if self._encoder is None and self.pinned:
            from lwm_client.predict import adapter_base  # the same sha256 and digest checks

            self._encoder = adapter_base({"base": self.ref}, self.given)
        elif self._encoder is None:
            ref = self.ref or {"key": self.key}  # without a record: ``base=`` (its sha256 is not known here)
            self._encoder = load_text_encoder(inspect_model_folder(open_base_folder(ref, self.given)))
        return pooled_embeddings(self._encoder, texts, pooling=str(self.pooling))


def model_base_source(manifest: dict[str, Any], package_sha256: str, base: str | Path | None) -> Path | None:
    """The base package zip an isolated run of a text model on a published base takes (it travels
    read-only with the package): ``base`` (checked against the pin's sha256 when this client recorded
    one), else the recorded base's cached package; None: no published base, or none here (the isolated
    run then refuses raw texts by name)."""
    from lwm_client.base_heads import base_source

    key = model_base_key(manifest)
    if key is None:
        return None
    ref = recorded_base(key, package_sha256)
    if ref is None:
        return Path(base) if base is not None else None
    return base_source(ref, base)
