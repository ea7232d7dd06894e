"""When does model selection's LoRA adapter beat the frozen head? The search behind the end-to-end
test's set-up (``tests.support.adapter_wins``): tiny random BERTs of a given width, depth and
``initializer_range`` on the single-letter task, scored as the worker scores them (the frozen
logistic head on the layer mean and TF-IDF on the evaluate stage's 5 x 4 folds, the adapter with the
default hyperparameters on the first repeat's 5 folds, seed 3) and decided by the one-SE rule.
``--lora-lr 0`` trains the head alone (the LoRA's B stays zero): the ablation that shows the LoRA,
not a differently trained head, makes the gain.

    PYTHONPATH=. OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python \\
        benchmarks/model_selection_adapter_win.py --config 8,1,0.5 --config 32,2,0.02 [--lora-lr 0]

Each ``--config`` is hidden size, layers, initializer_range (one attention head below 16 wide, else 2).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from specs.adapter_training import PROBA, TrainingConfig, train_lora
from specs.base_model_head import layer_features
from specs.base_models import EmbeddingCache, LayerEmbedder, inspect_model_folder, load_text_encoder
from specs.evaluation import one_se_choice, paired_verdict, repeated_folds
from tests.support.adapter_wins import letters_task
from tests.support.base_model_packages import base_model_folder
from workers.pipelines.reuse_scratch import scratch_fold_scores, scratch_models, text_scratch_model

SEED, TASK = 3, "classification"


def row(hidden: int, layers: int, init: float, per_class: int, lora_lr: float, root: Path) -> str:
    sizes: dict[str, Any] = {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": 1 if hidden < 16 else 2,
        "intermediate_size": 2 * hidden,
        "initializer_range": init,
    }
    folder = base_model_folder(root / f"{hidden}-{layers}-{init}", seed=0, **sizes)
    texts, labels = letters_task(per_class)
    y = np.unique(labels, return_inverse=True)[1].astype(np.int64)
    checked = inspect_model_folder(folder)
    features = layer_features(LayerEmbedder(checked, cache=EmbeddingCache()).embed(texts).layers, "mean")
    folds = repeated_folds(y, stratify=True, k=5, repeats=4, seed=SEED)
    k, share = folds.k, folds.test_share
    head = scratch_fold_scores(
        scratch_models(TASK, SEED)["logistic_regression"], features, y, folds.splits, TASK, 2
    )
    raw = np.asarray(texts, dtype=object)
    scratch = scratch_fold_scores(text_scratch_model(), raw, y, folds.splits, TASK, 2)
    started, adapter = time.perf_counter(), []
    for train, test in folds.splits[:k]:
        out = train_lora(
            load_text_encoder(checked),
            [texts[i] for i in train],
            y[train],
            n_classes=2,
            model_type="bert",
            num_layers=layers,
            pooling="mean",
            seed=SEED,
            config=TrainingConfig(lr=lora_lr),
            predict=[texts[i] for i in test],
        )
        adapter.append(float((out[PROBA].argmax(1) == y[test]).mean()))
    chosen, gains = one_se_choice("head", {"head": head[:k], "adapter": adapter}, share)
    vs_scratch = paired_verdict(adapter, scratch[:k], share)[0]
    return (
        f"| {hidden} | {layers} | {init} | {np.mean(head[:k]):.3f} | {np.mean(scratch[:k]):.3f} | "
        f"{np.mean(adapter):.3f} | {gains['adapter']['gain']:+.3f} / {gains['adapter']['se']:.3f} | "
        f"{chosen} ({vs_scratch} vs scratch) | {time.perf_counter() - started:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", action="append", required=True, help="hidden,layers,initializer_range")
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--lora-lr", type=float, default=TrainingConfig().lr)
    args = parser.parse_args()
    print(
        "| hidden | layers | init | head | TF-IDF | adapter | gain / SE | one-SE choice | s (5 trainings) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.config:
            h, n_layers, init = config.split(",")
            print(
                row(int(h), int(n_layers), float(init), args.per_class, args.lora_lr, Path(tmp)), flush=True
            )


if __name__ == "__main__":
    main()
