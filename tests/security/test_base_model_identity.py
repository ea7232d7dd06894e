"""An uploaded base model is checked and probed in the sandbox as root and as an unprivileged worker.

The same folders as ``tests/workers/test_base_model_sandbox.py``: the good one's embeddings must
equal an in-process computation, and each broken one must be refused with its code, whichever
account the worker runs as (``worker_identity``).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from numpy.testing import assert_allclose

from tests.security.base_model_runner import TEXTS
from tests.security.conftest import ROOT, WORKER_USER
from tests.support.base_model_packages import BROKEN, base_model_folder


def _mean_embeddings(folder: Path) -> np.ndarray:
    from transformers import BertModel, BertTokenizer

    tokenizer = BertTokenizer(vocab=str(folder / "vocab.txt"))
    model = BertModel.from_pretrained(str(folder), local_files_only=True).eval()
    with torch.no_grad():  # one text at a time: no padding, the mean is over all its tokens
        rows = [model(**tokenizer(str(t), return_tensors="pt")).last_hidden_state[0].mean(0) for t in TEXTS]
    return torch.stack(rows).numpy()


def test_base_model_checks_hold_for_every_worker_identity(worker_identity):
    # A fresh folder under /tmp (pytest's own is root-only), handed to the worker's account.
    scratch = Path(tempfile.mkdtemp(prefix="lwm-base-model-"))
    try:
        folders = {"good": base_model_folder(scratch / "good", seed=5)}
        for case, (spoil, _) in BROKEN.items():
            folders[case] = Path(shutil.copytree(folders["good"], scratch / case))
            spoil(folders[case])
        if worker_identity:
            account = pwd.getpwnam(WORKER_USER)
            for path in [scratch, *scratch.rglob("*")]:
                os.chown(path, account.pw_uid, account.pw_gid)
        spec = {"folders": {k: str(v) for k, v in folders.items()}, "out": str(scratch / "good.npy")}
        proc = subprocess.run(
            [*worker_identity, sys.executable, "-m", "tests.security.base_model_runner", json.dumps(spec)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(scratch)},
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        assert (report["user"] != 0) == bool(worker_identity)  # it ran as the account we meant
        expected = {"good": "ok", **{case: code for case, (_, code) in BROKEN.items()}}
        assert report["results"] == expected
        got = np.load(scratch / "good.npy", allow_pickle=False)
        assert_allclose(got, _mean_embeddings(folders["good"]), rtol=1e-4, atol=1e-5)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
