"""The worker's embedding cache under the reuse pipeline's calls: every layer's states of adapters on a
published base (``base_layer_states``, sandboxed ``peft_lora`` calls), the base's pooled rows of the
user's texts (``base_encode``, sandboxed ``hf_encoder`` calls) and adapters on the MiniLM
(``minilm_layer_states``). A second run over the same texts makes no sandbox call (or no forward pass)
and returns identical arrays; another adapter, base or text misses; a damaged entry is recomputed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from specs import adapter_runtime
from specs.adapter_runtime import adapter_from_files
from specs.base_models import files_digest
from specs.token_limit import MAX_TOKENS
from tests.support.base_adapters import TEXTS, adapter_files, peft_layer_states, peft_lora_folder
from tests.support.base_model_packages import base_model_folder
from tests.support.packages import lora_files
from workers.pipelines import adapter_base, reuse_text
from workers.pipelines.reuse_base import PublishedBase, base_encode, base_layer_states


class SandboxCounter:
    """Wraps the real ``run_model``: counts calls and records the texts each one was sent."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.sent: list[list[str]] = []

    def __call__(self, files: Any, inputs: np.ndarray, **kwargs: Any) -> np.ndarray:
        self.sent.append([str(t) for t in inputs.tolist()])
        return self.run(files, inputs, **kwargs)


@pytest.fixture(autouse=True)
def own_cache(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"  # the cache lives under VAR_DIR/embeddings
    return Path(settings.VAR_DIR) / "embeddings"


@pytest.fixture
def sandbox(monkeypatch) -> SandboxCounter:
    counter = SandboxCounter(adapter_base.run_model)
    monkeypatch.setattr(adapter_base, "run_model", counter)
    return counter


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache-bases")
    base = base_model_folder(root / "base", "bert", seed=4)
    return {
        "base": base,
        "other_base": base_model_folder(root / "other", "bert", seed=8),
        "lora": peft_lora_folder(base, root / "lora", seed=5),
        "lora2": peft_lora_folder(base, root / "lora2", seed=6),
    }


def published(folder: Path) -> PublishedBase:
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    return PublishedBase(
        key="tiny-bert",
        name="tiny",
        learnware_id=1,
        version=1,
        version_id=1,
        package_sha256="0" * 64,
        folder_digest=files_digest(files),
        pooling="mean",
        dim=_hidden(files),
        files=files,
    )


def _hidden(files: dict[str, bytes]) -> int:
    return int(json.loads(files["config.json"])["hidden_size"])


def lora(folder: Path) -> Any:
    return adapter_from_files(adapter_files(folder), base_model_key="tiny-bert")


def stacked(states: list[np.ndarray]) -> np.ndarray:
    return np.stack(states, axis=1)


def test_a_second_run_over_the_same_texts_and_adapters_makes_no_sandbox_call(folders, sandbox):
    base = published(folders["base"])
    first = {
        name: stacked(base_layer_states(base, TEXTS, m))
        for name, m in (("lora", lora(folders["lora"])), ("alone", None))
    }
    assert len(sandbox.sent) == 2
    # What the sandbox computed is PEFT's own computation (an independent check of what is cached).
    assert_allclose(
        first["lora"], peft_layer_states(folders["base"], folders["lora"], TEXTS, "mean"), atol=5e-5
    )
    assert_allclose(first["alone"], peft_layer_states(folders["base"], None, TEXTS, "mean"), atol=5e-5)
    sandbox.sent.clear()
    again = {
        name: stacked(base_layer_states(base, TEXTS, m))
        for name, m in (("lora", lora(folders["lora"])), ("alone", None))
    }
    assert sandbox.sent == []
    for name in first:
        assert_array_equal(again[name], first[name])
        assert again[name].dtype == np.float64


def test_another_adapter_base_or_text_misses(folders, sandbox):
    base = published(folders["base"])
    base_layer_states(base, TEXTS, lora(folders["lora"]))
    sandbox.sent.clear()
    other = stacked(base_layer_states(base, TEXTS, lora(folders["lora2"])))
    assert sandbox.sent == [TEXTS]
    assert_allclose(other, peft_layer_states(folders["base"], folders["lora2"], TEXTS, "mean"), atol=5e-5)
    sandbox.sent.clear()
    base_layer_states(published(folders["other_base"]), TEXTS, lora(folders["lora"]))
    assert sandbox.sent == [TEXTS]
    sandbox.sent.clear()
    more = [*TEXTS, "a text no run has seen"]
    states = stacked(base_layer_states(base, more, lora(folders["lora"])))
    assert sandbox.sent == [["a text no run has seen"]]
    assert_allclose(states, peft_layer_states(folders["base"], folders["lora"], more, "mean"), atol=5e-5)


def test_a_truncated_or_wrong_shape_entry_is_recomputed(folders, sandbox, own_cache):
    base = published(folders["base"])
    first = stacked(base_layer_states(base, TEXTS, None))
    files = {p.stem: p for p in own_cache.rglob("*.npy")}
    truncated = files[hashlib.sha256(TEXTS[1].encode()).hexdigest()]
    truncated.write_bytes(truncated.read_bytes()[:40])
    np.save(files[hashlib.sha256(TEXTS[3].encode()).hexdigest()], np.zeros((2, 3), dtype=np.float32))
    sandbox.sent.clear()
    again = stacked(base_layer_states(base, TEXTS, None))
    assert sandbox.sent == [[TEXTS[1], TEXTS[3]]]
    assert_allclose(again, first, atol=1e-6)  # two rows recomputed in another batch
    sandbox.sent.clear()
    base_layer_states(base, TEXTS, None)
    assert sandbox.sent == []  # rewritten


def test_the_spec_stages_base_embedding_is_cached(folders, sandbox):
    base = published(folders["base"])
    space = SimpleNamespace(key="text-tiny-bert", dim=base.dim)
    first = base_encode(base, space, TEXTS)
    assert len(sandbox.sent) == 1
    direct = adapter_base.encode_with_base(base.files, "mean", TEXTS, key=base.key, space=space)  # uncached
    assert_array_equal(first, direct)
    assert_allclose(np.linalg.norm(first, axis=1), 1.0)
    sandbox.sent.clear()
    assert_array_equal(base_encode(base, space, TEXTS), first)
    assert sandbox.sent == []
    cls = PublishedBase(**{**base.__dict__, "pooling": "cls"})  # another pooling is another entry
    assert not np.allclose(base_encode(cls, space, TEXTS), first)
    assert sandbox.sent == [TEXTS]


def test_adapters_on_the_minilm_run_once_across_submissions(monkeypatch):
    runs: list[list[str]] = []
    real = reuse_text.layer_states

    def counted(texts, delta=None, modules=()):
        runs.append(list(texts))
        return real(texts, delta, modules)

    monkeypatch.setattr(reuse_text, "layer_states", counted)
    model = reuse_text.adapter_from_files(lora_files(seed=3), base_model_key=adapter_runtime.ADAPTER_BASE)
    first = stacked(reuse_text.LayerCache().states("a", TEXTS, model))
    assert runs == [TEXTS]
    delta, modules = adapter_runtime.delta_of(model)
    independent = stacked(adapter_runtime.layer_states(reuse_text.base_model(), TEXTS, delta, modules))
    assert_allclose(first, independent, atol=1e-6)  # stored as float32
    again = stacked(reuse_text.LayerCache().states("a", TEXTS, model))  # a later submission's run
    assert runs == [TEXTS]
    assert_array_equal(again, first)
    stacked(reuse_text.LayerCache().states("base", TEXTS, None))
    assert runs == [TEXTS, TEXTS]


def test_the_worker_keeps_one_cache_per_process_which_walks_its_folder_once(own_cache, settings, tmp_path):
    from workers.pipelines.embedding_cache import cached_text_rows, embedding_cache

    def rows(text: str) -> np.ndarray:
        return cached_text_rows(
            base="folder-x",
            adapter="none",
            pooling="mean",
            call="pooled",
            max_length=MAX_TOKENS,
            texts=[text],
            shape=(2,),
            compute=lambda missing: np.array([[len(t), 1.0] for t in missing]),
        )

    cache = embedding_cache()
    for text in ("a", "bb", "ccc"):  # three calls, each with a miss and a write
        assert_array_equal(rows(text), [[len(text), 1.0]])
    assert embedding_cache() is cache and cache.scans == 1  # not one folder walk per call
    assert len(cache) == 0 and len(list(own_cache.rglob("*.npy"))) == 3  # no memory layer: on disk only
    settings.VAR_DIR = tmp_path / "elsewhere"
    assert embedding_cache() is not cache and embedding_cache() is embedding_cache()
