"""The 'Use this learnware' snippet of an adapter on a published base model downloads that base's
package (never a Hub id), pools as the base declares and gives PEFT's unit embeddings when run."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from marketplace.portal.usage import UsageContext, python_snippet
from tests.support.base_adapters import adapter_files, peft_embeddings, peft_lora_folder
from tests.support.base_model_packages import base_model_folder, base_model_package

ROOT = Path(__file__).resolve().parents[3]
TEXTS = ["Shares in the company rose after strong results.", "The striker scored twice."]


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_the_snippet_of_an_adapter_on_a_published_base_runs_as_peft(tmp_path, pooling):
    base = base_model_folder(tmp_path / "src", "roberta", seed=11)
    lora = peft_lora_folder(base, tmp_path / "lora", seed=12)
    (tmp_path / "base.zip").write_bytes(base_model_package(base, pooling=pooling))
    with zipfile.ZipFile(tmp_path / "adapter.zip", "w") as zf:
        for name, data in adapter_files(lora).items():
            zf.writestr(name, data)
    context = UsageContext(
        site_url="http://market.test",
        learnware_id=9,
        number=1,
        slug="lora-on-roberta",
        sha256="0" * 64,
        kind="adapter",
        modality="text",
        task="embedding",
        artifact_format="peft_lora",
        manifest={},
        base_model_key="alice-tiny-roberta",
        base_model_learnware_id=5,
        base_model_pooling=pooling,
    )
    code = python_snippet(context)
    assert 'market.download(5, dest="base-package")' in code and "alice-tiny-roberta'" not in code
    # Everything but the two downloads (no server here): the packages are already on disk.
    client_lines = ("market = Client(", "market.download(", "lwm_client")
    kept = [line for line in code.splitlines() if not any(c in line for c in client_lines)]
    runnable = (
        "class package:\n    path = 'adapter.zip'\nclass base_package:\n    path = 'base.zip'\n"
        + "\n".join(kept)
        + "\ntorch.save(embeddings, 'out.pt')\n"
    )
    (tmp_path / "snippet.py").write_text(runnable)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "snippet.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = torch.load(tmp_path / "out.pt", weights_only=True).double().numpy()
    np.testing.assert_allclose(got, peft_embeddings(base, lora, TEXTS, pooling), atol=2e-5)
