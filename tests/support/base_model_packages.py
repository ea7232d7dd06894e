"""``kind: base_model`` packages around tiny random encoders built from configs (no download).

``base_model_folder`` writes a Hugging Face folder (``tests/specs/base_models/tiny_models``), a
``spoil`` callback breaks it the way a hostile or careless upload would, and
``base_model_package`` zips it under ``model/`` with its manifest. ``BROKEN`` maps each refusal
to its spoiler and the code the sandbox answers with.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.specs.base_models.tiny_models import edit_json, make_folder
from tests.support.packages import manifest_yaml, zip_bytes


def base_model_folder(folder: Path, family: str = "bert", seed: int = 0, **overrides: Any) -> Path:
    """A tiny random encoder folder whose weights also carry the int64 ``embeddings.position_ids``
    buffer, as published BERT checkpoints do (the offline all-MiniLM-L6-v2's has it; transformers 5
    no longer writes it, and ignores it when loading)."""
    import torch
    from safetensors.torch import load_file, save_file

    make_folder(folder, family, seed, **overrides)
    tensors = load_file(str(folder / "model.safetensors"))
    positions = json.loads((folder / "config.json").read_text())["max_position_embeddings"]
    tensors["embeddings.position_ids"] = torch.arange(positions, dtype=torch.int64).unsqueeze(0)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def base_model_package(
    folder: Path,
    *,
    name: str = "tiny-bert",
    pooling: str = "mean",
    dim: int = 32,
    extra: dict[str, bytes | str] | None = None,
    manifest: dict[str, Any] | None = None,
) -> bytes:
    """The folder's files under ``model/`` plus ``learnware.yaml`` (and ``extra`` files as given)."""
    fields = {
        "name": name,
        "description": "A tiny random BERT text encoder.",
        "kind": "base_model",
        "modality": "text",
        "task": "embedding",
        "pooling": pooling,
        "input": {},
        "output": {"dim": dim},
        "license": "Apache-2.0",
        "tags": ["test", "base-model"],
        **(manifest or {}),
    }
    files: dict[str, bytes | str] = {"learnware.yaml": manifest_yaml(**fields)}
    files.update({f"model/{p.name}": p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()})
    files.update(extra or {})
    return zip_bytes(files)


class MarkerPayload:
    """Unpickling this writes ``path``: a pickle ``.bin`` that would prove code ran if loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path(self.path).write_text, ("unpickled",))


def pickle_weights(marker: Path) -> bytes:
    return pickle.dumps(MarkerPayload(str(marker)))


def _h5(folder: Path) -> None:
    (folder / "tf_model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)


def _auto_map(folder: Path) -> None:
    edit_json(folder / "config.json", auto_map={"AutoModel": "modeling_evil.EvilModel"})


def _python_file(folder: Path) -> None:
    (folder / "modeling_evil.py").write_text("open('/tmp/lwm-evil-marker', 'w').write('ran')\n")


def _unknown_architecture(folder: Path) -> None:
    edit_json(folder / "config.json", model_type="llama", architectures=["LlamaModel"])


def _foreign_class(folder: Path) -> None:
    edit_json(folder / "config.json", architectures=["LlamaModel"])


def _config_disagrees(folder: Path) -> None:
    # The weights are 32 wide; a config that says 48 builds tensors of other shapes.
    edit_json(folder / "config.json", hidden_size=48, intermediate_size=96)


def _extra_layer(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    edit_json(folder / "config.json", num_hidden_layers=config["num_hidden_layers"] + 1)


def _too_deep(folder: Path) -> None:
    edit_json(folder / "config.json", num_hidden_layers=49)  # BaseModelLimits.max_layers is 48


Spoiler = Callable[[Path], None]
# case -> (spoil the folder, the refusal code the sandbox answers with)
BROKEN: dict[str, tuple[Spoiler, str]] = {
    "h5-weights": (_h5, "upload:user:base-model-weights"),
    "auto-map": (_auto_map, "upload:user:base-model-remote-code"),
    "python-file": (_python_file, "upload:user:base-model-remote-code"),
    "unknown-model-type": (_unknown_architecture, "upload:user:base-model-architecture"),
    "foreign-architecture-class": (_foreign_class, "upload:user:base-model-architecture"),
    "config-wider-than-weights": (_config_disagrees, "upload:user:base-model-mismatch"),
    "config-deeper-than-weights": (_extra_layer, "upload:user:base-model-mismatch"),
    "over-the-layer-limit": (_too_deep, "upload:user:base-model-folder"),
}


def drop_registered_minilm() -> None:
    """Remove the market's own MiniLM learnware (migration 0009), for tests that count exactly the
    base models they publish; ``base_models_register()`` puts it back."""
    from marketplace.learnwares.models import Learnware
    from marketplace.learnwares.services.registered import MARKET_USERNAME

    Learnware.objects.filter(owner__username=MARKET_USERNAME, kind="base_model").delete()
