"""Which published base models a LoRA adapter may target, whether its factors fit one, and the
embedding of texts by a base (with or without the adapter) in that base's encoder space.

The hook runtime (:mod:`specs.adapter_runtime`) adds ``s B A h`` to named linear modules, at every
call of the module, exactly where PEFT's LoRA layer adds it. So it applies an adapter to a family whose
attention projections are square ``hidden x hidden`` linear maps it can address by name:
:data:`ADAPTER_FAMILIES`, one row per allow-listed text family (``specs.base_models.ALLOWED_MODEL_TYPES``)
with its module-name pattern (PEFT's names without the ``base_model.model.`` prefix) and the targets
accepted there:

* BERT, RoBERTa, ELECTRA: ``encoder.layer.N.attention.self.{query,key,value}`` (PEFT's default
  ``query``/``value``) and the attention's output projection ``encoder.layer.N.attention.output.dense``
  (an author names it ``attention.output.dense``: a bare ``dense`` would also hit the feed-forward
  layers, which are not square and are refused);
* DistilBERT: ``transformer.layer.N.attention.{q_lin,k_lin,v_lin,out_lin}`` (PEFT has no default
  there: every target is named by the adapter's author);
* MPNet: ``encoder.layer.N.attention.attn.{q,k,v,o}`` (likewise);
* DeBERTa-v2/v3: ``encoder.layer.N.attention.self.{query_proj,key_proj,value_proj}`` (PEFT's default
  ``query_proj``/``value_proj``) and ``encoder.layer.N.attention.output.dense``. With
  ``share_att_key`` (DeBERTa-v3's setting) the disentangled attention also projects the relative
  position embeddings through ``query_proj``/``key_proj``; a hook fires on those calls too, as PEFT's
  wrapped module does. The separate ``pos_key_proj``/
  ``pos_query_proj`` of a base without ``share_att_key`` are not accepted as targets: a LoRA on
  them is refused (``mismatch``, naming the module): they are outside PEFT's defaults and untested.

A family outside the table is refused (``unsupported``) rather than run half-adapted. A factor whose
width disagrees with the base, or a module the base's family or depth does not have, is refused too
(``mismatch``): a LoRA trained on another model would embed silently badly.

A base's encoder space holds its pooled (declared ``mean``/``cls``) last hidden state, L2-normalised
(as the MiniLM text space's vectors are), keyed :func:`encoder_space_key` and ``hidden_size`` wide.

torch is imported where it is used, so importing this module needs only numpy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from specs.adapter_runtime import embedding, layer_states, lora_delta, module_path
from specs.assembly import LoRAAdapter
from specs.exceptions import SpecError


@dataclass(frozen=True)
class AdapterFamily:
    """Where a family's attention projections live: ``{prefix}.N.<target>`` for layer N, each target a
    module path inside the layer (``attention.self.query``), as an author names it in PEFT's
    ``target_modules``.

    ``layers_field`` is the config field that counts the layers (``checked.num_layers`` reads it
    through transformers' aliases); it is named in refusals so an author can compare with their model.
    """

    prefix: str
    targets: tuple[str, ...]
    layers_field: str = "num_hidden_layers"

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(rf"{re.escape(self.prefix)}\.(\d+)\.([\w.]+)")

    def describe(self) -> str:
        return f"{self.prefix}.N.{{{','.join(self.targets)}}}"


_BERT_LIKE = AdapterFamily(
    "encoder.layer",
    ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"),
)
ADAPTER_FAMILIES: dict[str, AdapterFamily] = {
    "bert": _BERT_LIKE,
    "roberta": _BERT_LIKE,
    "electra": _BERT_LIKE,
    "distilbert": AdapterFamily(
        "transformer.layer",
        ("attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin"),
        layers_field="n_layers",
    ),
    "mpnet": AdapterFamily(
        "encoder.layer", ("attention.attn.q", "attention.attn.k", "attention.attn.v", "attention.attn.o")
    ),
    "deberta-v2": AdapterFamily(
        "encoder.layer",
        (
            "attention.self.query_proj",
            "attention.self.key_proj",
            "attention.self.value_proj",
            "attention.output.dense",
        ),
    ),
}
ADAPTABLE_MODEL_TYPES = tuple(ADAPTER_FAMILIES)


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


def check_family(model_type: str) -> AdapterFamily:
    """The row of :data:`ADAPTER_FAMILIES` for ``model_type``.

    Raises
    ------
    AdapterBaseError
        ``unsupported`` for a family outside the table.
    """
    family = ADAPTER_FAMILIES.get(model_type)
    if family is None:
        raise AdapterBaseError(
            f"adapters can target {', '.join(ADAPTABLE_MODEL_TYPES)} base models (LoRA on their attention "
            f"projections); this base is {model_type!r}",
            reason="unsupported",
            details={"model_type": model_type},
        )
    return family


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


def check_adapter_fits(adapter: LoRAAdapter, *, model_type: str, num_layers: int, hidden_size: int) -> None:
    """Every factor targets an accepted attention projection (:data:`ADAPTER_FAMILIES`) of a layer
    the base has, with factors (r, hidden) and (hidden, r).

    Raises
    ------
    AdapterBaseError
        ``unsupported`` for a family outside the table; ``mismatch`` naming the first module that
        does not fit.
    """
    family = check_family(model_type)
    pattern = family.pattern
    for name, (A, B) in sorted(adapter.factors.items()):
        match = pattern.fullmatch(module_path(name))
        if match is None or match.group(2) not in family.targets or int(match.group(1)) >= num_layers:
            raise AdapterBaseError(
                f"adapter module {name!r} is not an attention projection this {model_type} base accepts "
                f"({family.layers_field} = {num_layers}: {family.describe()} for N < {num_layers})",
                reason="mismatch",
                details={"module": name, "model_type": model_type},
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
    ``s B A h`` added to its projections by forward hooks: the last of
    :func:`specs.adapter_runtime.layer_states` (the one hook runtime), L2-normalised.
    """
    delta = lora_delta(adapter) if adapter is not None else None
    modules = sorted(adapter.factors) if adapter is not None else []
    return embedding(layer_states(base, texts, delta, modules, pooling=pooling))
