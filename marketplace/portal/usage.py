"""The "Use this learnware" panel: Python client, CLI and curl snippets that run as written.

Each snippet is built from the version's manifest, so it states what the model takes: a
table's columns in order, an image's shape and value range, raw texts for a text model
(the client embeds them with the named base model), PEFT loading code for an adapter.
Builders are looked up by artifact format first, then by kind/modality, so a new format
(e.g. ONNX) adds its own Python snippet with ``PYTHON_BY_FORMAT[fmt] = builder``.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MINILM_KEY = "all-minilm-l6-v2"  # the registered base whose weights ship with the client (offline)
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class UsageContext:
    site_url: str
    learnware_id: int
    number: int
    slug: str
    sha256: str
    kind: str
    modality: str
    task: str
    artifact_format: str
    manifest: dict[str, Any]
    base_model_key: str = ""
    base_model_name: str = ""
    base_model_aliases: tuple[str, ...] = ()
    # An adapter on a published base model: that base's learnware (its package holds model/) and pooling.
    base_model_learnware_id: int | None = None
    base_model_pooling: str = "mean"
    # A text model on a published base: the base version it is pinned to (None: published before pins).
    base_pin_version: int | None = None
    sample_range: tuple[float, float] | None = None

    @property
    def zip_name(self) -> str:
        return f"learnware-{self.learnware_id}-v{self.number}.zip"

    @property
    def columns(self) -> list[str]:
        return [
            str(c["name"]) if isinstance(c, dict) else str(c)
            for c in (self.manifest.get("input") or {}).get("columns") or []
        ]

    @property
    def shape(self) -> list[int]:
        return [int(s) for s in (self.manifest.get("input") or {}).get("shape") or []]

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in (self.manifest.get("output") or {}).get("classes") or []]


@dataclass(frozen=True)
class UsageTab:
    key: str
    label: str
    code: str
    note: str = ""


def _download_lines(ctx: UsageContext) -> str:
    return (
        f"from lwm_client import Client\n\n"
        f"market = Client({ctx.site_url!r})  # a private learnware also needs LWM_TOKEN (your API token)\n"
        f'package = market.download({ctx.learnware_id}, {ctx.number}, dest=".")  # verified against its '
        "sha256\n"
    )


def _output_comment(ctx: UsageContext) -> str:
    if ctx.task == "classification" and ctx.classes:
        shown = ", ".join(ctx.classes[:10]) + (", ..." if len(ctx.classes) > 10 else "")
        return f"# one class name per row: {shown}"
    if ctx.task == "regression":
        return "# one predicted value per row"
    return "# one output row per input"


def python_table(ctx: UsageContext) -> str:
    columns = ctx.columns
    listed = ", ".join(columns[:30]) + (f", ... ({len(columns)} in all)" if len(columns) > 30 else "")
    zeros = ", ".join("0.0" for _ in columns) or "0.0"
    return (
        "import numpy as np\n" + _download_lines(ctx) + "model = market.load(package.path)\n\n"
        f"# one row per example; the {len(columns)} numeric columns in this order: {listed}\n"
        f"X = np.array([[{zeros}]])\n"
        f"print(model.predict(X))  {_output_comment(ctx)}\n"
    )


def _range_text(ctx: UsageContext) -> str:
    if ctx.sample_range is None:
        return "the value range of the publisher's sample"
    lo, hi = ctx.sample_range
    return f"values in [{lo:g}, {hi:g}] like the publisher's sample"


def python_image(ctx: UsageContext) -> str:
    c, h, w = (ctx.shape + [1, 1, 1])[:3]
    lo = ctx.sample_range[0] if ctx.sample_range else 0.0
    return (
        "import numpy as np\n" + _download_lines(ctx) + "model = market.load(package.path)\n\n"
        f"# images as an array of shape (n, {c}, {h}, {w}) = (count, channels, height, width), float32, "
        f"{_range_text(ctx)}\n"
        f"# (lwm_client.data.read_images(folder) reads PNG/JPEG files into [0, 1])\n"
        f"X = np.full((1, {c}, {h}, {w}), {lo:g}, dtype=np.float32)\n"
        f"print(model.predict(X))  {_output_comment(ctx)}\n"
    )


def python_text(ctx: UsageContext) -> str:
    if ctx.base_model_key and ctx.base_model_key != MINILM_KEY:  # a head on a published base's embeddings
        key, name = ctx.base_model_key, ctx.base_model_name or ctx.base_model_key
        which = (
            f"v{ctx.base_pin_version}, the version it was checked against when it was published"
            if ctx.base_pin_version is not None
            else "its newest published version (this model was published before base versions were pinned)"
        )
        return (
            _download_lines(ctx)
            + "# (a text model on a published base: it also fetches that base, verified)\n"
            "model = market.load(package.path)\n\n"
            f"# raw texts in: the client embeds them with {name} {which}\n"
            f"# (space text-{key}; that base's package sha256 and folder digest checked), then runs it\n"
            'texts = ["Shares in the company rose after strong results.", "The striker scored twice."]\n'
            f"print(model.predict(texts))  {_output_comment(ctx)}\n"
        )

    base = ctx.base_model_name or "MiniLM (all-MiniLM-L6-v2)"
    return (
        _download_lines(ctx) + "model = market.load(package.path)\n\n"
        f"# raw texts in: the client embeds them with {base} (384-d, mean-pooled),\n"
        "# the embeddings this model was trained on, then runs the model\n"
        'texts = ["Shares in the company rose after strong results.", "The striker scored twice."]\n'
        f"print(model.predict(texts))  {_output_comment(ctx)}\n"
    )


def python_adapter(ctx: UsageContext) -> str:
    pooled = (
        "embeddings = hidden[:, 0]  # cls pooling, as its base model declares\n"
        if ctx.base_model_pooling == "cls"
        else 'mask = batch["attention_mask"].unsqueeze(-1)\n'
        "embeddings = (hidden * mask).sum(1) / mask.sum(1)  # mean pooling, as the market embeds texts\n"
    )
    if ctx.base_model_key == MINILM_KEY:
        base_line = (
            "from lwm_client.data import minilm_path\n\n"
            f"base_path = minilm_path()  # the client's offline copy of {MINILM_HUB_ID} (or use that Hub "
            "id)\n"
        )
    elif ctx.base_model_learnware_id is not None:
        base_line = (
            f"# the base model {ctx.base_model_name or ctx.base_model_key} is learnware "
            f"{ctx.base_model_learnware_id}: its package holds the folder model/\n"
            f'base_package = market.download({ctx.base_model_learnware_id}, dest="base-package")\n'
            'zipfile.ZipFile(base_package.path).extractall("base")\n'
            'base_path = str(Path("base", "model").resolve())  # an absolute folder is never a Hub id\n'
        )
    else:
        hub = ctx.base_model_aliases[0] if ctx.base_model_aliases else ctx.base_model_key
        base_line = (
            f"\nbase_path = {hub!r}  # the registered base model "
            f"{ctx.base_model_name or ctx.base_model_key}: a local folder or your Hugging Face cache\n"
        )
    return (
        "import zipfile\n"
        "from pathlib import Path\n\n"
        "import torch\n"
        "from peft import PeftModel\n"
        "from transformers import AutoModel, AutoTokenizer\n\n"
        + _download_lines(ctx)
        + 'zipfile.ZipFile(package.path).extractall("adapter")  # adapter_config.json + '
        "adapter_model.safetensors\n"
        + base_line
        # local_files_only: the base loads from a folder (or the local cache), never downloads on the way
        + "tokenizer = AutoTokenizer.from_pretrained(base_path, local_files_only=True)\n"
        "base = AutoModel.from_pretrained(base_path, local_files_only=True)\n"
        'model = PeftModel.from_pretrained(base, str(Path("adapter").resolve())).eval()\n\n'
        'texts = ["Shares in the company rose after strong results.", "The striker scored twice."]\n'
        'batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")\n'
        "with torch.no_grad():\n"
        "    hidden = model(**batch).last_hidden_state\n"
        + pooled
        + "embeddings = torch.nn.functional.normalize(embeddings, dim=1)  # unit rows, as the market's\n"
        "print(embeddings.shape)\n"
    )


def python_base_model(ctx: UsageContext) -> str:
    """A published base model: the Hugging Face folder under model/, loaded without remote code."""
    if ctx.modality == "image":
        from marketplace.portal.usage_image_base import python_image_base_model

        return python_image_base_model(ctx, _download_lines(ctx))
    cls = ctx.manifest.get("pooling") == "cls"
    pooled = (
        "embeddings = hidden[:, 0]  # cls pooling, as declared in its manifest\n"
        if cls
        else 'mask = batch["attention_mask"].unsqueeze(-1)\n'
        "embeddings = (hidden * mask).sum(1) / mask.sum(1)  # mean pooling, as declared in its manifest\n"
    )
    return (
        "import zipfile\n"
        "from pathlib import Path\n\n"
        "import torch\n"
        "from transformers import AutoModel, AutoTokenizer\n\n"
        + _download_lines(ctx)
        + 'zipfile.ZipFile(package.path).extractall("base")  # base/model/: config, safetensors, tokenizer\n'
        # A relative "base/model" is also a valid Hub id: an absolute path and local_files_only mean a
        # missing folder fails here instead of downloading anything.
        'folder = Path("base", "model").resolve()\n'
        "tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)\n"
        "model = AutoModel.from_pretrained(\n"
        "    folder, local_files_only=True, use_safetensors=True, trust_remote_code=False\n"
        ")\n"
        "model = model.eval()\n\n"
        'texts = ["Shares in the company rose after strong results.", "The striker scored twice."]\n'
        'batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")\n'
        "with torch.no_grad():\n"
        "    hidden = model(**batch).last_hidden_state\n" + pooled + "print(embeddings.shape)\n"
    )


PythonBuilder = Callable[[UsageContext], str]
PYTHON_BY_KIND: dict[str, PythonBuilder] = {"adapter": python_adapter, "base_model": python_base_model}
PYTHON_BY_MODALITY: dict[str, PythonBuilder] = {
    "table": python_table,
    "image": python_image,
    "text": python_text,
}


def python_onnx(ctx: UsageContext) -> str:
    """The modality's snippet: the client runs model.onnx with ONNX Runtime, which is an extra."""
    return (
        "# model.onnx runs with ONNX Runtime (pip install './client[onnx]'), or in any ONNX Runtime binding\n"
        + PYTHON_BY_MODALITY.get(ctx.modality, python_table)(ctx)
    )


PYTHON_BY_FORMAT: dict[str, PythonBuilder] = {
    "onnx": python_onnx
}  # artifact format -> builder (takes precedence)


def python_snippet(ctx: UsageContext) -> str:
    builder = (
        PYTHON_BY_FORMAT.get(ctx.artifact_format)
        or PYTHON_BY_KIND.get(ctx.kind)
        or PYTHON_BY_MODALITY.get(ctx.modality, python_table)
    )
    return builder(ctx)


def cli_snippet(ctx: UsageContext) -> str:
    lines = [
        "pip install ./client  # the lwm command (from this repository's client/ folder)",
        f"export LWM_URL={shlex.quote(ctx.site_url)}  # and LWM_TOKEN=... for a private learnware",
        f"lwm download {ctx.learnware_id} --version {ctx.number} -o .  # prints the verified sha256",
    ]
    if ctx.kind == "adapter":
        lines.append(f"unzip {ctx.zip_name} -d adapter  # then load it with PEFT (Python tab)")
    elif ctx.kind == "base_model":
        lines.append(f"unzip {ctx.zip_name} -d base  # base/model/ loads with transformers (Python tab)")
    elif ctx.modality == "image":
        c, h, w = (ctx.shape + [1, 1, 1])[:3]
        lines.append(
            f"lwm predict {ctx.zip_name} ./images/  # a folder of PNG/JPEG, read as {c}×{h}×{w} in [0, 1]"
        )
    elif ctx.modality == "text" and ctx.base_model_key and ctx.base_model_key != MINILM_KEY:
        lines.append(
            f"# it runs on {ctx.base_model_key}'s embeddings: use the Python tab, which embeds with it"
        )
    elif ctx.modality == "text":
        lines.append(
            f'lwm predict {ctx.zip_name} texts.txt  # one raw text per line (or JSONL with a "text" field)'
        )
    else:
        header = ",".join(ctx.columns[:8]) + (",..." if len(ctx.columns) > 8 else "")
        lines.append(f"lwm predict {ctx.zip_name} data.csv  # a CSV whose header is {header}")
    return "\n".join(lines) + "\n"


def curl_snippet(ctx: UsageContext) -> str:
    url = f"{ctx.site_url}/api/v1/learnwares/{ctx.learnware_id}/versions/{ctx.number}/download"
    return (
        f'curl -fLo {ctx.zip_name} {shlex.quote(url)}  # add -H "Authorization: Bearer $LWM_TOKEN" if '
        "private\n"
        f'echo "{ctx.sha256}  {ctx.zip_name}" | sha256sum -c\n'
    )


def usage_tabs(ctx: UsageContext) -> list[UsageTab]:
    """The panel's tabs, Python first (what most users copy)."""
    return [
        UsageTab("python", "Python client", python_snippet(ctx)),
        UsageTab("cli", "CLI", cli_snippet(ctx)),
        UsageTab("curl", "curl", curl_snippet(ctx)),
    ]
