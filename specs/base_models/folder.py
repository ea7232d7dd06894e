"""Check and load a Hugging Face encoder folder without running any code it brings.

A base model is a folder holding ``config.json``, ``model.safetensors`` and tokenizer files (a text
encoder) or ``preprocessor_config.json`` (an image encoder, ``specs.base_models.image_folder``).
What makes loading it safe is what is refused *before* transformers sees it:

* any weight format but safetensors (``.bin``/``.pt``/``.ckpt`` are pickles, which run code when
  loaded; ``.h5``/``.msgpack`` belong to other frameworks; a sharded index is not supported);
* ``auto_map`` in ``config.json``, ``tokenizer_config.json`` or ``preprocessor_config.json`` and any
  ``.py`` file: remote code;
* a ``model_type`` outside :data:`ALLOWED_MODEL_TYPES` and :data:`IMAGE_MODEL_TYPES`, or an
  ``architectures`` entry that is not a transformers class of that same family (an ELECTRA config
  naming ``LlamaModel`` is refused);
* sizes past :class:`BaseModelLimits`.

Loading then passes ``trust_remote_code=False``, ``use_safetensors=True`` and ``local_files_only``,
and refuses a folder whose weights miss a tensor the config builds, carry one it does not, or
disagree on a shape: a half-random model would embed silently badly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specs.base_models.errors import (
    BaseModelFolderError,
    RemoteCodeError,
    UnknownArchitectureError,
    UnsafeWeightsError,
    WeightsMismatchError,
)
from specs.base_models.image_folder import IMAGE_MODEL_TYPES, PREPROCESSOR_FILE, read_preprocessing

# model_type -> the prefix of its transformers classes (BertModel, DebertaV2ForMaskedLM, ...).
ALLOWED_MODEL_TYPES: dict[str, str] = {
    "bert": "Bert",
    "roberta": "Roberta",
    "mpnet": "MPNet",
    "distilbert": "DistilBert",
    "electra": "Electra",
    "deberta-v2": "DebertaV2",
}
WEIGHTS_FILE = "model.safetensors"
# Formats that hold weights and are not safetensors: pickles first, then other frameworks'.
FOREIGN_WEIGHT_SUFFIXES = (
    ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".pt2",
    ".h5", ".msgpack", ".onnx", ".gguf", ".npy", ".npz",
)  # fmt: skip
# Files a tokenizer may read; hashed into the digest because they change the embeddings.
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.txt", "vocab.json", "merges.txt", "spm.model", "sentencepiece.bpe.model",
)  # fmt: skip
VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spm.model", "sentencepiece.bpe.model")


@dataclass(frozen=True)
class BaseModelLimits:
    """Caps on one folder (all-mpnet-base-v2: 12 layers, 768 wide, 110 M parameters, 438 MB)."""

    max_layers: int = 48
    max_hidden_size: int = 4096
    max_parameters: int = 1_000_000_000
    max_json_bytes: int = 2**20


@dataclass(frozen=True)
class ModelFolder:
    """A checked folder: what it is and the digest that keys its cached embeddings.

    Attributes
    ----------
    path : Path
    model_type : str
        One of :data:`ALLOWED_MODEL_TYPES`.
    architectures : tuple of str
        As declared (may be empty); each a transformers class of the family.
    num_layers, hidden_size : int
        From the config (DistilBERT's ``n_layers``/``dim`` are read through transformers' aliases).
    num_parameters : int
        Elements over the safetensors header's tensors.
    digest : str
        sha256 over the config, the weights and the tokenizer / preprocessor files (names and contents).
    modality : str
        "text" (tokenizer files) or "image" (``preprocessor_config.json``).
    """

    path: Path
    model_type: str
    architectures: tuple[str, ...]
    num_layers: int
    hidden_size: int
    num_parameters: int
    digest: str
    modality: str = "text"


def _read_json(path: Path, limits: BaseModelLimits) -> dict[str, Any]:
    if path.stat().st_size > limits.max_json_bytes:
        raise BaseModelFolderError(
            f"{path.name} is larger than {limits.max_json_bytes} bytes", details={"file": path.name}
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BaseModelFolderError(
            f"{path.name} is not UTF-8 JSON: {exc}", details={"file": path.name}
        ) from None
    if not isinstance(data, dict):
        raise BaseModelFolderError(f"{path.name} is not a JSON object", details={"file": path.name})
    return data


def _check_files(root: Path) -> None:
    for item in sorted(root.rglob("*")):
        name = item.relative_to(root).as_posix()
        if item.suffix.lower() in FOREIGN_WEIGHT_SUFFIXES or name.endswith(".safetensors.index.json"):
            raise UnsafeWeightsError(
                f"{name}: only a single {WEIGHTS_FILE} is accepted as weights (no pickle .bin/.pt, "
                "no other framework's format, no shards)",
                details={"file": name},
            )
        if item.suffix.lower() == ".py":
            raise RemoteCodeError(f"{name}: a base model may not bring Python code", details={"file": name})
    for name in ("config.json", WEIGHTS_FILE):
        if not (root / name).is_file():
            raise BaseModelFolderError(f"the folder has no {name}", details={"file": name})


def _check_vocabulary(root: Path) -> None:
    if not any((root / name).is_file() for name in VOCABULARY_FILES):
        raise BaseModelFolderError(
            f"the folder has no tokenizer vocabulary (one of {', '.join(VOCABULARY_FILES)})",
            details={"file": "tokenizer.json"},
        )


def _check_architectures(config: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    model_type = config.get("model_type")
    families = {**ALLOWED_MODEL_TYPES, **IMAGE_MODEL_TYPES}
    if model_type not in families:
        raise UnknownArchitectureError(
            f"config.json: model_type {model_type!r} is not an allow-listed text encoder "
            f"({', '.join(ALLOWED_MODEL_TYPES)}) or image encoder ({', '.join(IMAGE_MODEL_TYPES)})",
            details={"field": "model_type"},
        )
    declared = config.get("architectures") or []
    if not isinstance(declared, list) or not all(isinstance(a, str) for a in declared):
        raise UnknownArchitectureError(
            "config.json: architectures must be a list of class names", details={"field": "architectures"}
        )
    import transformers

    prefix = families[model_type]
    for name in declared:
        cls = getattr(transformers, name, None) if name.startswith(prefix) else None
        family = getattr(getattr(cls, "config_class", None), "model_type", None)
        if family != model_type:
            raise UnknownArchitectureError(
                f"config.json: architecture {name!r} is not a transformers {prefix}* class of model_type "
                f"{model_type!r}",
                details={"field": "architectures"},
            )
    return model_type, tuple(declared)


def _num_parameters(weights: Path) -> int:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt") as handle:
            total = 0
            for key in handle.keys():  # noqa: SIM118 (a safe_open handle is not iterable)
                shape = handle.get_slice(key).get_shape()
                count = 1
                for size in shape:
                    count *= int(size)
                total += count
    except (SafetensorError, OSError) as exc:  # a corrupt or truncated file
        raise WeightsMismatchError(
            f"{WEIGHTS_FILE} is not a readable safetensors file: {exc}", details={"file": WEIGHTS_FILE}
        ) from None
    return total


DIGEST_FILES = ("config.json", WEIGHTS_FILE, *TOKENIZER_FILES, PREPROCESSOR_FILE)


def _digest(hexdigests: dict[str, str]) -> str:
    """sha256 over (name, sha256 of content) of the digest files present, in ``DIGEST_FILES`` order."""
    outer = hashlib.sha256()
    for name in DIGEST_FILES:
        if name in hexdigests:
            outer.update(f"{name}\0{hexdigests[name]}\n".encode())
    return outer.hexdigest()


def folder_digest(root: Path) -> str:
    """sha256 over (name, sha256 of content) of the config, weights and tokenizer files present."""
    hexdigests = {}
    for name in DIGEST_FILES:
        path = root / name
        if not path.is_file():
            continue
        inner = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                inner.update(block)
        hexdigests[name] = inner.hexdigest()
    return _digest(hexdigests)


def files_digest(files: Mapping[str, bytes]) -> str:
    """:func:`folder_digest` of a folder holding ``files`` (name -> content), without writing it."""
    return _digest({name: hashlib.sha256(data).hexdigest() for name, data in files.items()})


def inspect_model_folder(path: str | Path, limits: BaseModelLimits | None = None) -> ModelFolder:
    """Check a folder without loading the model (see the module docstring for the rules).

    Raises
    ------
    UnsafeWeightsError, RemoteCodeError, UnknownArchitectureError, WeightsMismatchError,
    BaseModelFolderError
    """
    limits = limits or BaseModelLimits()
    root = Path(path)
    if not root.is_dir():
        raise BaseModelFolderError(f"{root} is not a folder", details={"file": str(root)})
    _check_files(root)
    config = _read_json(root / "config.json", limits)
    tokenizer_config = (
        _read_json(root / "tokenizer_config.json", limits)
        if (root / "tokenizer_config.json").is_file()
        else {}
    )
    for name, data in (("config.json", config), ("tokenizer_config.json", tokenizer_config)):
        if "auto_map" in data:
            raise RemoteCodeError(
                f"{name}: auto_map asks for the model's own code (never run: trust_remote_code is off)",
                details={"file": name, "field": "auto_map"},
            )
    model_type, architectures = _check_architectures(config)
    modality = "image" if model_type in IMAGE_MODEL_TYPES else "text"
    if modality == "image":
        read_preprocessing(root, config, limits.max_json_bytes)
    else:
        _check_vocabulary(root)
    from transformers import AutoConfig

    parsed = AutoConfig.from_pretrained(str(root), trust_remote_code=False, local_files_only=True)
    layers, hidden = int(parsed.num_hidden_layers), int(parsed.hidden_size)
    if not 1 <= layers <= limits.max_layers or not 1 <= hidden <= limits.max_hidden_size:
        raise BaseModelFolderError(
            f"config.json: {layers} layers of width {hidden} are outside the limits "
            f"(1..{limits.max_layers} layers, width 1..{limits.max_hidden_size})",
            details={"field": "num_hidden_layers"},
        )
    parameters = _num_parameters(root / WEIGHTS_FILE)
    if parameters > limits.max_parameters:
        raise BaseModelFolderError(
            f"{WEIGHTS_FILE} holds {parameters} parameters (limit {limits.max_parameters})",
            details={"file": WEIGHTS_FILE},
        )
    return ModelFolder(
        root, model_type, architectures, layers, hidden, parameters, folder_digest(root), modality
    )


# Modules whose weights the layer embeddings never read: a checkpoint without a pooler (RoBERTa's
# masked-LM ones) is complete for our use.
UNUSED_MODULES = ("pooler",)


def _structural_problems(model: Any, info: dict[str, Any]) -> dict[str, list[str]]:
    """Loading-report keys that change the encoder; task heads of a *ForMaskedLM checkpoint
    (``cls.*``, ``lm_head.*``) are unexpected but harmless, so they are left out."""
    prefix = f"{model.base_model_prefix}."
    own = {name for name, _ in model.named_children()}

    def module(key: str) -> str:
        return (key[len(prefix) :] if key.startswith(prefix) else key).split(".", 1)[0]

    missing = [k for k in info.get("missing_keys") or () if module(str(k)) not in UNUSED_MODULES]
    unexpected = [k for k in info.get("unexpected_keys") or () if module(str(k)) in own]
    mismatched = list(info.get("mismatched_keys") or ())
    return {
        "missing_keys": sorted(map(str, missing)),
        "unexpected_keys": sorted(map(str, unexpected)),
        "mismatched_keys": sorted(map(str, mismatched)),
    }


def load_text_encoder(folder: ModelFolder) -> tuple[Any, Any]:
    """(tokenizer, encoder in eval mode) from a checked folder; never downloads, never runs its code.

    Raises
    ------
    WeightsMismatchError
        A tensor the config builds is missing from the weights, an extra one is present, or a shape
        differs.
    BaseModelFolderError
        The folder is an image encoder.
    """
    from transformers import AutoTokenizer

    if folder.modality != "text":
        raise BaseModelFolderError(
            f"{folder.model_type} is an {folder.modality} encoder, not a text one",
            details={"field": "model_type"},
        )
    options: dict[str, Any] = {"trust_remote_code": False, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(str(folder.path), **options)
    return tokenizer, load_checked_model(folder)


def load_checked_model(folder: ModelFolder) -> Any:
    """The encoder of a checked folder in eval mode (``AutoModel``, safetensors, no remote code, no
    download), refused when its weights do not match its config.

    Raises
    ------
    WeightsMismatchError
    """
    from transformers import AutoModel

    options: dict[str, Any] = {"trust_remote_code": False, "local_files_only": True}
    try:
        model, info = AutoModel.from_pretrained(
            str(folder.path), use_safetensors=True, output_loading_info=True, **options
        )
    except (RuntimeError, ValueError) as exc:  # transformers' "size mismatch for ..." on a bad shape
        raise WeightsMismatchError(
            f"{WEIGHTS_FILE} does not match config.json: {str(exc)[:400]}", details={"file": WEIGHTS_FILE}
        ) from None
    problems = _structural_problems(model, info)
    if any(problems.values()):
        summary = "; ".join(f"{kind}: {', '.join(keys[:5])}" for kind, keys in problems.items() if keys)
        raise WeightsMismatchError(
            f"{WEIGHTS_FILE} does not match config.json ({summary})",
            details={"file": WEIGHTS_FILE, **problems},
        )
    return model.eval()
