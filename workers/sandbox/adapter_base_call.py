"""A LoRA adapter on a *published* base model, run inside a sandboxed call (``kind="peft_lora"`` with
the base's folder staged under ``artifact/base/`` instead of a ``base_model_path``).

The base is still an upload: its folder goes through the same checks as the base model's own probe
(:func:`specs.base_models.inspect_model_folder`: safetensors only, no remote code, allow-listed
architecture, limits; then :func:`specs.base_models.load_text_encoder`, which refuses weights that
disagree with the config). The adapter is read as tensors (safetensors' numpy loader, no PEFT code),
must target a family the hook runtime can address (BERT, RoBERTa, ELECTRA, DistilBERT, MPNet,
DeBERTa-v2: :data:`specs.adapter_bases.ADAPTER_FAMILIES`), name that family's attention projections
and fit the base's depth and width, and is applied with forward hooks. A refusal leaves as
:class:`InvalidPackageError` with its ``upload:user:*`` code, reported as "refused".
Imports: the standard library, numpy and torch (transformers lazily) — no Django.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from specs.assembly import ArrowRouter, LoRAAdapter
from specs.packaging.choices import POOLINGS
from specs.packaging.errors import InvalidPackageError

BASE_FOLDER = "base"  # artifact/base/: the base model's Hugging Face folder
ASSEMBLY_FILE = "assembly.lwa"  # a merged LoRA or an Arrow router, as specs.assembly serialises it


def run_adapter_on_base(folder: Path, inputs: np.ndarray, pooling: str) -> np.ndarray:
    """(n, hidden) float32 unit embeddings of the texts ``inputs``: the base under its declared
    ``pooling`` with the adapter in ``folder`` (``adapter_config.json``, ``adapter_model.safetensors``).

    Raises
    ------
    InvalidPackageError
        ``upload:user:base-model-*`` (the base's folder), ``upload:user:adapter-base-unsupported``
        (its family), ``upload:user:adapter-base-mismatch`` (the adapter's modules or shapes),
        ``upload:user:adapter-config`` (DoRA, trained biases, tensors other than LoRA factors),
        ``upload:user:adapter-weights`` (unreadable adapter files).
    """
    from specs.adapter_bases import pooled_embeddings

    checked = _checked_base(folder, pooling)
    adapter = _peft_adapter(folder, checked)
    if adapter is None:
        raise InvalidPackageError(
            "adapter_config.json and adapter_model.safetensors are missing",
            code="upload:user:adapter-weights",
            details={},
        )
    texts = [str(t) for t in inputs.tolist()]
    return pooled_embeddings(_load(checked), texts, pooling=pooling, adapter=adapter).astype(np.float32)


def run_adapter_layers_on_base(folder: Path, inputs: np.ndarray, pooling: str, max_length: int) -> np.ndarray:
    """(n, L, hidden) float32: every transformer layer's ``pooling`` of the texts ``inputs`` on the base,
    with what ``folder`` holds applied: an assembly (``assembly.lwa``: one LoRA, e.g. a merged one, or
    an Arrow router, as ``specs.assembly`` serialises them: JSON + arrays, no pickle), a PEFT LoRA
    (``adapter_config.json`` + ``adapter_model.safetensors``), or nothing (the base alone).

    The reuse pipeline's ranking and assembly on a published base (``workers.pipelines.reuse_text``):
    the same folder and adapter checks as :func:`run_adapter_on_base`, the states of
    :func:`specs.adapter_runtime.layer_states` (the one hook runtime); texts truncated to ``max_length``
    tokens.

    Raises
    ------
    InvalidPackageError
        As :func:`run_adapter_on_base`; ``upload:user:adapter-weights`` for an unreadable assembly.
    """
    from specs.adapter_runtime import delta_of, layer_states

    checked = _checked_base(folder, pooling)
    model = (
        _assembly(folder, checked) if (folder / ASSEMBLY_FILE).is_file() else _peft_adapter(folder, checked)
    )
    delta, modules = delta_of(model) if model is not None else (None, [])
    texts = [str(t) for t in inputs.tolist()]
    states = layer_states(_load(checked), texts, delta, modules, pooling=pooling, max_length=max_length)
    return np.stack(states, axis=1).astype(np.float32)


def _checked_base(folder: Path, pooling: str) -> Any:
    """The staged base folder after ``inspect_model_folder`` and the family check."""
    from specs.adapter_bases import AdapterBaseError, check_family
    from specs.base_models import BaseModelFolderError, inspect_model_folder
    from workers.sandbox.base_model_call import _refusal

    if pooling not in POOLINGS:
        raise InvalidPackageError(
            f"the base model's pooling {pooling!r} is not one of {', '.join(POOLINGS)}",
            code="upload:user:base-model-pooling",
            details={"field": "pooling"},
        )
    try:
        checked = inspect_model_folder(folder / BASE_FOLDER)
        check_family(checked.model_type)
    except BaseModelFolderError as exc:
        raise _refusal(exc) from None
    except AdapterBaseError as exc:
        raise InvalidPackageError(str(exc), code=exc.code, details=exc.details) from None
    return checked


def _load(checked: Any) -> Any:
    """(tokenizer, model): ``load_text_encoder`` refuses weights that disagree with the config."""
    from specs.base_models import BaseModelFolderError, load_text_encoder
    from workers.sandbox.base_model_call import _refusal

    try:
        return load_text_encoder(checked)
    except BaseModelFolderError as exc:
        raise _refusal(exc) from None


def _fits(adapter: LoRAAdapter, checked: Any) -> None:
    from specs.adapter_bases import AdapterBaseError, check_adapter_fits

    try:
        check_adapter_fits(
            adapter,
            model_type=checked.model_type,
            num_layers=checked.num_layers,
            hidden_size=checked.hidden_size,
        )
    except AdapterBaseError as exc:
        raise InvalidPackageError(str(exc), code=exc.code, details=exc.details) from None


def _peft_adapter(folder: Path, checked: Any) -> LoRAAdapter | None:
    """The PEFT LoRA in ``folder``, checked to fit the base; None when neither file is there."""
    from safetensors.numpy import load

    from specs.adapter_bases import unsupported_options
    from specs.adapter_runtime import AdapterFilesError, adapter_from_files

    files = {
        name: (folder / name).read_bytes()
        for name in ("adapter_config.json", "adapter_model.safetensors")
        if (folder / name).is_file()
    }
    if not files:
        return None
    try:
        options = unsupported_options(
            json.loads(files["adapter_config.json"]), list(load(files["adapter_model.safetensors"]))
        )
        adapter = None if options else adapter_from_files(files, base_model_key=checked.digest)
    except (AdapterFilesError, ValueError, KeyError) as exc:  # unreadable factors, unpaired A/B
        raise InvalidPackageError(
            f"adapter_model.safetensors: {exc}", code="upload:user:adapter-weights", details={}
        ) from None
    if adapter is None:
        raise InvalidPackageError(
            f"adapter_config.json: PEFT options the LoRA hooks do not apply: {', '.join(options)}",
            code="upload:user:adapter-config",
            details={"file": "adapter_config.json"},
        )
    _fits(adapter, checked)
    return adapter


def _assembly(folder: Path, checked: Any) -> LoRAAdapter | ArrowRouter:
    """``assembly.lwa``: an Arrow router (its header's ``kind``) or one LoRA; every LoRA in it must fit."""
    from specs.exceptions import SpecError
    from specs.serialization import bytes_to_arrays

    raw = (folder / ASSEMBLY_FILE).read_bytes()
    try:
        header, _ = bytes_to_arrays(raw)
        model: LoRAAdapter | ArrowRouter = (
            ArrowRouter.from_bytes(raw)
            if header.get("kind") == ArrowRouter.kind
            else LoRAAdapter.from_bytes(raw)
        )
    except (SpecError, ValueError, KeyError) as exc:
        raise InvalidPackageError(
            f"{ASSEMBLY_FILE}: {exc}", code="upload:user:adapter-weights", details={"file": ASSEMBLY_FILE}
        ) from None
    for adapter in model.adapters_ if isinstance(model, ArrowRouter) else [model]:
        _fits(adapter, checked)
    return model
