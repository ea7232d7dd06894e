"""Load a downloaded package and predict, on this machine, without ever unpickling.

Models are TorchScript archives, loaded by ``specs.packaging.torchscript.load_torchscript``:
the upload's checks run first (no pickle, no code that runs while loading), and every
operator of the loaded graph must be in the market's allow-list before the model is
called; or ONNX run by ONNX Runtime (``specs.packaging.onnx_run``), checked like the upload.
torch.export (``.pt2``) is refused: ``torch.export.load`` unpickles with full pickle. An
assembly package (``recipe.json`` + ``assembly.lwa``, built by a submission) is run
with ``specs.assembly``; every member's bytes are checked against the recipe's sha256. An
image assembly (``transform.image`` in the recipe) takes images: its members get the pixels
flattened in (C, H, W) order and its method the images' encoding by the space's seeded conv
encoder (``specs.encoders.ConvImageEncoder``), as the market's pipeline did.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from lwm_client.errors import IntegrityError, PackageError, UnsafeArtifactError
from lwm_client.packages.check import MODEL_FILES, check_torch_zip
from specs.images import image_rows, rows_as_images
from specs.packaging.errors import InvalidPackageError
from specs.packaging.torchscript import load_torchscript

RECIPE_FORMAT = "lwm-assembly-recipe"


def load_model(raw: bytes, fmt: str) -> Any:
    """A callable model from TorchScript bytes that passed the market's checks (a torch module) or
    ONNX bytes (a :class:`specs.packaging.onnx_run.OnnxModel`, run by ONNX Runtime); anything else is refused.

    Raises
    ------
    UnsafeArtifactError
        ``predict:user:format`` (not TorchScript or ONNX: torch.export is never loaded),
        ``predict:user:unsafe-artifact`` (a pickle, load-time code, an operator outside the
        allow-list; ``details`` carries the check's own ``upload:user:*`` code).
    """
    if fmt == "onnx":
        return _load_onnx(raw)
    if fmt != "torchscript":
        raise UnsafeArtifactError(f"artifact format {fmt!r} cannot be loaded (only TorchScript or ONNX; torch.export "
                                  "archives are refused because loading them unpickles)", code="predict:user:format")
    try:
        check_torch_zip("model.pt", raw, fmt)
        return load_torchscript(raw, "model.pt")
    except (PackageError, InvalidPackageError) as exc:
        raise UnsafeArtifactError(str(exc), code="predict:user:unsafe-artifact",
                                  details={**exc.details, "check": exc.code}) from None


def _load_onnx(raw: bytes) -> Any:
    from specs.packaging.errors import InvalidPackageError
    from specs.packaging.onnx_run import load_onnx

    try:
        return load_onnx(raw)
    except ImportError:
        raise UnsafeArtifactError("this package's model is ONNX: pip install onnxruntime onnx", code="predict:user:missing-onnxruntime") from None
    except InvalidPackageError as exc:
        raise UnsafeArtifactError(exc.message, code="predict:user:unsafe-artifact") from None


def probabilities(raw: np.ndarray) -> np.ndarray:
    """Rows of class scores as probabilities: kept if they already are, else a softmax."""
    if (raw >= 0).all() and np.allclose(raw.sum(axis=1), 1.0, atol=1e-4):
        return raw
    e = np.exp(raw - raw.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _run(model: Any, X: np.ndarray) -> np.ndarray:
    from specs.packaging.onnx_run import OnnxModel

    if isinstance(model, OnnxModel):
        return np.asarray(model(np.ascontiguousarray(X, dtype=np.float32)), dtype=np.float64)
    import torch

    with torch.no_grad():
        out = model(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)))
    return out.double().numpy()


def member_units(X: np.ndarray, entry: dict[str, Any]) -> np.ndarray:
    """Table rows in the recipe member's units: ``x * input_map.scale`` (float32, as the
    market's pipeline fed them), or the rows themselves when the recipe has no map."""
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    mapping = entry.get("input_map")
    return np.ascontiguousarray(X32 * np.asarray(mapping["scale"], dtype=np.float32)) if mapping else X32


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Predictor:
    """``predict`` / ``predict_proba`` of a learnware package (a model) or an assembly package.

    Inputs: tables as (n, d) rows in the manifest's ``input.columns`` order (raw units),
    images as (n, C, H, W) in [0, 1] (an assembly also takes uint8 0..255, (n, H, W) grey
    images or flattened rows), texts as a list of strings (encoded with MiniLM here).
    """

    def __init__(self, files: dict[str, bytes]) -> None:
        self.manifest = yaml.safe_load(files["learnware.yaml"])
        self.task = self.manifest.get("task", "classification")
        out = self.manifest.get("output") or {}
        self.classes: list[str] | None = list(out["classes"]) if out.get("classes") else None
        self.recipe = json.loads(files["recipe.json"]) if "recipe.json" in files else None
        if self.recipe is not None:
            self._init_assembly(files)
            return
        present = [n for n in MODEL_FILES if n in files]
        if self.manifest.get("kind") == "adapter" or not present:
            raise UnsafeArtifactError("this package has no model to predict with (an adapter is loaded onto its base model)",
                                      code="predict:user:no-model")
        self.model = load_model(files[present[0]], MODEL_FILES[present[0]])

    def _init_assembly(self, files: dict[str, bytes]) -> None:
        from specs.assembly import Assembly

        recipe = self.recipe or {}
        if recipe.get("format") != RECIPE_FORMAT:
            raise UnsafeArtifactError(f"recipe.json is not a {RECIPE_FORMAT}", code="predict:user:recipe")
        blob = files[recipe["assembly"]["path"]]
        if _sha(blob) != recipe["assembly"]["sha256"]:
            raise IntegrityError("assembly.lwa does not match the sha256 in recipe.json", code="predict:user:checksum")
        self.assembly = Assembly.from_bytes(blob)
        self.classes = list(recipe.get("classes") or []) or None
        self.task = recipe.get("task", self.task)
        self.members = []
        for entry in recipe["members"]:
            raw = files[entry["artifact"]["path"]]
            if _sha(raw) != entry["artifact"]["sha256"]:
                raise IntegrityError(f"{entry['artifact']['path']} does not match its sha256 in recipe.json", code="predict:user:checksum")
            self.members.append((load_model(raw, entry["artifact"].get("format", "torchscript")), entry))

    @classmethod
    def from_bytes(cls, content: bytes) -> Predictor:
        with zipfile.ZipFile(io.BytesIO(content)) as zf:
            return cls({i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()})

    @classmethod
    def from_path(cls, path: str | Path) -> Predictor:
        return cls.from_bytes(Path(path).read_bytes())

    def _inputs(self, X: Any) -> np.ndarray:
        if self._image is not None:
            return image_rows(X, self._image["shape"])
        if self.manifest.get("modality") == "text" and len(X) and isinstance(X[0], str):
            from lwm_client.data import encode_texts

            return encode_texts(list(X))
        return np.asarray(X, dtype=np.float64)

    @property
    def _image(self) -> dict[str, Any] | None:
        """The recipe's image transform (encoder, seed, shape), or None."""
        return ((self.recipe or {}).get("transform") or {}).get("image")

    def _transform(self, X: np.ndarray) -> np.ndarray:
        t = (self.recipe or {})["transform"]
        if self._image is not None:
            return self._encode(X)
        U = X / np.asarray(t["rms"]) if t["unit_free"] else X
        return (U - np.asarray(t["mean"])) / np.asarray(t["scale"])

    def _encode(self, rows: np.ndarray) -> np.ndarray:
        """Rows of pixels (n, C*H*W) -> (n, 128) float64, by the space's seeded conv encoder."""
        image = self._image or {}
        if image.get("encoder") != "ConvImageEncoder":
            raise UnsafeArtifactError(f"unknown image encoder {image.get('encoder')!r}", code="predict:user:recipe")
        if getattr(self, "_encoder", None) is None:
            from specs.encoders import ConvImageEncoder

            self._encoder = ConvImageEncoder(int(image["seed"]))
        images = np.ascontiguousarray(rows, dtype=np.float32).reshape(-1, *image["shape"])
        return self._encoder.encode(images).astype(np.float64)

    def _member_outputs(self, X: np.ndarray) -> list[np.ndarray]:
        classes = self.classes or []
        outs = []
        for model, entry in self.members:
            # An image learnware (recipe ``input_shape`` [C, H, W]) takes (n, C, H, W), as it was probed.
            shape = entry.get("input_shape")
            raw = _run(model, rows_as_images(X, shape) if shape else member_units(X, entry))
            if self.task != "classification":
                outs.append(raw.reshape(raw.shape[0], -1)[:, 0])
                continue
            probs, full = probabilities(raw), np.zeros((X.shape[0], len(classes)))
            for j, c in enumerate(entry.get("classes") or [str(i) for i in range(probs.shape[1])]):
                if c in classes:
                    full[:, classes.index(c)] = probs[:, j]
            outs.append(full)
        return outs

    def _assembly_proba(self, X: np.ndarray) -> np.ndarray:
        a: Any = self.assembly
        outs, Xs, task = self._member_outputs(X), self._transform(X), self.task
        if a.kind in ("best_single", "weighted_ensemble"):
            return a.predict_proba(outs) if task == "classification" else a.predict(outs)
        if a.kind in ("rkme_job_selector", "trained_job_selector"):
            return a.predict_proba(outs, Xs) if task == "classification" else a.predict(outs, Xs)
        if a.kind == "stitching_head":
            if task != "classification":
                return a.predict([Xs, *outs])
            full = np.zeros((X.shape[0], len(self.classes or [])))
            full[:, a.classes_.astype(np.int64)] = a.predict_proba([Xs, *outs])
            return full
        raise UnsafeArtifactError(f"unknown assembly kind {a.kind!r}", code="predict:user:recipe")

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n, C) class probabilities (classification) or (n,) / (n, k) values (regression, embedding)."""
        inputs = self._inputs(X)
        if self.recipe is not None:
            return self._assembly_proba(inputs)
        raw = _run(self.model, inputs)
        if self.task != "classification":
            return raw[:, 0] if raw.ndim == 2 and raw.shape[1] == 1 else raw
        if raw.ndim == 1:  # a model that returns label indices
            return np.eye(len(self.classes or []))[raw.astype(np.int64)]
        return probabilities(raw)

    def predict(self, X: Any) -> np.ndarray:
        """Class names (n,) for classification, values otherwise."""
        return self.labels(self.predict_proba(X))

    def labels(self, out: np.ndarray) -> np.ndarray:
        """``predict_proba``'s output as ``predict`` returns it (shared with ``IsolatedPredictor``)."""
        if self.task != "classification":
            return out
        labels = out.argmax(axis=1)
        return np.asarray(self.classes)[labels] if self.classes else labels
