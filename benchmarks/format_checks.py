"""Cost of the format checks of docs/security.md ("Formats that cannot execute").

Usage:
    .venv/bin/python benchmarks/format_checks.py

Prints, for the issue-15 adapter that declares 400,000 tensors, the time of the safetensors
header check alone and of the whole upload check (``package_inspect``, which also unzips the
36 MB member), with the peak of traced allocations; and the extra cost of ``load_torchscript``
(archive check, load, operator walk) over a plain ``torch.jit.load`` on a traced Linear.
"""

from __future__ import annotations

import io
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from specs.packaging import InvalidPackageError, package_inspect  # noqa: E402
from specs.packaging.safetensors_header import check_safetensors_header  # noqa: E402
from specs.packaging.torchscript import load_torchscript  # noqa: E402
from tests.support import hostile_packages, packages  # noqa: E402


def timings(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(min, median) seconds of ``run``; a refusal counts as a finished run."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        try:
            run()
        except InvalidPackageError:
            pass
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    return seconds[0], seconds[len(seconds) // 2]


def main() -> None:
    weights = hostile_packages.many_tensors_safetensors(400_000)
    package = hostile_packages.adapter_package_with_weights(weights, name="wide")
    print(
        f"wide adapter: package {len(package) / 2**20:.2f} MiB, safetensors {len(weights) / 2**20:.1f} MiB, "
        "400000 tensors"
    )
    print(
        "header check alone   min {:.6f} s  median {:.6f} s".format(
            *timings(lambda: check_safetensors_header(weights), 5)
        )
    )
    print(
        "package_inspect      min {:.3f} s  median {:.3f} s".format(
            *timings(lambda: package_inspect(package), 5)
        )
    )
    tracemalloc.start()
    timings(lambda: package_inspect(package), 1)
    print(f"package_inspect peak traced allocations {tracemalloc.get_traced_memory()[1] / 2**20:.0f} MiB")
    tracemalloc.stop()
    raw = packages.linear_model_bytes(3, 2)
    print(
        "load_torchscript     min {:.5f} s  median {:.5f} s".format(
            *timings(lambda: load_torchscript(raw), 20)
        )
    )
    print(
        "torch.jit.load       min {:.5f} s  median {:.5f} s".format(
            *timings(lambda: torch.jit.load(io.BytesIO(raw)), 20)
        )
    )


if __name__ == "__main__":
    main()
