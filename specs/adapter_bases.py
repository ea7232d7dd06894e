"""Which published base models a LoRA adapter may target, whether its factors fit one, and the
embedding of texts by a base (with or without the adapter) in that base's encoder space.

The hook runtime (:mod:`specs.adapter_runtime`) adds ``s B A h`` to named linear modules, so it can
apply an adapter only to a family whose attention projections it can address by name and whose
projections are square ``hidden x hidden`` maps: BERT and RoBERTa (``encoder.layer.N.attention.self.
{query,key,value}``). Other families (DistilBERT's ``q_lin``, DeBERTa-v2's ``query_proj`` ...) are
refused rather than run half-adapted. A factor whose width disagrees with the base, or a module the
base does not have, is refused too: a LoRA trained on another model would embed silently badly.

A base's encoder space holds its pooled (declared ``mean``/``cls``) last hidden state, L2-normalised
(as the MiniLM text space's vectors are), keyed :func:`encoder_space_key` and ``hidden_size`` wide.

torch is imported where it is used, so importing this module needs only numpy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from specs.adapter_runtime import BATCH, MAX_LENGTH, hooked, lora_delta, module_path
from specs.assembly import LoRAAdapter
from specs.exceptions import SpecError
from specs.transferability import pool_hidden_states

ADAPTABLE_MODEL_TYPES = ("bert", "roberta")
ADAPTABLE_MODULES = ("query", "key", "value")
_MODULE = re.compile(r"encoder\.layer\.(\d+)\.attention\.self\.(\w+)")


class AdapterBaseError(SpecError):
    """The adapter cannot run on this base: ``reason`` is ``unsupported`` (a family the hook runtime
    cannot address) or ``mismatch`` (a module or a shape the base does not have); ``code`` is the
    upload's ``upload:user:adapter-base-{reason}``."""

    def __init__(self, message: str, *, reason: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.code = f"upload:user:adapter-base-{reason}"
        self.details = details or {}


def encoder_space_key(base_model_key: str) -> str:
    """The feature space of a published base model's pooled embedding: ``text-<base key>``."""
    return f"text-{base_model_key}"[:120]


def check_family(model_type: str) -> None:
    """Raises :class:`AdapterBaseError` (``unsupported``) for a family outside
    :data:`ADAPTABLE_MODEL_TYPES`."""
    if model_type not in ADAPTABLE_MODEL_TYPES:
        raise AdapterBaseError(
            f"adapters can target {', '.join(ADAPTABLE_MODEL_TYPES)} base models (attention projections "
            f"encoder.layer.N.attention.self.{{query,key,value}}); this base is {model_type!r}",
            reason="unsupported",
            details={"model_type": model_type},
        )


def unsupported_options(config: dict[str, Any], tensor_names: Sequence[str]) -> list[str]:
    """PEFT options the hooks would silently ignore (so the embeddings would not be PEFT's): DoRA,
    trained biases, and any tensor that is not a ``lora_A``/``lora_B`` weight; empty when plain LoRA."""
    found = [f"use_dora: {config['use_dora']}"] if config.get("use_dora") else []
    if config.get("bias") not in (None, "none"):
        found.append(f"bias: {config['bias']}")
    if config.get("lora_bias"):
        found.append("lora_bias: true")
    found += [n for n in tensor_names if not n.endswith((".lora_A.weight", ".lora_B.weight"))][:5]
    return found


def check_adapter_fits(adapter: LoRAAdapter, *, num_layers: int, hidden_size: int) -> None:
    """Every factor targets an attention projection of a layer the base has, (r, hidden) and (hidden, r).

    Raises
    ------
    AdapterBaseError
        ``mismatch`` naming the first module that does not fit.
    """
    for name, (A, B) in sorted(adapter.factors.items()):
        match = _MODULE.fullmatch(module_path(name))
        if match is None or match.group(2) not in ADAPTABLE_MODULES or int(match.group(1)) >= num_layers:
            raise AdapterBaseError(
                f"adapter module {name!r} is not an attention projection of this base "
                f"({num_layers} layers: encoder.layer.0..{num_layers - 1}.attention.self.{{query,key,value}}"
                ")",
                reason="mismatch",
                details={"module": name},
            )
        if A.shape[1] != hidden_size or B.shape[0] != hidden_size:
            raise AdapterBaseError(
                f"adapter module {name!r} has factors A {tuple(A.shape)} and B {tuple(B.shape)}; this base's "
                f"projections are {hidden_size} x {hidden_size}",
                reason="mismatch",
                details={"module": name},
            )


def pooled_embeddings(
    base: tuple[Any, Any],
    texts: Sequence[str],
    *,
    pooling: str,
    adapter: LoRAAdapter | None = None,
) -> np.ndarray:
    """(n, hidden) float64 unit rows: the base's ``pooling`` of its last hidden state, the adapter's
    ``s B A h`` added to its projections by forward hooks (:mod:`specs.adapter_runtime`).

    The tokenizer's ``input_ids`` and ``attention_mask`` only are sent, as the base's own probe and
    layer calls send them (``workers.sandbox.base_model_call``), so the adapter's space and its
    base's space embed the same tokens.
    """
    import torch

    tokenizer, model = base
    delta = lora_delta(adapter) if adapter is not None else None
    modules = sorted(adapter.factors) if adapter is not None else []
    parts = []
    with torch.no_grad(), hooked(model, delta, modules):
        for start in range(0, len(texts), BATCH):
            batch = tokenizer(
                [str(t) for t in texts[start : start + BATCH]],
                padding=True,
                truncation=True,
                max_length=MAX_LENGTH,
                return_tensors="pt",
            )
            mask = batch["attention_mask"]
            hidden = model(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
            parts.append(pool_hidden_states(hidden, mask, "first" if pooling == "cls" else "mean"))
    E = np.concatenate(parts)
    return E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
