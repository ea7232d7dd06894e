"""Run an uploaded base model through ``run_model`` as whoever starts this (see test_base_model_identity).

``python -m tests.security.base_model_runner SPEC_JSON`` with ``{"folders": {case: path}, "out": path}``:
each folder is probed with mean pooling; prints one JSON object {"user": uid, "results": {case: code or
"ok"}} and saves the good folder's embeddings (``.npy``) to ``out``.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from workers.sandbox import SandboxRefused, run_model

TEXTS = np.array(["the market is up", "a film award for the band", "the team win the cup final"])


def main() -> None:
    spec = json.loads(sys.argv[1])
    results: dict[str, str] = {}
    for case, folder in spec["folders"].items():
        try:
            out = run_model(folder, TEXTS, kind="hf_encoder", pooling="mean")
        except SandboxRefused as exc:
            results[case] = exc.code
        else:
            results[case] = "ok"
            np.save(spec["out"], out, allow_pickle=False)
    print(json.dumps({"user": os.geteuid(), "results": results}))


if __name__ == "__main__":
    main()
