"""Sandbox overhead: p50/p95 seconds of one sandboxed call of a small table model.

Usage: ``.venv/bin/python benchmarks/sandbox_overhead.py [--n 20] [--gap 0] [--mode bwrap unisolated]``
and, for the fork server this replaced, run it from the old checkout with ``--mode old``
(``PYTHONPATH=<old checkout> .venv/bin/python benchmarks/sandbox_overhead.py --mode old``).

One call = ``run_model`` of a TorchScript ``Linear(8, 3)`` on 64 rows (the size of a
publish probe), measured in the worker, after one untimed warm-up call (which starts the
fork server). ``--gap`` is the pause between calls (0: back-to-back, as the reuse pipeline
runs members). Modes:

* ``bwrap``: this tree: the fork server inside bubblewrap, each call a fork in its own
  nested namespaces with the seccomp filter;
* ``unisolated``: this tree, the same fork server without any namespaces
  (``LWM_SANDBOX_ALLOW_UNISOLATED=true``, bwrap hidden from PATH);
* ``old``: the fork server of the checkout on PYTHONPATH (before issue 15: no bwrap).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import time

import numpy as np


def _model_bytes() -> bytes:
    import torch

    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(torch.nn.Linear(8, 3).eval(), torch.zeros(1, 8)), buffer)
    return buffer.getvalue()


def measure(n: int, gap: float) -> list[float]:
    from workers.sandbox import SandboxLimits, run_model

    model, x = _model_bytes(), np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    limits = SandboxLimits(memory_mb=1024, cpu_seconds=30, wall_seconds=60)
    run_model(model, x, limits=limits)  # warm-up: starts the fork server
    times = []
    for _ in range(n):
        time.sleep(gap)
        started = time.perf_counter()
        run_model(model, x, limits=limits)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--gap", type=float, nargs="+", default=[0.0])
    parser.add_argument("--mode", nargs="+", default=["bwrap", "unisolated"])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one mode, one gap, in this process: print the timings
        print(" ".join(f"{t:.4f}" for t in measure(args.n, args.gap[0])))
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    print(
        f"{'mode':<11} {'gap s':>6} {'p50 s':>7} {'p95 s':>7} {'max s':>7}  (n={args.n}, {os.cpu_count()} "
        "cpus)"
    )
    for mode in args.mode:
        for gap in args.gap:
            env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", root)}
            if mode == "unisolated":
                env.update(LWM_SANDBOX_ALLOW_UNISOLATED="true", PATH="/nonexistent")
            out = subprocess.run(
                [sys.executable, __file__, "--child", "--n", str(args.n), "--gap", str(gap)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            times = sorted(float(t) for t in out)
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            print(f"{mode:<11} {gap:>6.1f} {statistics.median(times):>7.3f} {p95:>7.3f} {times[-1]:>7.3f}")


if __name__ == "__main__":
    main()
