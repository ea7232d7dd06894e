"""The image side of a base-model folder: the allow-listed families and ``preprocessor_config.json``.

An image base model brings ``preprocessor_config.json`` where a text one brings tokenizer files.
That file is read here as data only: it is never handed to ``AutoImageProcessor`` (which could name a
processor class or, through ``auto_map``, code of the upload's own). The market preprocesses every
image the same way (:func:`specs.base_models.images.preprocess_images`): channels matched to the
model, a bilinear resize to the config's ``image_size``, then ``(x - image_mean) / image_std``, the
steps a ViT image processor takes on images already in [0, 1].

Allow-listed: ViT (``model_type: vit``). Its layers all have the same width, so each layer's pooled
token states are one (n, hidden) matrix per layer, as for the text encoders; a CNN's stages widen
stage by stage and would need another layer-wise layout.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specs.base_models.errors import BaseModelFolderError, RemoteCodeError

# model_type -> the prefix of its transformers classes (ViTModel, ViTForImageClassification, ...).
IMAGE_MODEL_TYPES: dict[str, str] = {"vit": "ViT"}
PREPROCESSOR_FILE = "preprocessor_config.json"
MAX_IMAGE_SIZE = 1024  # pixels per side after the resize
MIN_IMAGE_SIZE = 2


@dataclass(frozen=True)
class ImagePreprocessing:
    """How the market turns [0, 1] images into a model's ``pixel_values``.

    Attributes
    ----------
    image_size : int
        Side of the square the images are resized to (the config's ``image_size``).
    num_channels : int
        1 or 3 (grey images are repeated to 3 channels, colour ones averaged to 1).
    mean, std : tuple of float
        Per channel; applied when ``do_normalize`` (std > 0).
    """

    image_size: int
    num_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _refuse(message: str, field: str) -> BaseModelFolderError:
    return BaseModelFolderError(
        f"{PREPROCESSOR_FILE}: {message}", details={"file": PREPROCESSOR_FILE, "field": field}
    )


def _per_channel(value: Any, field: str, channels: int, default: float) -> tuple[float, ...]:
    if value is None:
        return (default,) * channels
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value] * channels
    if (
        not isinstance(value, list)
        or len(value) != channels
        or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
        )
    ):
        raise _refuse(f"{field} must be {channels} finite numbers (one per channel), got {value!r}", field)
    return tuple(float(v) for v in value)


def _size(value: Any) -> int | None:
    """The square side a processor's ``size`` names (an int, or height = width), None when absent."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, dict) and set(value) == {"height", "width"} and value["height"] == value["width"]:
        side = value["height"]
        return side if isinstance(side, int) and not isinstance(side, bool) else -1
    return -1


def read_preprocessing(root: Path, config: dict[str, Any], max_json_bytes: int) -> ImagePreprocessing:
    """Check ``preprocessor_config.json`` against ``config`` and return the preprocessing it declares.

    Raises
    ------
    RemoteCodeError
        ``auto_map`` in the file.
    BaseModelFolderError
        The file is missing, too large, not a JSON object, or its size / mean / std disagree with the
        config (a ``size`` other than ``image_size``, a mean per channel count other than
        ``num_channels``, a std that is not positive).
    """
    path = root / PREPROCESSOR_FILE
    if not path.is_file():
        raise BaseModelFolderError(
            f"an image base model needs {PREPROCESSOR_FILE} (its image mean, std and size)",
            details={"file": PREPROCESSOR_FILE},
        )
    if path.stat().st_size > max_json_bytes:
        raise _refuse(f"larger than {max_json_bytes} bytes", "size")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _refuse(f"not UTF-8 JSON: {exc}", "json") from None
    if not isinstance(data, dict):
        raise _refuse("not a JSON object", "json")
    if "auto_map" in data:
        raise RemoteCodeError(
            f"{PREPROCESSOR_FILE}: auto_map asks for the processor's own code (never run)",
            details={"file": PREPROCESSOR_FILE, "field": "auto_map"},
        )
    side, channels = config.get("image_size", 224), config.get("num_channels", 3)
    if not isinstance(side, int) or not MIN_IMAGE_SIZE <= side <= MAX_IMAGE_SIZE:
        raise BaseModelFolderError(
            f"config.json: image_size must be an integer in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}], "
            f"got {side!r}",
            details={"field": "image_size"},
        )
    if channels not in (1, 3):
        raise BaseModelFolderError(
            f"config.json: num_channels must be 1 or 3, got {channels!r}", details={"field": "num_channels"}
        )
    declared = _size(data.get("size"))
    if declared is not None and declared != side:
        raise _refuse(f"size {data.get('size')!r} differs from config.json's image_size {side}", "size")
    normalize = data.get("do_normalize", True)
    mean = _per_channel(data.get("image_mean"), "image_mean", channels, 0.5)
    std = _per_channel(data.get("image_std"), "image_std", channels, 0.5)
    if not normalize:
        mean, std = (0.0,) * channels, (1.0,) * channels
    if any(s <= 0.0 for s in std):
        raise _refuse(f"image_std must be positive, got {list(std)}", "image_std")
    return ImagePreprocessing(side, channels, mean, std)
