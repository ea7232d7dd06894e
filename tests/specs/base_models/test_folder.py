"""A base-model folder is accepted only when loading it can run no code of its own and its weights
are exactly what its config builds; each refusal is its own named error."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from specs.base_models import (
    BaseModelFolderError,
    BaseModelLimits,
    RemoteCodeError,
    UnknownArchitectureError,
    UnsafeWeightsError,
    WeightsMismatchError,
    files_digest,
    folder_digest,
    inspect_model_folder,
    load_text_encoder,
)
from tests.specs.base_models.tiny_models import edit_json, make_folder, make_model, save_folder

FAMILIES = ["bert", "roberta", "mpnet", "distilbert", "electra", "deberta-v2"]


class _TouchOnUnpickle:
    """Unpickling this creates ``path``: proof that a loader ran the pickle."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.path),))  # type: ignore[return-value]


@pytest.mark.parametrize("family", FAMILIES)
def test_each_allow_listed_family_is_accepted_and_loads(tmp_path: Path, family: str) -> None:
    folder = inspect_model_folder(make_folder(tmp_path / family, family))
    weights = load_file(str(tmp_path / family / "model.safetensors"))
    assert folder.model_type == family
    assert (folder.num_layers, folder.hidden_size) == (2, 32)
    assert folder.num_parameters == sum(t.numel() for t in weights.values())
    _, model = load_text_encoder(folder)
    state = model.state_dict()
    # Every loaded tensor is the file's own (nothing was re-initialised).
    for name, tensor in weights.items():
        if name in state:
            assert torch.equal(state[name], tensor), name


def test_digest_follows_the_weights_and_the_tokenizer(tmp_path: Path) -> None:
    a = inspect_model_folder(make_folder(tmp_path / "a", seed=0)).digest
    assert inspect_model_folder(make_folder(tmp_path / "a2", seed=0)).digest == a
    assert inspect_model_folder(make_folder(tmp_path / "b", seed=1)).digest != a
    vocab = tmp_path / "a2" / "vocab.txt"
    vocab.write_text(vocab.read_text(encoding="utf-8") + "extra\n", encoding="utf-8")
    assert inspect_model_folder(tmp_path / "a2").digest != a


def test_the_digest_of_files_in_memory_is_the_folder_s(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "a", seed=0)
    files = {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()}
    assert files_digest(files) == folder_digest(root) == inspect_model_folder(root).digest
    # Only the folder's model files count, as for a folder on disk.
    assert files_digest({**files, "README.md": b"notes"}) == folder_digest(root)
    changed = {**files, "vocab.txt": files["vocab.txt"] + b"extra\n"}
    assert files_digest(changed) != folder_digest(root)


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "tf_model.h5", "flax_model.msgpack"])
def test_a_weight_file_other_than_safetensors_is_refused_unread(tmp_path: Path, name: str) -> None:
    root = make_folder(tmp_path / "m")
    marker = tmp_path / "unpickled"
    (root / name).write_bytes(pickle.dumps(_TouchOnUnpickle(marker)))
    with pytest.raises(UnsafeWeightsError, match=name) as caught:
        inspect_model_folder(root)
    assert caught.value.code == "spec:base-model-weights"
    assert caught.value.details == {"file": name}
    assert not marker.exists()


def test_sharded_weights_and_missing_weights_are_refused(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "m")
    (root / "model.safetensors.index.json").write_text("{}", encoding="utf-8")
    with pytest.raises(UnsafeWeightsError, match="shards"):
        inspect_model_folder(root)
    (root / "model.safetensors.index.json").unlink()
    (root / "model.safetensors").unlink()
    with pytest.raises(BaseModelFolderError, match="no model.safetensors"):
        inspect_model_folder(root)


@pytest.mark.parametrize("config_file", ["config.json", "tokenizer_config.json"])
def test_auto_map_is_refused(tmp_path: Path, config_file: str) -> None:
    root = make_folder(tmp_path / "m")
    edit_json(root / config_file, auto_map={"AutoModel": "modeling_evil.EvilModel"})
    with pytest.raises(RemoteCodeError, match="auto_map") as caught:
        inspect_model_folder(root)
    assert caught.value.code == "spec:base-model-remote-code"
    assert caught.value.details["file"] == config_file


def test_a_python_file_is_refused(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "m")
    (root / "modeling_evil.py").write_text("raise SystemExit('ran')\n", encoding="utf-8")
    with pytest.raises(RemoteCodeError, match="modeling_evil.py"):
        inspect_model_folder(root)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"model_type": "llama"}, "model_type 'llama'"),
        ({"model_type": None}, "model_type None"),
        ({"architectures": ["LlamaModel"]}, "'LlamaModel'"),
        ({"architectures": ["BertEvilModel"]}, "'BertEvilModel'"),
        ({"architectures": ["RobertaModel"]}, "'RobertaModel'"),  # another allowed family's class
        ({"architectures": "BertModel"}, "list of class names"),
    ],
)
def test_unknown_architectures_are_refused(tmp_path: Path, changes: dict[str, object], match: str) -> None:
    root = make_folder(tmp_path / "m")
    edit_json(root / "config.json", **changes)
    with pytest.raises(UnknownArchitectureError, match=match) as caught:
        inspect_model_folder(root)
    assert caught.value.code == "spec:base-model-architecture"


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"num_hidden_layers": 3}, "missing_keys: encoder.layer.2"),
        ({"num_hidden_layers": 1}, "unexpected_keys: encoder.layer.1"),
        ({"hidden_size": 48}, "does not match config.json"),
        ({"vocab_size": 500}, "does not match config.json"),
    ],
)
def test_a_config_disagreeing_with_its_weights_is_refused(
    tmp_path: Path, changes: dict[str, object], match: str
) -> None:
    root = make_folder(tmp_path / "m")
    edit_json(root / "config.json", **changes)
    with pytest.raises(WeightsMismatchError, match=match) as caught:
        load_text_encoder(inspect_model_folder(root))
    assert caught.value.code == "spec:base-model-mismatch"


def test_task_heads_and_a_missing_pooler_are_not_mismatches(tmp_path: Path) -> None:
    from transformers import BertForMaskedLM

    masked_lm = BertForMaskedLM(make_model("bert").config)
    root = save_folder(masked_lm, tmp_path / "mlm")  # bert.* encoder + cls.* head, no pooler
    weights = load_file(str(root / "model.safetensors"))
    assert any(k.startswith("cls.") for k in weights) and not any("pooler" in k for k in weights)
    _, model = load_text_encoder(inspect_model_folder(root))
    assert torch.equal(
        model.embeddings.word_embeddings.weight, masked_lm.bert.embeddings.word_embeddings.weight
    )


def test_corrupt_weights_and_limits_are_refused(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "m")
    with pytest.raises(BaseModelFolderError, match="outside the limits"):
        inspect_model_folder(root, BaseModelLimits(max_layers=1))
    with pytest.raises(BaseModelFolderError, match="parameters"):
        inspect_model_folder(root, BaseModelLimits(max_parameters=1000))
    (root / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(WeightsMismatchError, match="not a readable safetensors"):
        inspect_model_folder(root)
    (root / "config.json").write_text(json.dumps([1, 2]), encoding="utf-8")
    with pytest.raises(BaseModelFolderError, match="not a JSON object"):
        inspect_model_folder(root)
    with pytest.raises(BaseModelFolderError, match="not a folder"):
        inspect_model_folder(tmp_path / "absent")


def test_a_folder_without_a_vocabulary_is_refused(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "m")
    for name in ("vocab.txt", "tokenizer.json"):
        (root / name).unlink()
    with pytest.raises(BaseModelFolderError, match="no tokenizer vocabulary"):
        inspect_model_folder(root)
