"""Tiny randomly initialised text encoders saved as Hugging Face folders (no download).

The tokenizer is a WordPiece one built from a small ``vocab.txt`` written here, so every family
shares it; each folder holds ``config.json``, ``model.safetensors`` and the tokenizer files, as an
uploaded base model would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

WORDS = [
    "the",
    "a",
    "and",
    "of",
    "to",
    "in",
    "is",
    "market",
    "bank",
    "share",
    "price",
    "profit",
    "sales",
    "company",
    "economy",
    "sport",
    "team",
    "win",
    "game",
    "match",
    "player",
    "goal",
    "cup",
    "season",
    "coach",
    "film",
    "music",
    "star",
    "show",
    "award",
    "band",
    "actor",
    "vote",
    "party",
    "election",
    "minister",
    "government",
    "phone",
    "computer",
    "software",
    "internet",
    "game",
]
VOCAB = list(
    dict.fromkeys(
        [
            "[PAD]",
            "[UNK]",
            "[CLS]",
            "[SEP]",
            "[MASK]",
            *WORDS,
            *"abcdefghijklmnopqrstuvwxyz",
            *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"),
        ]
    )
)
SIZES: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


def _config(family: str, **overrides: Any) -> Any:
    """A tiny config of ``family``; ``overrides`` are further config fields (e.g. DeBERTa's
    relative attention)."""
    import transformers as tf

    common = {"vocab_size": len(VOCAB), "max_position_embeddings": 64, "pad_token_id": 0, **overrides}
    if family == "distilbert":
        return tf.DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, **common)
    if family == "electra":
        return tf.ElectraConfig(embedding_size=32, **SIZES, **common)
    classes = {"bert": tf.BertConfig, "roberta": tf.RobertaConfig, "mpnet": tf.MPNetConfig}
    classes["deberta-v2"] = tf.DebertaV2Config
    return classes[family](**{**SIZES, **common})  # overrides may change the sizes too


def write_tokenizer(folder: Path) -> None:
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    # transformers 5 names the argument ``vocab`` (a path or a mapping); the older ``vocab_file``
    # keyword is swallowed by **kwargs and leaves a 5-token vocabulary that maps every word to [UNK].
    tokenizer = BertTokenizer(vocab=str(folder / "vocab.txt"))
    if tokenizer.vocab_size != len(VOCAB):
        raise RuntimeError(f"the tiny tokenizer has {tokenizer.vocab_size} tokens, expected {len(VOCAB)}")
    tokenizer.save_pretrained(str(folder))


def make_model(family: str = "bert", seed: int = 0, **overrides: Any) -> Any:
    """A randomly initialised encoder (``AutoModel``) of ``family`` drawn from ``seed``."""
    from transformers import AutoModel

    torch.manual_seed(seed)
    return AutoModel.from_config(_config(family, **overrides)).eval()


def save_folder(model: Any, folder: Path) -> Path:
    write_tokenizer(folder)
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder


def make_folder(folder: Path, family: str = "bert", seed: int = 0, **overrides: Any) -> Path:
    return save_folder(make_model(family, seed, **overrides), folder)


def edit_json(path: Path, **changes: Any) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data), encoding="utf-8")
