"""The anchor (`learnware` package) on a benchmark market's tasks, in its own venv
(setup_learnware_venv.sh): the arrays go to learnware_driver.py through NPZ files."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.markets.base import MarketData

HERE = Path(__file__).resolve().parent
TRAIN_ROWS = 1000


def venv_python() -> Path:
    out = subprocess.run([str(HERE / "setup_learnware_venv.sh")], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1]) / "bin" / "python"


def _flat(X: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(X.reshape(X.shape[0], -1), dtype=np.float64)


def run(market: MarketData, models: dict[str, bytes], tasks: list[dict[str, Any]], tmp: Path) -> None:
    names, classes = list(market.domains), market.classes
    payload: dict[str, Any] = {
        "domains": np.array(json.dumps(names)),
        "n_classes": np.array(len(classes)),
        "n_tasks": np.array(len(tasks)),
    }
    for i, d in enumerate(names):
        dom = market.domains[d]
        rows = np.random.default_rng(i).choice(
            dom.X_dev.shape[0], min(TRAIN_ROWS, dom.X_dev.shape[0]), replace=False
        )
        payload[f"train_{i}"] = _flat(dom.X_dev[rows])
        payload[f"model_{i}"] = np.frombuffer(models[d], dtype=np.uint8)
        payload[f"classes_{i}"] = np.array([classes.index(c) for c in dom.classes], dtype=np.int64)
    for t, task in enumerate(tasks):
        scale = task["units"] if task["units"] is not None else 1.0
        payload[f"task{t}_X"] = _flat(task["X"]) * scale  # the anchor sees the user's units as they are
        if task["kind"] == "mixture":
            # Its reusers get the user's true pair (an oracle choice, the anchor's best case).
            payload[f"task{t}_members"] = np.array([names.index(d) for d in task["mix"]], dtype=np.int64)
            payload[f"task{t}_Xl"] = _flat(task["X_l"]) * scale
            payload[f"task{t}_yl"] = np.array([classes.index(c) for c in task["y_l"]], dtype=np.int64)
    src, dst = tmp / f"anchor_{market.name}_in.npz", tmp / f"anchor_{market.name}_out.npz"
    np.savez(src, **payload)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH="", OMP_NUM_THREADS="1")
    subprocess.run(
        [str(venv_python()), str(HERE / "learnware_driver.py"), str(src), str(dst)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    with np.load(dst) as out:
        for t, task in enumerate(tasks):
            task["anchor_order"] = [names[i] for i in out[f"task{t}_order"]]
            task["anchor_mixture"] = {names[i] for i in out[f"task{t}_mixture"]}
            for reuser in ("job_selector", "averaging", "feature_augment"):
                if f"task{t}_{reuser}" in out.files:
                    task[f"anchor_acc_{reuser}"] = float(
                        np.mean(np.asarray(classes)[out[f"task{t}_{reuser}"]] == task["y"])
                    )
                if f"task{t}_{reuser}_error" in out.files:
                    task[f"anchor_error_{reuser}"] = str(out[f"task{t}_{reuser}_error"])
