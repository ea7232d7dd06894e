"""A base model and a task on which model selection's LoRA adapter honestly beats the frozen head.

The base is a tiny random BERT of hidden size 8 (one layer, one head) initialised at the scale of a
trained network (``initializer_range`` 0.5 ~ 1/sqrt(8), not BERT's 0.02, under which the adapted
query/value projections barely reach the output). The label is which half of the alphabet a text's
single-letter words come from, mixed with shared filler words: the frozen pooled 8-wide layer keeps
little of it linearly, TF-IDF sees none of it (its token pattern drops one-character words), and the
LoRA on query/value with its head can re-embed the letters. Found by the search in
``benchmarks/model_selection_adapter_win.py``; the tests recompute every decision from stored scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tests.support.base_model_packages import base_model_folder

LETTERS = "abcdefghijklmnopqrstuvwxyz"
FILLERS = ["the", "market", "team", "film", "vote", "phone", "price", "game", "music", "party"]
SIZES: dict[str, Any] = {
    "hidden_size": 8,
    "num_hidden_layers": 1,
    "num_attention_heads": 1,
    "intermediate_size": 16,
    "initializer_range": 0.5,
}
DIM = int(SIZES["hidden_size"])


def winning_base_folder(folder: Path, seed: int = 0) -> Path:
    return base_model_folder(folder, seed=seed, **SIZES)


def letters_task(per_class: int = 300, seed: int = 0) -> tuple[list[str], list[str]]:
    """Texts of 4 letters from the first (class ``first``) or second (``second``) half of the alphabet
    and 3 filler words, shuffled."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for label, pool in (("first", LETTERS[:13]), ("second", LETTERS[13:])):
        for _ in range(per_class):
            words = [*rng.choice(list(pool), 4), *rng.choice(FILLERS, 3)]
            rng.shuffle(words)
            texts.append(" ".join(str(w) for w in words))
            labels.append(label)
    return texts, labels
