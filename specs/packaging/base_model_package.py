"""The artifact of a ``kind: base_model`` package: a Hugging Face folder under ``model/``.

Checked here without loading anything (the upload's byte checks): the folder is flat, holds
``config.json`` and ``model.safetensors``, and the safetensors header passes the base-model rules
(floats, plus the int64 buffers a BERT checkpoint carries). Everything that needs transformers —
weight formats, remote code, the architecture allow-list, weights against config, limits, the
probe embedding and the declared pooling — runs in the sandbox (``workers.sandbox.base_model_call``
through :func:`specs.base_models.inspect_model_folder`). A pickle ``.bin`` never gets this far: the
package-wide pickle check refuses it first.
"""

from __future__ import annotations

from specs.packaging.errors import reject
from specs.packaging.safetensors_header import BASE_MODEL_LIMITS, check_safetensors_header

FOLDER = "model/"
REQUIRED = ("config.json", "model.safetensors")


def base_model_files(files: dict[str, bytes]) -> dict[str, bytes]:
    """``{file name: bytes}`` of the ``model/`` folder (names without the prefix), checked.

    Raises
    ------
    InvalidPackageError
        ``base-model-layout`` (a sub-folder, or no ``model/`` folder), ``artifact-missing``
        (no config.json / model.safetensors), ``base-model-header`` (safetensors header bounds,
        dtypes), ``base-model-spec`` (an rkme.json or a data sample: base models have no RKME).
    """
    folder = {name[len(FOLDER) :]: data for name, data in files.items() if name.startswith(FOLDER)}
    folder.pop("", None)  # the folder's own zip entry
    if not folder:
        raise reject(
            "base-model-layout",
            "a base-model package holds its Hugging Face folder under model/ (config.json, "
            "model.safetensors, tokenizer files)",
            FOLDER,
        )
    nested = sorted(name for name in folder if "/" in name or name.startswith("."))
    if nested:
        raise reject(
            "base-model-layout",
            f"{FOLDER}{nested[0]}: the model folder is flat (no sub-folders, no hidden files)",
            FOLDER + nested[0],
        )
    missing = [name for name in REQUIRED if name not in folder]
    if missing:
        raise reject(
            "artifact-missing", f"a base-model package needs {FOLDER}{missing[0]}", FOLDER + missing[0]
        )
    check_safetensors_header(folder["model.safetensors"], FOLDER + "model.safetensors", BASE_MODEL_LIMITS)
    extra = sorted(n for n in files if not n.startswith(FOLDER) and n != "learnware.yaml")
    if extra:
        raise reject(
            "base-model-spec",
            f"{extra[0]}: a base-model package holds only learnware.yaml and model/ (a base model has "
            "no RKME and no data sample)",
            extra[0],
        )
    return folder
