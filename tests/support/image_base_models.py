"""Tiny randomly initialised ViT image encoders saved as Hugging Face folders (no download).

``image_base_model_folder`` writes ``config.json``, ``model.safetensors`` and
``preprocessor_config.json`` as an uploaded image base model would. ``blind=True`` zeroes the patch
projection, so every image gets the same embedding: a control that carries no information about
its input, which model selection must rank below an informative model. ``IMAGE_BROKEN`` maps each
refusal to its spoiler and the code the sandbox answers with.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.specs.base_models.tiny_models import edit_json
from tests.support.packages import manifest_yaml, zip_bytes

IMAGE_SIZE = 8  # sklearn digits are 8x8


def image_base_model_folder(
    folder: Path, *, seed: int = 0, blind: bool = False, image_size: int = IMAGE_SIZE, channels: int = 1
) -> Path:
    import torch
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(seed)
    config = ViTConfig(
        image_size=image_size,
        patch_size=4,
        num_channels=channels,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        architectures=["ViTModel"],
    )
    model = ViTModel(config, add_pooling_layer=False)
    if blind:
        with torch.no_grad():
            model.embeddings.patch_embeddings.projection.weight.zero_()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder), safe_serialization=True)
    preprocessor = {
        "image_processor_type": "ViTImageProcessor",
        "do_normalize": True,
        "image_mean": [0.5] * channels,
        "image_std": [0.25] * channels,
        "size": {"height": image_size, "width": image_size},
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return folder


def image_base_model_package(folder: Path, *, name: str = "tiny-vit", pooling: str = "mean") -> bytes:
    fields = {
        "name": name,
        "description": "A tiny random ViT image encoder.",
        "kind": "base_model",
        "modality": "image",
        "task": "embedding",
        "pooling": pooling,
        "input": {"shape": [1, IMAGE_SIZE, IMAGE_SIZE]},
        "output": {"dim": 32},
        "license": "Apache-2.0",
        "tags": ["test", "base-model"],
    }
    files: dict[str, bytes | str] = {"learnware.yaml": manifest_yaml(**fields)}
    files.update({f"model/{p.name}": p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()})
    return zip_bytes(files)


def _foreign_weights(folder: Path) -> None:
    # Another framework's weights (a pickle .bin is refused earlier, at upload: test_publish_base_model).
    (folder / "flax_model.msgpack").write_bytes(b"\x81\xa1a\x01")


def _processor_auto_map(folder: Path) -> None:
    edit_json(folder / "preprocessor_config.json", auto_map={"AutoImageProcessor": "proc.Evil"})


def _no_processor(folder: Path) -> None:
    (folder / "preprocessor_config.json").unlink()


def _size_disagrees(folder: Path) -> None:
    edit_json(folder / "preprocessor_config.json", size={"height": 16, "width": 16})


def _bad_std(folder: Path) -> None:
    edit_json(folder / "preprocessor_config.json", image_std=[0.0])


def _cnn(folder: Path) -> None:
    edit_json(folder / "config.json", model_type="resnet", architectures=["ResNetModel"])


def _config_wider(folder: Path) -> None:
    edit_json(folder / "config.json", hidden_size=48, intermediate_size=96)


def _python_file(folder: Path) -> None:
    (folder / "image_processing_evil.py").write_text("open('/tmp/lwm-evil-marker', 'w').write('ran')\n")


Spoiler = Callable[[Path], None]
IMAGE_BROKEN: dict[str, tuple[Spoiler, str]] = {
    "foreign-weights": (_foreign_weights, "upload:user:base-model-weights"),
    "processor-auto-map": (_processor_auto_map, "upload:user:base-model-remote-code"),
    "python-file": (_python_file, "upload:user:base-model-remote-code"),
    "no-preprocessor": (_no_processor, "upload:user:base-model-folder"),
    "size-disagrees": (_size_disagrees, "upload:user:base-model-folder"),
    "zero-std": (_bad_std, "upload:user:base-model-folder"),
    "not-allow-listed-cnn": (_cnn, "upload:user:base-model-architecture"),
    "config-wider-than-weights": (_config_wider, "upload:user:base-model-mismatch"),
}


def digits_images(n_per_class: int = 15, classes: tuple[int, ...] = (0, 1, 7)) -> tuple[Any, Any]:
    """sklearn's 8x8 digits as (n, 1, 8, 8) uint8 images and their labels, ``n_per_class`` each."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    rows = np.concatenate([np.flatnonzero(digits.target == c)[:n_per_class] for c in classes])
    images = np.round(digits.images[rows] * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return images, digits.target[rows].astype(str)
