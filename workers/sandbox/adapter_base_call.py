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

import numpy as np

from specs.packaging.choices import POOLINGS
from specs.packaging.errors import InvalidPackageError

BASE_FOLDER = "base"  # artifact/base/: the base model's Hugging Face folder


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
    from safetensors.numpy import load

    from specs.adapter_bases import (
        AdapterBaseError,
        check_adapter_fits,
        check_family,
        pooled_embeddings,
        unsupported_options,
    )
    from specs.adapter_runtime import AdapterFilesError, adapter_from_files
    from specs.base_models import BaseModelFolderError, inspect_model_folder, load_text_encoder
    from workers.sandbox.base_model_call import _refusal

    if pooling not in POOLINGS:
        raise InvalidPackageError(
            f"the base model's pooling {pooling!r} is not one of {', '.join(POOLINGS)}",
            code="upload:user:base-model-pooling",
            details={"field": "pooling"},
        )
    files = {
        name: (folder / name).read_bytes()
        for name in ("adapter_config.json", "adapter_model.safetensors")
        if (folder / name).is_file()
    }
    try:
        checked = inspect_model_folder(folder / BASE_FOLDER)
        check_family(checked.model_type)
        options = unsupported_options(
            json.loads(files["adapter_config.json"]), list(load(files["adapter_model.safetensors"]))
        )
        adapter = None if options else adapter_from_files(files, base_model_key=checked.digest)
        if adapter is not None:
            check_adapter_fits(
                adapter,
                model_type=checked.model_type,
                num_layers=checked.num_layers,
                hidden_size=checked.hidden_size,
            )
    except BaseModelFolderError as exc:
        raise _refusal(exc) from None
    except AdapterBaseError as exc:
        raise InvalidPackageError(str(exc), code=exc.code, details=exc.details) from None
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
    try:
        base = load_text_encoder(checked)
    except BaseModelFolderError as exc:  # weights that disagree with the config
        raise _refusal(exc) from None
    texts = [str(t) for t in inputs.tolist()]
    return pooled_embeddings(base, texts, pooling=pooling, adapter=adapter).astype(np.float32)
