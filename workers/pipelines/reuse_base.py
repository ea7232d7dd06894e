"""Adapter submissions in a *published* base model's encoder space (``requirements.kind: "adapter"``,
``requirements.feature_space: "text-<key>"``): which base, and every layer's states on it.

The base is an upload, so nothing of it runs in the worker: the user's texts are embedded by the
base's own sandboxed ``hf_encoder`` call (``workers.pipelines.adapter_base.base_space_encode``), and
the ranking's and the assembly's layer states come from one sandboxed ``peft_lora`` call in layer
mode per batch of texts, with the base's folder staged under ``base/`` beside the LoRA, the merged
LoRA or the Arrow router (``assembly.lwa``; ``workers.sandbox.adapter_base_call``), checked there as
the adapter's own probe checks it. The run records the base's key, the published version it ran on,
that version's package sha256 and its folder digest (``specs.base_models.folder_digest``), so the
package names exactly the base a client must fetch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.models import BaseModel, LearnwareVersion
from marketplace.learnwares.services.adapter_bases import (
    base_model_version,
    is_base_space,
    published_base_for,
)
from marketplace.submissions.data import field_error
from specs.assembly import ArrowRouter, LoRAAdapter
from specs.base_models import files_digest
from specs.token_limit import MAX_TOKENS
from workers.pipelines.adapter_base import (
    BASE_PREFIX,
    encoder_rows,
    in_text_batches,
    unit_rows,
)
from workers.pipelines.embedding_cache import NO_ADAPTER, adapter_identity, cached_text_rows

ASSEMBLY_FILE = "assembly.lwa"  # workers.sandbox.adapter_base_call.ASSEMBLY_FILE


@dataclass(frozen=True)
class PublishedBase:
    """The published base model a run's adapters are applied to, at the version the run used."""

    key: str
    name: str
    learnware_id: int  # the base's learnware: a client downloads (learnware_id, version)
    version: int  # the published version's number
    version_id: int
    package_sha256: str
    folder_digest: str  # specs.base_models.folder_digest of its Hugging Face folder
    pooling: str
    dim: int
    files: dict[str, bytes] = field(repr=False, compare=False)  # the folder, name -> bytes

    def card(self) -> dict[str, Any]:
        """What the package's recipe records of the base (no file contents)."""
        return {k: v for k, v in asdict(self).items() if k != "files"}


def base_row(space: Any, user: Any) -> BaseModel | None:
    """The registry row of the published base whose encoder space ``space`` is (None: the MiniLM's
    text space).

    Raises
    ------
    ValidationFailed
        ``submission:user:unknown-base-model`` (on ``requirements.feature_space``): the base is hidden
        from ``user`` (named as unknown, so its existence does not leak), deleted, or has no published
        version any more.
    """
    if not is_base_space(space):
        return None
    try:
        row = published_base_for(wanted=str(space.encoder_id), user=user)
    except ValidationFailed:
        row = None
    if row is None:
        raise field_error(
            "requirements.feature_space",
            f"feature space {space.key!r}: its base model {space.encoder_id!r} is not a published base model "
            "you can use",
            "submission:user:unknown-base-model",
        )
    return row


def published_base(space: Any, user: Any, version_id: int | None = None) -> PublishedBase | None:
    """:func:`base_row` with the folder of one published version: the newest (the spec stage's choice),
    or ``version_id``, the one the spec stage chose (every later stage and the recipe use exactly it, so a
    version published during the run does not mix two bases).

    Raises
    ------
    ValidationFailed
        ``submission:user:unknown-base-model`` also when ``version_id`` is no longer published.
    """
    row = base_row(space, user)
    if row is None:
        return None
    if version_id is None:
        version = base_model_version(row)
    else:
        chosen = LearnwareVersion.objects.filter(
            id=version_id, learnware_id=row.learnware_id or 0, status=VersionStatus.PUBLISHED
        ).first()
        if chosen is None:
            raise field_error(
                "requirements.feature_space",
                f"base model {row.key!r}: the version your texts were embedded with is no longer published",
                "submission:user:unknown-base-model",
            )
        version = chosen
    return published_base_of(row, version)


def published_base_of(
    row: BaseModel, version: LearnwareVersion, files: dict[str, bytes] | None = None
) -> PublishedBase:
    """The published base ``row`` at ``version`` (one of its published versions), with its folder (read from
    the package unless ``files`` already holds it): what a run's recipe records, and what a text model on
    that base is pinned to when it publishes."""
    from workers.pipelines.model_selection_embed import model_folder_files

    files = files if files is not None else model_folder_files(version)
    return PublishedBase(
        key=row.key,
        name=row.name,
        learnware_id=version.learnware_id,
        version=version.number,
        version_id=version.id,
        package_sha256=version.artifact_sha256,
        folder_digest=files_digest(files),
        pooling=str(version.manifest.get("pooling") or "mean"),
        dim=int(row.hidden_size),
        files=files,
    )


def base_layer_states(
    base: PublishedBase, texts: list[str], model: LoRAAdapter | ArrowRouter | None
) -> list[np.ndarray]:
    """L arrays (n, hidden) float64: every layer's pooled states of ``texts`` on ``base`` with ``model``
    (one LoRA, merged or not, or an Arrow router; None: the base alone) applied, in the sandbox.

    The worker's embedding cache (``workers.pipelines.embedding_cache``) keeps them per (base folder
    digest, sha256 of the staged ``model``, pooling, token limit, text): only the texts it misses go to
    the sandbox, so a later submission over the same texts and adapters runs no forward pass.

    Raises
    ------
    TransientError
        The sandbox is briefly unavailable.
    ApplicationError
        ``submission:app:adapter-base-failed``: the base or a published adapter failed or was refused
        there (both passed these checks when they were published).
    """
    staged = {BASE_PREFIX + name: data for name, data in base.files.items()}
    payload = model.to_bytes() if model is not None else None  # serialised once: staged and hashed
    if payload is not None:
        staged[ASSEMBLY_FILE] = payload

    def run(missing: list[str]) -> np.ndarray:  # (m, L, hidden)
        return in_text_batches(
            staged,
            missing,
            failure=f"base model {base.key} v{base.version} with an adapter failed in the sandbox",
            code="submission:app:adapter-base-failed",
            kind="peft_lora",
            pooling=base.pooling,
            layers_max_length=MAX_TOKENS,
        )

    layers = _layer_count(base.files)
    if layers is None:  # a config the cache cannot check entries against: no cache
        states = run([str(t) for t in texts])
    else:
        states = cached_text_rows(
            base=f"folder-{base.folder_digest}",
            adapter=adapter_identity(payload),
            pooling=base.pooling,
            call="layers",
            max_length=MAX_TOKENS,
            texts=texts,
            shape=(layers, base.dim),
            compute=run,
        ).astype(np.float64)
    return [states[:, i, :] for i in range(states.shape[1])]


def _layer_count(files: dict[str, bytes]) -> int | None:
    """The base's transformer layers from its ``config.json`` (DistilBERT names them ``n_layers``)."""
    try:
        config = json.loads(files["config.json"])
        count = config.get("num_hidden_layers", config.get("n_layers"))
    except (KeyError, ValueError, AttributeError):
        return None
    return count if isinstance(count, int) and count > 0 else None


def base_encode(base: PublishedBase, space: Any, texts: list[str]) -> np.ndarray:
    """(n, dim) float64 unit rows of ``texts`` in ``space`` (the base's), embedded by ``base``'s version
    in the sandbox: the spec stage's rows and a text-model submission's labelled rows (``ReuseContext``).
    The encoder's rows are cached per (base folder digest, pooling, text), as :func:`base_layer_states`."""
    rows = cached_text_rows(
        base=f"folder-{base.folder_digest}",
        adapter=NO_ADAPTER,
        pooling=base.pooling,
        call="pooled",
        max_length=MAX_TOKENS,
        texts=texts,
        shape=(int(space.dim),),
        compute=lambda missing: encoder_rows(base.files, base.pooling, missing, key=base.key, space=space),
    )
    return unit_rows(rows.astype(np.float64))
