"""The 'Use this learnware' Python snippet of an image base model (a ViT folder under model/).

It preprocesses as the market does (``specs.base_models.images.preprocess_images``: channels matched,
bilinear resize to the config's ``image_size``, ``(x - image_mean) / image_std``) with plain torch, so a
user gets the embeddings the market ranked, without handing the upload's ``preprocessor_config.json``
to a processor class.
"""

from __future__ import annotations

from typing import Any


def python_image_base_model(ctx: Any, download_lines: str) -> str:
    """The snippet for ``ctx`` (a ``marketplace.portal.usage.UsageContext`` of an image base model)."""
    c, h, w = (list(ctx.shape) + [3, 224, 224][len(ctx.shape) :])[:3]
    pooled = (
        "embeddings = hidden[:, 0]  # cls pooling, as declared in its manifest\n"
        if ctx.manifest.get("pooling") == "cls"
        else "embeddings = hidden.mean(1)  # mean pooling over every token, as declared in its manifest\n"
    )
    return (
        "import json\nimport zipfile\nfrom pathlib import Path\n\n"
        "import torch\nimport torch.nn.functional as F\n"
        "from transformers import AutoModel\n\n"
        + download_lines
        + 'zipfile.ZipFile(package.path).extractall("base")  # base/model/: config, weights, preprocessor\n'
        'folder = Path("base", "model").resolve()  # absolute: never taken for a Hub id\n'
        "model = AutoModel.from_pretrained(\n"
        "    folder, local_files_only=True, use_safetensors=True, trust_remote_code=False\n"
        ").eval()\n"
        'config = json.loads((folder / "config.json").read_text())\n'
        'prep = json.loads((folder / "preprocessor_config.json").read_text())  # read as data only\n'
        'side, channels = config["image_size"], config.get("num_channels", 3)\n\n'
        f"images = torch.rand(2, {c}, {h}, {w})  # your images: float (n, C, H, W) in [0, 1]\n"
        "if images.shape[1] != channels:  # grey repeated to 3 channels, colour averaged to 1\n"
        "    images = images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images.mean(1, keepdim=True)\n"
        "if images.shape[2:] != (side, side):\n"
        "    images = F.interpolate(\n"
        '        images, size=(side, side), mode="bilinear", align_corners=False, antialias=True\n'
        "    )\n"
        'if prep.get("do_normalize", True):\n'
        '    mean = torch.tensor(prep.get("image_mean", 0.5)).reshape(1, -1, 1, 1)\n'
        '    std = torch.tensor(prep.get("image_std", 0.5)).reshape(1, -1, 1, 1)\n'
        "    images = (images - mean) / std\n"
        "with torch.no_grad():\n"
        "    hidden = model(pixel_values=images).last_hidden_state\n" + pooled + "print(embeddings.shape)\n"
    )
