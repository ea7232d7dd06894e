"""PEFT LoRA adapters on tiny random base models (built from configs, no download), their packages,
and the independent PEFT computation of their embeddings that the sandbox's hooks are checked against.

``peft_lora_folder`` runs peft itself (offline: the base is a local folder) with random, non-zero
``lora_B`` (PEFT initialises B to zero, which would make every adapter the identity) and saves the
adapter as PEFT does: ``adapter_config.json`` + ``adapter_model.safetensors``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tests.support.packages import manifest_yaml, zip_bytes

TEXTS = [
    "the market share price and profit",
    "the team win the game and the cup",
    "a film star and the music award show",
    "the party vote in the election",
    "the phone and the computer software",
    "the bank and the economy",
]

# DeBERTa-v3's attention (deberta-v3-base's config): disentangled relative attention whose position
# embeddings go through the shared query_proj/key_proj, so a hook there fires on those calls too.
DEBERTA_V3 = {
    "relative_attention": True,
    "pos_att_type": ["p2c", "c2p"],
    "share_att_key": True,
    "position_buckets": 16,
    "max_relative_positions": -1,
    "norm_rel_ebd": "layer_norm",
}
# Every attention projection each family's LoRA may target, as PEFT names them (written out here,
# not read from specs.adapter_bases, so a wrong table there fails the tests).
# Every accepted target as an author names it in PEFT's ``target_modules`` (a suffix of the module's
# path; written here independently of ``specs.adapter_bases.ADAPTER_FAMILIES``).
_BERT = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense")
TARGETS = {
    "bert": _BERT,
    "roberta": _BERT,
    "electra": _BERT,
    "distilbert": ("attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin"),
    "mpnet": ("attention.attn.q", "attention.attn.k", "attention.attn.v", "attention.attn.o"),
    "deberta-v2": (
        "attention.self.query_proj",
        "attention.self.key_proj",
        "attention.self.value_proj",
        "attention.output.dense",
    ),
}


def base_config(family: str) -> dict[str, Any]:
    """Config overrides of the tiny base of ``family`` the adapter tests use (DeBERTa: v3's attention)."""
    return dict(DEBERTA_V3) if family == "deberta-v2" else {}


def peft_lora_folder(
    base_folder: Path, out: Path, *, r: int = 4, seed: int = 0, targets: tuple[str, ...] = ("query", "value")
) -> Path:
    """A LoRA on ``base_folder``'s attention projections, saved by peft into ``out``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    base = AutoModel.from_pretrained(str(base_folder), local_files_only=True)
    config = LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(targets), lora_dropout=0.0)
    model = get_peft_model(base, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
    model.save_pretrained(str(out))
    return out


def adapter_files(folder: Path) -> dict[str, bytes]:
    return {
        name: (folder / name).read_bytes() for name in ("adapter_config.json", "adapter_model.safetensors")
    }


def peft_embeddings(base_folder: Path, adapter_folder: Path, texts: list[str], pooling: str) -> np.ndarray:
    """(n, hidden) unit rows computed by PEFT's own modules (not the market's hooks), in float32."""
    import torch
    from peft import PeftModel
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_folder), local_files_only=True)
    base = AutoModel.from_pretrained(str(base_folder), local_files_only=True).eval()
    model = PeftModel.from_pretrained(base, str(adapter_folder), is_trainable=False).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    if pooling == "cls":
        pooled = hidden[:, 0]
    else:
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=1).numpy().astype(np.float64)


def peft_layer_states(
    base_folder: Path, adapter_folder: Path | None, texts: list[str], pooling: str
) -> np.ndarray:
    """(n, L, hidden) every layer's pooled states computed by PEFT's own modules (or the base alone),
    pooled here with torch, independently of ``specs.transferability.pool_hidden_states``."""
    import torch
    from peft import PeftModel
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_folder), local_files_only=True)
    model = AutoModel.from_pretrained(str(base_folder), local_files_only=True).eval()
    if adapter_folder is not None:
        model = PeftModel.from_pretrained(model, str(adapter_folder), is_trainable=False).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        out = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
        )
    mask = batch["attention_mask"].unsqueeze(-1).to(torch.float32)
    pooled = [h[:, 0] if pooling == "cls" else (h * mask).sum(1) / mask.sum(1) for h in out.hidden_states[1:]]
    return torch.stack(pooled, dim=1).numpy().astype(np.float64)


def base_adapter_package(
    adapter_folder: Path,
    *,
    base_model: str,
    dim: int,
    name: str = "tiny-lora",
    sample: list[str] | None = None,
) -> bytes:
    """A ``kind: adapter`` package on the published base ``base_model`` (its sample: ``sample``)."""
    fields = {
        "name": name,
        "description": "A LoRA on a tiny published base model.",
        "kind": "adapter",
        "modality": "text",
        "task": "embedding",
        "input": {},
        "output": {"dim": dim},
        "license": "Apache-2.0",
        "tags": ["test", "lora"],
        "base_model": base_model,
    }
    files: dict[str, bytes | str] = {
        "learnware.yaml": manifest_yaml(**fields),
        **adapter_files(adapter_folder),
    }
    texts = sample if sample is not None else TEXTS
    files["sample.jsonl"] = "\n".join(json.dumps({"text": t}) for t in texts) + "\n"
    return zip_bytes(files)


def edit_adapter_config(folder: Path, **changes: Any) -> None:
    path = folder / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
