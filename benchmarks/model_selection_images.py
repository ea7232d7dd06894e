"""Choosing an image base model: our layer-wise ranking vs a linear probe, on digits and Fashion-MNIST.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python benchmarks/model_selection_images.py
    ... --per-class 60 --seed 0

Candidates: no pretrained ViT is available offline (EfficientNet-Lite0 is a CNN, which the market does not
allow-list: its stages differ in width), so they are ViTs randomly initialised from configs that differ in
what they can see — the side images are resized to (28, 16 or 8 pixels), the patch size, the width and
depth — plus a control whose patch projection is zeroed (blind: every image embeds the same). Written as
Hugging Face folders (safetensors + preprocessor_config.json) and embedded by
:class:`specs.base_models.images.ImageLayerEmbedder`, the code the sandbox runs. Tasks: sklearn digits (all
ten, and 3 vs 8 vs 5), Fashion-MNIST (all ten classes, and the four upper-body garments) from
``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``); ``--per-class`` images a
class, split in stratified halves: the first is the labelled sample every estimator sees, the second where a
logistic-regression probe (fitted on the first half) is scored. Ground truth: that probe's accuracy on the
mean of the layers' embeddings ("mean") and on the best layer ("best"). Printed: Kendall tau (tau-b) of each
estimator with the probe per task, the probe accuracies, seconds per candidate.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from model_selection import probe_accuracy, split_half, tau  # noqa: E402 - the text benchmark's helpers

FASHION = Path("/usr/share/datasets/fashion-mnist")
ESTIMATORS = ("logme", "hscore", "knn")
# name -> (image_size, patch_size, hidden_size, layers, blind)
CANDIDATES = {
    "vit-28px-p4-w64-l4": (28, 4, 64, 4, False),
    "vit-28px-p7-w32-l2": (28, 7, 32, 2, False),
    "vit-28px-p14-w16-l2": (28, 14, 16, 2, False),
    "vit-16px-p4-w32-l2": (16, 4, 32, 2, False),
    "vit-8px-p4-w32-l2": (8, 4, 32, 2, False),
    "vit-8px-p8-w16-l2": (8, 8, 16, 2, False),
    "vit-28px-p7-w32-l2-blind": (28, 7, 32, 2, True),
}


def write_candidates(root: Path, seed: int) -> dict[str, Path]:
    import torch
    from transformers import ViTConfig, ViTModel

    folders = {}
    for i, (name, (size, patch, width, layers, blind)) in enumerate(CANDIDATES.items()):
        torch.manual_seed(seed * 100 + i)
        config = ViTConfig(
            image_size=size,
            patch_size=patch,
            num_channels=1,
            hidden_size=width,
            num_hidden_layers=layers,
            num_attention_heads=2,
            intermediate_size=2 * width,
            architectures=["ViTModel"],
        )
        model = ViTModel(config, add_pooling_layer=False)
        if blind:
            with torch.no_grad():
                model.embeddings.patch_embeddings.projection.weight.zero_()
        folder = root / name
        model.save_pretrained(str(folder), safe_serialization=True)
        processor = {"image_mean": [0.5], "image_std": [0.5], "size": {"height": size, "width": size}}
        (folder / "preprocessor_config.json").write_text(json.dumps(processor))
        folders[name] = folder
    return folders


def _idx(path: Path, offset: int) -> np.ndarray:
    return np.frombuffer(gzip.open(path).read(), dtype=np.uint8, offset=offset)


def tasks(per_class: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (images (n, 1, H, W) float32 in [0, 1], labels 0..k-1), ``per_class`` a class (seeded)."""
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)

    def draw(images: np.ndarray, labels: np.ndarray, classes: list[int]) -> tuple[np.ndarray, np.ndarray]:
        rows = np.concatenate(
            [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in classes]
        )
        return images[rows], np.unique(labels[rows], return_inverse=True)[1]

    digits = load_digits()
    d_images = (digits.images / 16.0).astype(np.float32)[:, None]
    out = {
        "digits-10": draw(d_images, digits.target, list(range(10))),
        "digits-3-5-8": draw(d_images, digits.target, [3, 5, 8]),
    }
    if (FASHION / "train-images-idx3-ubyte.gz").is_file():
        f_images = (_idx(FASHION / "train-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28) / 255.0).astype(
            np.float32
        )
        f_labels = _idx(FASHION / "train-labels-idx1-ubyte.gz", 8).astype(np.int64)
        out["fashion-10"] = draw(f_images, f_labels, list(range(10)))
        out["fashion-tops"] = draw(f_images, f_labels, [0, 2, 4, 6])  # t-shirt, pullover, coat, shirt
    else:
        print(f"(no {FASHION}: Fashion-MNIST tasks skipped; apt-get install dataset-fashion-mnist)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from specs.base_models import EmbeddingCache, inspect_model_folder, rank_base_models
    from specs.base_models.images import ImageLayerEmbedder

    with tempfile.TemporaryDirectory() as tmp:
        folders = write_candidates(Path(tmp), args.seed)
        cache = EmbeddingCache()
        embedders = {n: ImageLayerEmbedder(inspect_model_folder(f), cache=cache) for n, f in folders.items()}
        seconds = dict.fromkeys(folders, 0.0)
        summary: dict[str, list[float]] = {f"{e}/{a}": [] for e in ESTIMATORS for a in ("mean", "best")}
        # The blind control is easy to put last; tau over the informative candidates alone is the harder test.
        sighted: dict[str, list[float]] = {k: [] for k in summary}
        for task, (images, y) in tasks(args.per_class, args.seed).items():
            sample, held_out = split_half(y, args.seed)
            start = time.perf_counter()
            ranking = rank_base_models(embedders, images[sample], y[sample], estimators=ESTIMATORS)
            probes = {}
            for name, embedder in embedders.items():
                layers = embedder.embed(images).layers.astype(np.float64)
                accuracies = [
                    probe_accuracy(F[sample], y[sample], F[held_out], y[held_out])
                    for F in (layers.mean(axis=0), *layers)
                ]
                probes[name] = {"mean": accuracies[0], "best": max(accuracies[1:])}
            for c in ranking.candidates:
                seconds[c.name] += c.embed_seconds + c.score_seconds
            names = list(folders)
            by_name = {c.name: c for c in ranking.candidates}
            took = time.perf_counter() - start
            print(f"\n{task}: {len(sample)} labelled, {len(held_out)} held out ({took:.1f} s)")
            print(
                "  probe accuracy (layer mean / best layer): "
                + ", ".join(f"{n} {probes[n]['mean']:.3f}/{probes[n]['best']:.3f}" for n in names)
            )
            print(f"  our ranking (combined, layer mean): {ranking.names}")
            for e in ESTIMATORS:
                row = []
                for agg in ("mean", "best"):
                    value = tau(
                        [by_name[n].scores[e].value(agg) for n in names], [probes[n][agg] for n in names]
                    )
                    summary[f"{e}/{agg}"].append(value)
                    seen = [n for n in names if not n.endswith("blind")]
                    sighted[f"{e}/{agg}"].append(
                        tau([by_name[n].scores[e].value(agg) for n in seen], [probes[n][agg] for n in seen])
                    )
                    row.append(f"{agg} {value:+.3f}")
                print(f"  Kendall tau {e:6s}: " + ", ".join(row))
        print(
            "\nmean Kendall tau over tasks: "
            + ", ".join(f"{k} {np.nanmean(v):+.3f}" for k, v in summary.items())
        )
        print(
            "mean Kendall tau without the blind control: "
            + ", ".join(f"{k} {np.nanmean(v):+.3f}" for k, v in sighted.items())
        )
        print(
            "seconds per candidate (first embedding pass + scoring, all tasks): "
            + ", ".join(f"{n} {s:.2f}" for n, s in seconds.items())
        )


if __name__ == "__main__":
    main()
