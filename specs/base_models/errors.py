"""Errors of base-model folders: one class per refusal, each with a stable ``code``.

A caller (the client, a future upload check in the sandbox) shows the message and keys its
handling on ``code``; ``details`` names the offending file or field.
"""

from __future__ import annotations

from typing import Any

from specs.exceptions import SpecError


class BaseModelFolderError(SpecError):
    """A Hugging Face model folder cannot be used as a base model (missing file, limit, bad JSON)."""

    code = "spec:base-model-folder"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details: dict[str, Any] = details if details is not None else {}


class UnsafeWeightsError(BaseModelFolderError):
    """A weight file other than ``model.safetensors`` (pickle ``.bin``/``.pt``, ``.h5``, a shard index)."""

    code = "spec:base-model-weights"


class RemoteCodeError(BaseModelFolderError):
    """The folder asks for code of its own (``auto_map`` in a config, or Python files)."""

    code = "spec:base-model-remote-code"


class UnknownArchitectureError(BaseModelFolderError):
    """``model_type`` or an ``architectures`` entry is outside the allow-listed text encoders."""

    code = "spec:base-model-architecture"


class WeightsMismatchError(BaseModelFolderError):
    """``model.safetensors`` does not hold exactly the tensors (names and shapes) its config builds."""

    code = "spec:base-model-mismatch"
