"""Sandboxed calls for adapters on a published base model and for that base's encoder space.

The base is an upload, so nothing of it runs in the worker (nor the web process): the adapter's
probe stages the base's folder (from its newest published version's package, as model selection
reads it: ``model_selection_embed.model_folder_files``) beside the adapter in one ``peft_lora``
call (``workers.sandbox.adapter_base_call``), and a text sample or a user's file is embedded in the
base's space by the base's own ``hf_encoder`` call under its declared pooling, L2-normalised here
(``specs.adapter_bases`` defines the space).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from marketplace.core.exceptions import ApplicationError, TransientError
from marketplace.learnwares.conf import sandbox_limits
from marketplace.learnwares.encoding import minilm_path
from marketplace.learnwares.models import BaseModel, FeatureSpace
from marketplace.learnwares.services.adapter_bases import base_model_version, published_base_row
from workers.sandbox import SandboxLimits, SandboxUnavailable, run_model
from workers.sandbox.errors import SandboxError

TEXTS_PER_CALL = 256  # as model selection: one call loads the base once and bounds its output
BASE_PREFIX = "base/"  # workers.sandbox.adapter_base_call.BASE_FOLDER


def _base_files(row: BaseModel) -> tuple[dict[str, bytes], str]:
    """The base's Hugging Face folder (name -> bytes) and its declared pooling."""
    from workers.pipelines.model_selection_embed import model_folder_files

    version = base_model_version(row)
    return model_folder_files(version), str(version.manifest.get("pooling") or "mean")


def adapter_call(manifest: dict[str, Any], artifact: dict[str, bytes]) -> dict[str, Any]:
    """``run_model`` arguments for an adapter's probe: the offline MiniLM by path, or a published
    base's folder staged under ``base/`` with its pooling (no ``base_model_path``)."""
    row = published_base_row(str(manifest.get("base_model") or ""))
    if row is None:
        return {"artifact": artifact, "base_model_path": minilm_path(), "pooling": None}
    files, pooling = _base_files(row)
    own = {name: data for name, data in artifact.items() if "/" not in name}  # never into base/
    staged = {**own, **{BASE_PREFIX + name: data for name, data in files.items()}}
    return {"artifact": staged, "base_model_path": None, "pooling": pooling}


def base_space_encode(space: FeatureSpace, texts: list[str]) -> np.ndarray:
    """(n, dim) float64 unit rows of ``texts`` in a published base model's encoder space.

    Raises
    ------
    TransientError
        The sandbox is briefly unavailable.
    ApplicationError
        ``space:app:encoder-unavailable`` (the base is gone) or ``space:app:encoder-failed``.
    """
    row = published_base_row(space.encoder_id)
    if row is None:
        raise ApplicationError(
            f"feature space {space.key}: its base model {space.encoder_id!r} is no longer published",
            code="space:app:encoder-unavailable",
            http_status=409,
        )
    files, pooling = _base_files(row)
    return encode_with_base(files, pooling, texts, key=row.key, space=space)


def encode_with_base(
    files: dict[str, bytes], pooling: str, texts: list[str], *, key: str, space: FeatureSpace
) -> np.ndarray:
    """(n, dim) float64 unit rows of ``texts`` embedded by one version of a base (its folder ``files``)
    with its ``hf_encoder`` call in the sandbox: :func:`base_space_encode` on the newest version, a
    submission on the version its spec stage chose (``workers.pipelines.reuse_base``, which caches
    :func:`encoder_rows`)."""
    return unit_rows(encoder_rows(files, pooling, texts, key=key, space=space))


def encoder_rows(
    files: dict[str, bytes], pooling: str, texts: list[str], *, key: str, space: FeatureSpace
) -> np.ndarray:
    """(n, dim) float64 rows of the base's ``hf_encoder`` call under ``pooling``, not normalised.

    Raises
    ------
    ApplicationError
        ``space:app:encoder-failed``: the call failed, or the base no longer embeds ``space.dim``-d.
    """
    E = in_text_batches(
        files,
        texts,
        failure=f"base model {key} failed in the sandbox",
        code="space:app:encoder-failed",
        kind="hf_encoder",
        pooling=pooling,
    )
    if E.shape[1] != space.dim:
        raise ApplicationError(
            f"base model {key} now embeds {E.shape[1]}-d; its space {space.key} is {space.dim}-d",
            code="space:app:encoder-failed",
            http_status=500,
        )
    return E


def unit_rows(E: np.ndarray) -> np.ndarray:
    """``E``'s rows L2-normalised: the encoder space's embeddings."""
    return E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)


def in_text_batches(
    files: dict[str, bytes], texts: list[str], *, failure: str, code: str, **call: Any
) -> np.ndarray:
    """``run_model(files, batch, **call)`` over ``TEXTS_PER_CALL`` texts at a time, the outputs stacked
    (float64): one way a base's sandbox calls are batched and their failures named.

    Raises
    ------
    TransientError
        The sandbox is briefly unavailable.
    ApplicationError
        ``code``, with ``failure: <the sandbox's message>``.
    """
    limits = SandboxLimits(**sandbox_limits())
    parts = []
    for start in range(0, len(texts), TEXTS_PER_CALL):
        batch = np.array([str(t) for t in texts[start : start + TEXTS_PER_CALL]], dtype=str)
        try:
            parts.append(run_model(files, batch, limits=limits, **call))
        except SandboxUnavailable as exc:
            raise TransientError(exc.message) from exc
        except SandboxError as exc:
            raise ApplicationError(f"{failure}: {exc.message}", code=code, http_status=500) from exc
    return np.concatenate(parts).astype(np.float64)
