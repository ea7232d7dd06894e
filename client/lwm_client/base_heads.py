"""The base model a package refers to: fetched, verified, found and opened here.

A model-selection submission delivers a head on a published base model (``specs.base_model_head``:
``base_head.json``'s ``base_model``), an adapter submission in a published base's space a LoRA or a
router on it (``recipe.json``'s ``base``); the package holds a reference to the base (learnware id,
version, package sha256; an adapter's also the folder digest), not its weights.
``Client.download_submission`` fetches the referenced base package into ``base_models/`` next to
the config file (:func:`fetch_referenced_base`, verified against the reference's sha256), and
``Client.load`` finds it there by sha256, or takes ``base=`` (the base's package zip, checked against
the same sha256, or a local Hugging Face folder, checked by its weights' sha256). The market's
registered MiniLM has no package: the local offline copy is used. The folder is then opened by
``specs.base_models`` (safetensors only, no remote code, ``local_files_only``).
"""

from __future__ import annotations

import atexit
import io
import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lwm_client.config import config_path
from lwm_client.errors import Forbidden, IntegrityError, LwmError, NotFound, UnsafeArtifactError
from lwm_client.isolated import file_sha256
from specs.base_model_head import HEAD_RECIPE
from specs.recipe import RecipeShaError, checked_sha256

if TYPE_CHECKING:
    from lwm_client.client import Client
    from lwm_client.models import Download


class BaseModelMissing(LwmError):
    """The base model a package refers to is neither in the local cache nor given (``base=``), or
    the market does not let this user download it."""


def base_cache_dir() -> Path:
    return config_path().parent / "base_models"


def package_sha(ref: dict[str, Any]) -> str | None:
    """A base reference's ``package_sha256`` (None: a registered base), refused by name unless it is 64
    lowercase hex digits: it comes from a package's recipe and names files here (``<sha>.zip``), so a
    crafted one such as ``../../x`` must never reach a path."""
    try:
        return checked_sha256(ref)
    except RecipeShaError as exc:
        raise UnsafeArtifactError(str(exc), code=exc.code) from None


def head_recipe(package: str | Path) -> dict[str, Any] | None:
    """The package's ``base_head.json`` (plain JSON), or None for any other package."""
    with zipfile.ZipFile(package) as zf:
        if HEAD_RECIPE not in zf.namelist():
            return None
        recipe: dict[str, Any] = json.loads(zf.read(HEAD_RECIPE))
        return recipe


def base_reference(package: str | Path) -> dict[str, Any] | None:
    """The published base a package refers to (``learnware_id``, ``version``, ``package_sha256``, ...):
    a head's ``base_model``, or an adapter recipe's ``base``; None when it names none (the MiniLM)."""
    head = head_recipe(package)
    if head is not None:
        return dict(head.get("base_model") or {}) or None
    with zipfile.ZipFile(package) as zf:
        if "recipe.json" not in zf.namelist():
            return None
        ref = json.loads(zf.read("recipe.json")).get("base")
    return dict(ref) if isinstance(ref, dict) and package_sha(ref) else None


def member_base_references(package: str | Path) -> list[dict[str, Any]]:
    """The base versions an assembly recipe's members run on besides its ``base`` (a member's own
    ``base``: a text head pinned to another version; ``specs.recipe.member_base``), one per package."""
    with zipfile.ZipFile(package) as zf:
        if "recipe.json" not in zf.namelist():
            return []
        recipe = json.loads(zf.read("recipe.json"))
    main = (recipe.get("base") or {}).get("package_sha256") if isinstance(recipe, dict) else None
    refs: dict[str, dict[str, Any]] = {}
    for entry in recipe.get("members") or [] if isinstance(recipe, dict) else []:
        ref = entry.get("base") if isinstance(entry, dict) else None
        if isinstance(ref, dict) and package_sha(ref) and ref["package_sha256"] != main:
            refs.setdefault(str(ref["package_sha256"]), dict(ref))
    return list(refs.values())


def _mismatch(what: str, got: str, expected: str) -> IntegrityError:
    return IntegrityError(
        f"{what}: sha256 {got} is not the base package the head was trained on ({expected})",
        code="predict:user:base-head-base-checksum",
        details={"got": got, "expected": expected},
    )


def fetch_referenced_base(client: Client, download: Download) -> Download:
    """After downloading a submission's package: fetch the base package it refers to, and every base
    version its recipe's members run on (:func:`member_base_references`), each once, sha256-checked.

    Raises
    ------
    BaseModelMissing
        ``download:user:base-not-visible``: the market answers 404/403 for the base's version.
    IntegrityError
        The base package's sha256 is not the one the head was trained on (nothing is kept).
    """
    for ref in [base_reference(download.path) or {}, *member_base_references(download.path)]:
        fetch_base_package(client, ref)
    return download


def fetch_base_package(client: Client, ref: dict[str, Any]) -> None:
    """Fetch the base version ``ref`` names (``learnware_id``, ``version``, ``package_sha256``) into the
    cache, once, verified against its sha256 (errors: :func:`fetch_referenced_base`'s)."""
    sha = package_sha(ref)
    if not sha:  # not a head package, or a registered base (the local copy is used)
        return
    target = base_cache_dir() / f"{sha}.zip"
    if target.is_file() and file_sha256(target) == sha:
        return
    try:
        got = client.download(int(ref["learnware_id"]), int(ref["version"]), dest=target)
    except (NotFound, Forbidden) as exc:
        raise BaseModelMissing(
            f"the package's base model {ref.get('name')} v{ref.get('version')} (learnware "
            f"{ref.get('learnware_id')}) cannot be downloaded: {exc.message}",
            code="download:user:base-not-visible",
            details={"learnware_id": ref.get("learnware_id"), "version": ref.get("version")},
        ) from None
    if got.sha256 != sha:
        target.unlink(missing_ok=True)
        raise _mismatch(f"learnware {ref['learnware_id']} v{ref['version']}", got.sha256, sha)


def base_source(ref: dict[str, Any], base: str | Path | None) -> Path | None:
    """The base package zip or folder to run the package on (``ref``: :func:`base_reference`); None: the
    registered MiniLM's local copy.

    Raises
    ------
    BaseModelMissing
        ``predict:user:base-missing``: no ``base`` given and none fetched.
    IntegrityError
        A given zip is not the referenced package (sha256).
    """
    sha = package_sha(ref)
    if base is not None:
        path = Path(base)
        if path.is_file() and sha and file_sha256(path) != sha:
            raise _mismatch(str(path), file_sha256(path), sha)
        if not path.exists():
            raise BaseModelMissing(f"{path} does not exist", code="predict:user:base-missing")
        return path
    if not sha:
        return None
    cached = base_cache_dir() / f"{sha}.zip"
    if not cached.is_file():
        raise BaseModelMissing(
            f"this package runs on base model {ref.get('name')} v{ref.get('version')} (learnware "
            f"{ref.get('learnware_id')}), which is not here: download the package with "
            "Client.download_submission (it fetches the base), or pass base= (its package zip or folder)",
            code="predict:user:base-missing",
            details={"learnware_id": ref.get("learnware_id"), "version": ref.get("version")},
        )
    return cached


def open_base_folder(ref: dict[str, Any], base: str | Path | None) -> Path:
    """A folder holding the base model's Hugging Face files (a zip is unpacked to a private
    temporary folder, removed when no longer used)."""
    source = base_source(ref, base)
    if source is None:
        from lwm_client.data import minilm_path

        return Path(minilm_path())
    if source.is_dir():
        return source
    sha = package_sha(ref)
    if sha and file_sha256(source) != sha:  # the cache may have been altered since the download
        raise _mismatch(str(source), file_sha256(source), sha)
    return unpack_base_package(source)


def unpack_base_package(source: Path) -> Path:
    """A base model's package zip unpacked (its ``model/`` files, checked by the upload's own rules)
    into a private temporary folder, removed at exit."""
    from specs.packaging.base_model_package import base_model_files
    from specs.packaging.errors import InvalidPackageError

    try:
        with zipfile.ZipFile(io.BytesIO(source.read_bytes())) as zf:
            files = base_model_files({i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()})
    except (InvalidPackageError, zipfile.BadZipFile) as exc:
        raise UnsafeArtifactError(
            f"{source} is not a base-model package: {exc}", code="predict:user:base-head-base-package"
        ) from None
    folder = Path(tempfile.mkdtemp(prefix="lwm-base-"))
    for name, data in files.items():  # base_model_files: flat names, no sub-folders
        (folder / name).write_bytes(data)
    atexit.register(shutil.rmtree, str(folder), True)
    return folder
