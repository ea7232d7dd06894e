"""A model-selection package: a reference to a published base model + a logistic head on its layers.

The market's model-selection pipeline (``workers.pipelines.model_selection``) delivers, when the head
is not worse than from scratch, a zip of:

* ``base_head.json`` (:data:`HEAD_RECIPE`): the base model's learnware id, version and package
  sha256 (or, for the market's registered MiniLM, its key), the sha256 of its ``model.safetensors``,
  the modality, the token limit (texts) and the layer the head reads (``"mean"`` = the mean of every
  layer's pooled embedding, or a layer index), the pooling, the classes and the head's sha256;
* ``head.safetensors`` (:data:`HEAD_WEIGHTS`): ``mean``/``scale`` (the standardisation) and
  ``weight`` (k, d) / ``bias`` (k,) of one logit per class: data, never code.

The server and the client share this module: :func:`layer_features` turns the layer embeddings of
``specs.base_models`` (``LayerEmbedder`` / ``ImageLayerEmbedder``, run by the worker in its sandbox
and by the client on the downloaded base folder) into the head's input, and :class:`LinearHead`
applies the head, so both sides compute the same function.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from specs.exceptions import SpecError
from specs.recipe import sha256_hex

HEAD_RECIPE = "base_head.json"
HEAD_WEIGHTS = "head.safetensors"
HEAD_FORMAT = "lwm-base-model-head"
HEAD_VERSION = 1
POOLING = "mean"  # the layer embeddings' pooling (specs.base_models: masked token mean)


class BaseHeadError(SpecError):
    """A base-model head package cannot run: ``code`` names why (``predict:user:base-head-*``)."""

    def __init__(self, message: str, *, reason: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.code = f"predict:user:base-head-{reason}"
        self.details = details or {}


def is_base_head(files: dict[str, bytes] | set[str]) -> bool:
    return HEAD_RECIPE in files


def layer_features(layers: np.ndarray, layer: int | str) -> np.ndarray:
    """The head's input (n, h) float64 from layer embeddings (L, n, h): their mean over layers
    (``"mean"``) or one layer (an index)."""
    chosen = layers.mean(axis=0) if layer == "mean" else layers[int(layer)]
    return np.asarray(chosen, dtype=np.float64)


@dataclass(frozen=True)
class LinearHead:
    """softmax(((x - mean) / scale) @ weight.T + bias): a standardised logistic head."""

    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray
    bias: np.ndarray

    def tensors(self) -> dict[str, np.ndarray]:
        """The named float64 tensors of the safetensors file (``specs.scratch_linear`` adds its own)."""
        return {k: np.ascontiguousarray(getattr(self, k), dtype=np.float64) for k in self._names()}

    def to_bytes(self) -> bytes:
        from safetensors.numpy import save

        return save(self.tensors(), metadata={"format": HEAD_FORMAT})

    @staticmethod
    def _names() -> tuple[str, ...]:
        return ("mean", "scale", "weight", "bias")

    @classmethod
    def from_bytes(cls, raw: bytes) -> LinearHead:
        """Raises :class:`BaseHeadError` (``weights``) for tensors that do not make a head."""
        from safetensors import SafetensorError
        from safetensors.numpy import load

        try:
            t = load(raw)
            head = cls(*(np.asarray(t[k], dtype=np.float64) for k in cls._names()))
        except (SafetensorError, KeyError, ValueError) as exc:  # a malformed header, a missing tensor
            raise BaseHeadError(f"{HEAD_WEIGHTS} is not a head: {exc}", reason="weights") from None
        d = head.mean.shape
        k = head.bias.shape
        if len(d) != 1 or head.scale.shape != d or len(k) != 1 or head.weight.shape != (k[0], d[0]):
            raise BaseHeadError(f"{HEAD_WEIGHTS}: inconsistent tensor shapes", reason="weights")
        return head

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.mean.shape[0]:
            raise BaseHeadError(
                f"the head reads {self.mean.shape[0]} features, the base gave {X.shape}", reason="mismatch"
            )
        z = ((X - self.mean) / self.scale) @ self.weight.T + self.bias
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def fitted_head(pipeline: Any) -> LinearHead:
    """The :class:`LinearHead` of a fitted ``StandardScaler`` + ``specs.logistic`` pipeline (the
    from-scratch pipeline's logistic regression): binary models get the two logits [0, z]."""
    scaler, model = pipeline.steps[0][1], pipeline.steps[-1][1]
    W, b = model.model_.full_coef()
    return LinearHead(np.asarray(scaler.mean_), np.asarray(scaler.scale_), np.asarray(W), np.asarray(b))


def read_recipe(files: dict[str, bytes]) -> tuple[dict[str, Any], LinearHead]:
    """The recipe and the head of a package, the head checked against the recipe's sha256.

    Raises
    ------
    BaseHeadError
        ``format`` (not this format or version), ``checksum`` (the head's bytes differ), ``weights``.
    """
    try:
        recipe = json.loads(files[HEAD_RECIPE])
        fmt, version = recipe.get("format"), recipe.get("version")
        raw = files[recipe["head"]["path"]]
        expected = recipe["head"]["sha256"]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BaseHeadError(f"{HEAD_RECIPE} is malformed ({exc})", reason="format") from None
    if fmt != HEAD_FORMAT or version != HEAD_VERSION:
        raise BaseHeadError(f"{HEAD_RECIPE}: format {fmt!r} v{version} is not this client's", reason="format")
    if sha256_hex(raw) != expected:
        raise BaseHeadError(f"{HEAD_WEIGHTS} does not match the recipe's sha256", reason="checksum")
    return recipe, LinearHead.from_bytes(raw)


def check_base_folder(folder: Path, recipe: dict[str, Any]) -> None:
    """The folder's ``model.safetensors`` is the one the head was trained on.

    Raises
    ------
    BaseHeadError
        ``base-checksum``: other weights (a head on other features predicts silently badly).
    """
    weights = folder / "model.safetensors"
    expected = recipe["base_model"].get("weights_sha256")
    if not weights.is_file() or sha256_hex(weights.read_bytes()) != expected:
        raise BaseHeadError(
            f"{folder} is not the base model this head was trained on (model.safetensors sha256 "
            f"differs from {expected})",
            reason="base-checksum",
            details={"expected": expected},
        )


class BaseHeadPredictor:
    """Predict with a base-model head package on a local copy of its base model's folder.

    The folder is checked (``specs.base_models.inspect_model_folder``: safetensors only, no remote
    code, allow-listed architectures) and loaded with ``local_files_only``; texts are embedded with
    the server's token limit, images at the config's size, and the head reads :func:`layer_features`.

    Raises
    ------
    BaseHeadError, specs.base_models.BaseModelFolderError
    """

    def __init__(self, recipe: dict[str, Any], head: LinearHead, folder: str | Path) -> None:
        """``recipe`` and ``head`` as :func:`read_recipe` returns them (read once: the caller needs the
        recipe to find the base's folder)."""
        from specs.base_models import LayerEmbedder, inspect_model_folder
        from specs.base_models.images import ImageLayerEmbedder

        self.recipe, self.head = recipe, head
        check_base_folder(Path(folder), self.recipe)
        checked = inspect_model_folder(folder)
        base = self.recipe["base_model"]
        if checked.modality != base.get("modality", "text"):
            raise BaseHeadError(f"{folder} is a {checked.modality} encoder", reason="mismatch")
        self.embedder: Any = (
            ImageLayerEmbedder(checked)
            if checked.modality == "image"
            else LayerEmbedder(checked, max_length=int(base["max_length"]))
        )
        self.classes: list[str] = list(self.recipe["classes"])
        self.task = "classification"

    def features(self, X: Any) -> np.ndarray:
        return layer_features(self.embedder.embed(X).layers, self.recipe["layer"])

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.head.predict_proba(self.features(X))
