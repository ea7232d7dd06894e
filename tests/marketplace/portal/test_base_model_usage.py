"""The 'Use this learnware' Python snippet of a base model runs as written on its package and pools as
its manifest declares (compared with an independent computation)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from marketplace.portal.usage import UsageContext, cli_snippet, python_snippet
from tests.support.base_model_packages import base_model_folder, base_model_package

ROOT = Path(__file__).resolve().parents[3]


def _context(pooling: str) -> UsageContext:
    return UsageContext(
        site_url="http://market.test",
        learnware_id=7,
        number=1,
        slug="tiny-bert",
        sha256="0" * 64,
        kind="base_model",
        modality="text",
        task="embedding",
        artifact_format="hf_safetensors",
        manifest={"pooling": pooling, "output": {"dim": 32}},
    )


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_the_base_model_snippet_runs_on_its_package(tmp_path, pooling):
    folder = base_model_folder(tmp_path / "src", seed=6)
    (tmp_path / "package.zip").write_bytes(base_model_package(folder, pooling=pooling))
    code = python_snippet(_context(pooling))
    assert code.count("local_files_only=True") == 2  # never a Hub download, even without the folder
    assert 'folder = Path("base", "model").resolve()' in code  # an absolute path is never a Hub id
    assert "trust_remote_code=False" in code and "lwm download 7 --version 1" in cli_snippet(
        _context(pooling)
    )
    # Everything but the download (no server here): the package is already on disk.
    start = code.index("zipfile.ZipFile(package.path)")
    runnable = (
        "import zipfile\nfrom pathlib import Path\nimport torch\n"
        "from transformers import AutoModel, AutoTokenizer\n"
        "class package:\n    path = 'package.zip'\n" + code[start:] + "torch.save(embeddings, 'out.pt')\n"
    )
    (tmp_path / "snippet.py").write_text(runnable)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "snippet.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "torch.Size([2, 32])" in done.stdout
    got = torch.load(tmp_path / "out.pt", weights_only=True)

    from transformers import BertModel, BertTokenizer

    tokenizer = BertTokenizer(vocab=str(folder / "vocab.txt"))
    model = BertModel.from_pretrained(str(folder), local_files_only=True).eval()
    texts = ["Shares in the company rose after strong results.", "The striker scored twice."]
    with torch.no_grad():  # one text at a time: no padding
        states = [model(**tokenizer(t, return_tensors="pt")).last_hidden_state[0] for t in texts]
    expected = torch.stack([s[0] if pooling == "cls" else s.mean(0) for s in states])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("base", ["all-minilm-l6-v2", "org/other-encoder"])
def test_the_adapter_snippet_never_downloads_its_base_or_takes_the_adapter_for_a_hub_id(base):
    context = UsageContext(
        site_url="http://market.test",
        learnware_id=8,
        number=1,
        slug="lora-sport",
        sha256="0" * 64,
        kind="adapter",
        modality="text",
        task="embedding",
        artifact_format="peft_safetensors",
        manifest={},
        base_model_key=base,
    )
    code = python_snippet(context)
    assert code.count("from_pretrained(base_path, local_files_only=True)") == 2
    assert 'PeftModel.from_pretrained(base, str(Path("adapter").resolve()))' in code
    compile(code, "snippet.py", "exec")  # what the page shows is valid Python


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_the_image_base_model_snippet_runs_on_its_package(tmp_path, pooling):
    from tests.support.image_base_models import image_base_model_folder, image_base_model_package

    folder = image_base_model_folder(tmp_path / "src", seed=4)
    (tmp_path / "package.zip").write_bytes(image_base_model_package(folder, pooling=pooling))
    context = UsageContext(
        site_url="http://market.test",
        learnware_id=9,
        number=1,
        slug="tiny-vit",
        sha256="0" * 64,
        kind="base_model",
        modality="image",
        task="embedding",
        artifact_format="hf_safetensors",
        manifest={"pooling": pooling, "input": {"shape": [1, 8, 8]}, "output": {"dim": 32}},
    )
    code = python_snippet(context)
    assert "local_files_only=True" in code and "trust_remote_code=False" in code
    assert "AutoImageProcessor" not in code  # the upload's processor config is read as data only
    start = code.index("zipfile.ZipFile(package.path)")
    runnable = (
        "import json\nimport zipfile\nfrom pathlib import Path\n"
        "import torch\nimport torch.nn.functional as F\n"
        "from transformers import AutoModel\ntorch.manual_seed(0)\n"
        "class package:\n    path = 'package.zip'\n"
        + code[start:].replace(
            "images = (images - mean) / std", "raw = images.clone()\n    images = (images - mean) / std"
        )
        + "torch.save({'raw': raw, 'embeddings': embeddings}, 'out.pt')\n"
    )
    (tmp_path / "snippet.py").write_text(runnable)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "snippet.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "torch.Size([2, 32])" in done.stdout
    got = torch.load(tmp_path / "out.pt", weights_only=True)

    # The market's own preprocessing and probe pooling on the same images give the same embeddings.
    from specs.base_models import inspect_model_folder
    from specs.base_models.images import embed_image_probe

    expected = embed_image_probe(inspect_model_folder(folder), got["raw"].numpy(), pooling)
    torch.testing.assert_close(got["embeddings"], torch.from_numpy(expected), rtol=1e-4, atol=1e-5)
