"""A base model's probe, run inside a sandboxed call (``kind="hf_encoder"``).

The uploaded Hugging Face folder is checked by :func:`specs.base_models.inspect_model_folder`
(safetensors only, no ``auto_map``/Python files, allow-listed architecture, layer/width/parameter
limits) and loaded by :func:`specs.base_models.load_text_encoder` (``trust_remote_code=False``,
``use_safetensors=True``, weights must match the config); then the probe sentences are embedded
with the declared pooling — or, for an image base model (ViT, ``specs.base_models.images``), the
probe images (float (n, C, H, W) in [0, 1]) are. A refusal leaves as :class:`InvalidPackageError`
with the rule's ``upload:user:base-model-*`` code, which the call reports as "refused" (``child.run_call``).
Imports: the standard library, numpy and torch (transformers lazily) — no Django.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from specs.packaging.errors import InvalidPackageError
from specs.token_limit import MAX_TOKENS

POOLINGS = ("mean", "cls")


def _refusal(exc: Exception) -> InvalidPackageError:
    """``spec:base-model-weights`` -> ``upload:user:base-model-weights`` (same rule, upload's name)."""
    reason = str(getattr(exc, "code", "spec:base-model-folder")).split(":", 1)[1]
    details = {k: v for k, v in getattr(exc, "details", {}).items() if isinstance(v, (str, int))}
    return InvalidPackageError(str(exc), code=f"upload:user:{reason}", details=details)


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """(n, h) text embeddings from (n, t, h) token states: masked mean, or the first ([CLS]) token."""
    if pooling == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def run_base_model(folder: Path, inputs: np.ndarray, pooling: str) -> np.ndarray:
    """(n, hidden) float32 embeddings of the probe sentences ``inputs`` under ``pooling``.

    Raises
    ------
    InvalidPackageError
        ``upload:user:base-model-{weights,remote-code,architecture,mismatch,folder,pooling}``.
    """
    from specs.base_models import BaseModelFolderError, inspect_model_folder, load_text_encoder

    if pooling not in POOLINGS:
        raise InvalidPackageError(
            f"pooling {pooling!r} is not one of {', '.join(POOLINGS)}",
            code="upload:user:base-model-pooling",
            details={"field": "pooling"},
        )
    try:
        checked = inspect_model_folder(folder)
        _check_modality(checked.modality, inputs)
        if checked.modality == "image":
            from specs.base_models.images import embed_image_probe

            return embed_image_probe(checked, inputs, pooling)
        tokenizer, model = load_text_encoder(checked)
    except BaseModelFolderError as exc:
        raise _refusal(exc) from None
    if pooling == "cls" and getattr(tokenizer, "cls_token_id", None) is None:
        raise InvalidPackageError(
            "pooling: cls needs a tokenizer with a [CLS] token at the start of every text; this one has none",
            code="upload:user:base-model-pooling",
            details={"field": "pooling"},
        )
    batch = tokenizer(
        [str(t) for t in inputs.tolist()],
        padding=True,
        truncation=True,
        max_length=MAX_TOKENS,
        return_tensors="pt",
    )
    if pooling == "cls" and not bool((batch["input_ids"][:, 0] == tokenizer.cls_token_id).all()):
        raise InvalidPackageError(
            "pooling: cls, but the tokenizer does not put its [CLS] token first",
            code="upload:user:base-model-pooling",
            details={"field": "pooling"},
        )
    # input_ids + attention_mask only, as specs.base_models.LayerEmbedder sends them.
    hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    return pool(hidden, batch["attention_mask"], pooling).float().numpy()


def _check_modality(modality: str, inputs: np.ndarray) -> None:
    """The manifest's modality chose the inputs (probe sentences or probe images); the folder must agree."""
    given = "text" if inputs.dtype.kind == "U" else "image"
    if given != modality:
        raise InvalidPackageError(
            f"the manifest says modality: {given}, but the folder holds a {modality} encoder",
            code="upload:user:base-model-modality",
            details={"field": "modality"},
        )


def run_base_model_layers(folder: Path, inputs: np.ndarray, max_length: int) -> np.ndarray:
    """(n, L, hidden) float32: every transformer layer's mean-pooled embedding of the texts ``inputs``.

    Model selection's forward pass (``workers.pipelines.model_selection_embed``): the same folder
    checks as the probe, then :class:`specs.base_models.LayerEmbedder` (the one layer-embedding
    computation, also what a trusted in-process ranking runs) with a private in-memory cache.

    Raises
    ------
    InvalidPackageError
        ``upload:user:base-model-*`` as :func:`run_base_model`.
    """
    from specs.base_models import BaseModelFolderError, LayerEmbedder, inspect_model_folder

    try:
        checked = inspect_model_folder(folder)
        _check_modality(checked.modality, inputs)
        if checked.modality == "image":  # images: every layer's token mean (max_length is unused)
            from specs.base_models.images import ImageLayerEmbedder

            return ImageLayerEmbedder(checked).embed(inputs).layers.transpose(1, 0, 2)
        embedder = LayerEmbedder(checked, max_length=max_length)
        return embedder.embed([str(t) for t in inputs.tolist()]).layers.transpose(1, 0, 2)
    except BaseModelFolderError as exc:
        raise _refusal(exc) from None


def warm() -> None:
    """Import transformers and the checks once in the fork server, not in every call."""
    import transformers  # noqa: F401

    from specs.base_models import folder  # noqa: F401
