"""What the reuse stages share: the submission, the stored results, and inputs loaded once.

Everything here is recomputed deterministically from the submission's files and the
stored results, so a resumed run rebuilds the same context.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from typing import Any

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import storages

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.choices import Modality
from marketplace.learnwares.models import FeatureSpace
from marketplace.submissions.choices import DataFormat
from marketplace.submissions.data import ImageData, TableData, TextData, read_images, read_table, read_texts
from marketplace.submissions.models import Submission
from specs import TableStandardizer
from specs.units import unit_rms

__all__ = ["ImageSpaceTransform", "ReuseContext", "SpaceTransform", "unit_rms"]

DEFAULT_SEED = 0
DEFAULT_HOLDOUT = 0.3
VALIDATION_SHARE = 0.25  # of the rows left after the hold-out
MIN_LABELLED = 12


class SpaceTransform:
    """x -> (x / rms - mean) / scale with the rms of the user's data fixed, so that any later
    batch (the labelled sample, a prediction call) lands where the user's data landed."""

    def __init__(self, rms: np.ndarray, standardization: dict[str, Any]) -> None:
        self.rms = np.asarray(rms, dtype=np.float64)
        if standardization:
            std = TableStandardizer.from_dict(standardization)
            self.mean, self.scale = std.mean_, std.scale_
            self.unit_free = bool(std.scale_invariant)
        else:
            self.mean, self.scale, self.unit_free = np.zeros_like(self.rms), np.ones_like(self.rms), False

    def __call__(self, X: np.ndarray) -> np.ndarray:
        U = X / self.rms if self.unit_free else X
        return (U - self.mean) / self.scale

    def to_dict(self) -> dict[str, Any]:
        return {"rms": self.rms.tolist(), "mean": self.mean.tolist(), "scale": self.scale.tolist(), "unit_free": self.unit_free}


class ImageSpaceTransform:
    """Rows of flattened images (n, C*H*W) -> the image space (n, dim): reshaped to (n, C, H, W)
    and encoded by the space's seeded conv encoder (``specs.encoders.ConvImageEncoder``).

    An image submission's labelled rows are its pixels, so the models (which take the images)
    and the from-scratch baselines see the pixels, while the methods that work in the space
    (job selectors, stitching head) see the encoding, as the RKMEs do.
    """

    def __init__(self, shape: list[int] | tuple[int, ...] | None, seed: int, dim: int) -> None:
        self.shape = tuple(int(v) for v in shape) if shape else None
        self.seed, self.dim = int(seed), int(dim)
        self._encoded: dict[str, np.ndarray] = {}

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if self.shape is None:
            raise ValidationFailed("labelled: no images to map into the image space", code="submission:user:missing-data")
        from marketplace.learnwares.encoding import image_encoder

        rows = np.ascontiguousarray(X, dtype=np.float32)
        key = hashlib.sha256(rows.tobytes()).hexdigest()
        if key not in self._encoded:  # assemble and evaluate map the same rows
            self._encoded[key] = image_encoder(self.seed).encode(rows.reshape(-1, *self.shape)).astype(np.float64)
        return self._encoded[key]

    def to_dict(self) -> dict[str, Any]:
        # The identity on the encoder's output, plus how rows reach it (a package predictor needs both).
        return {"rms": [1.0] * self.dim, "mean": [0.0] * self.dim, "scale": [1.0] * self.dim, "unit_free": False,
                "image": {"encoder": "ConvImageEncoder", "seed": self.seed, "shape": list(self.shape) if self.shape else None}}


class ReuseContext:
    """Inputs of one submission's run, loaded lazily and at most once."""

    def __init__(self, submission: Submission) -> None:
        self.submission = submission
        self.results: dict[str, dict[str, Any]] = {}
        self.cache: dict[str, Any] = {}

    @property
    def requirements(self) -> dict[str, Any]:
        return self.submission.requirements or {}

    @property
    def seed(self) -> int:
        return int(self.requirements.get("seed", DEFAULT_SEED))

    def _read(self, field: Any) -> bytes:
        with field.open("rb") as fh:
            return fh.read()

    @cached_property
    def data_bytes(self) -> bytes:
        if not self.submission.data_file:
            raise ValidationFailed("data: the submission's data were deleted", code="submission:user:data-deleted")
        return self._read(self.submission.data_file)

    @cached_property
    def user_table(self) -> TableData:
        return read_table(self.data_bytes, self.submission.data_format, field="data")

    @property
    def is_text(self) -> bool:
        return self.submission.data_format == DataFormat.JSONL

    @property
    def adapter_mode(self) -> bool:
        """The user asked for LoRA adapters (text space): rank and assemble adapters, not models."""
        return self.requirements.get("kind") == "adapter"

    @property
    def is_image(self) -> bool:
        return self.submission.modality == Modality.IMAGE

    @cached_property
    def user_images(self) -> ImageData:
        return read_images(self.data_bytes, self.submission.data_format, field="data")

    @cached_property
    def labelled_images(self) -> ImageData | None:
        """The labelled images, checked to have the data's size and channels (models take one shape)."""
        if not self.submission.has_labels:
            return None
        images = read_images(self._read(self.submission.labelled_file), self.submission.labelled_format, field="labelled",
                             label_column=self.requirements.get("label_column", "label"), labelled=True)
        self._check_count(len(images.names))
        if self.submission.data_format != DataFormat.RKME and images.shape != self.user_images.shape:
            shown = "x".join(map(str, images.shape)), "x".join(map(str, self.user_images.shape))
            raise ValidationFailed(f"labelled: images are {shown[0]} (C x H x W), the data's {shown[1]}: send both with "
                                   "one size and colour mode", code="submission:user:wrong-image-size",
                                   details={"labelled": ["image shape differs from the data's"]})
        return images

    @cached_property
    def user_texts(self) -> TextData:
        return read_texts(self.data_bytes, field="data")

    @cached_property
    def labelled_texts(self) -> TextData | None:
        if not self.submission.has_labels:
            return None
        if self.submission.labelled_format != DataFormat.JSONL:
            raise ValidationFailed("labelled: a text submission's labelled sample must be JSONL with 'text' and 'label'",
                                   code="submission:user:bad-format")
        texts = read_texts(self._read(self.submission.labelled_file), field="labelled",
                           label_key=self.requirements.get("label_column", "label"), labelled=True)
        self._check_count(len(texts.texts))
        return texts

    def _check_count(self, n: int) -> None:
        if n < MIN_LABELLED:
            raise ValidationFailed(f"labelled: {n} rows are too few (at least {MIN_LABELLED})",
                                   code="submission:user:too-few-labels")

    @cached_property
    def labelled_table(self) -> TableData | None:
        if not self.submission.has_labels:
            return None
        if self.is_image:
            # Image rows are the pixels, flattened in (C, H, W) order; ``transform`` encodes them.
            images = self.labelled_images
            assert images is not None
            return TableData(X=images.images.reshape(images.images.shape[0], -1).astype(np.float64), columns=None, y=images.y)
        if self.is_text:
            # Text models are heads on the text space: their rows are the MiniLM embeddings.
            from marketplace.learnwares.encoding import encode_texts

            texts = self.labelled_texts
            assert texts is not None
            return TableData(X=encode_texts(texts.texts).astype(np.float64), columns=None, y=texts.y)
        raw = self._read(self.submission.labelled_file)
        table = read_table(raw, self.submission.labelled_format, field="labelled",
                           label_column=self.requirements.get("label_column", "label"), labelled=True)
        self._check_count(table.X.shape[0])
        return table

    @cached_property
    def space(self) -> FeatureSpace:
        key = self.results["spec"]["feature_space"]
        return FeatureSpace.objects.get(key=key)

    @cached_property
    def transform(self) -> SpaceTransform | ImageSpaceTransform:
        if self.space.kind == Modality.IMAGE:
            return ImageSpaceTransform(self.results["spec"].get("image_shape"), int((self.space.schema or {}).get("seed", 0)),
                                       self.space.dim)
        return SpaceTransform(np.asarray(self.results["spec"]["unit_rms"]), self.space.standardization or {})

    @property
    def user_rms(self) -> np.ndarray | None:
        """The per-column RMS of the user's rows when the space is unit-free and it is known
        (an uploaded RKME without a labelled sample or ``unit_rms`` does not tell it)."""
        t = self.transform
        if not isinstance(t, SpaceTransform) or not t.unit_free or not self.results["spec"].get("unit_rms_known", True):
            return None
        return t.rms

    @cached_property
    def splits(self) -> dict[str, np.ndarray]:
        """Seeded fit / validation / test row indices of the labelled sample."""
        table = self.labelled_table
        assert table is not None
        n = table.X.shape[0]
        perm = np.random.default_rng(self.seed).permutation(n)
        n_test = max(3, round(float(self.requirements.get("holdout_fraction", DEFAULT_HOLDOUT)) * n))
        rest = perm[n_test:]
        n_val = max(2, round(VALIDATION_SHARE * rest.shape[0]))
        return {"test": np.sort(perm[:n_test]), "val": np.sort(rest[:n_val]), "fit": np.sort(rest[n_val:])}

    # --- work files: content of a stage, stored privately under the submission's prefix ---
    def work_name(self, name: str) -> str:
        return f"submissions/{self.submission.owner_id}/{self.submission.id}/work/{name}"

    def work_save(self, name: str, content: bytes) -> dict[str, Any]:
        """Store ``content`` as work file ``name`` (skipped if the same bytes are there)."""
        storage = storages["default"]
        path = self.work_name(name)
        sha = hashlib.sha256(content).hexdigest()
        if storage.exists(path):
            with storage.open(path, "rb") as fh:
                if hashlib.sha256(fh.read()).hexdigest() == sha:
                    return {"file": name, "sha256": sha, "size": len(content)}
            storage.delete(path)
        storage.save(path, ContentFile(content))
        return {"file": name, "sha256": sha, "size": len(content)}

    def work_load(self, name: str) -> bytes:
        with storages["default"].open(self.work_name(name), "rb") as fh:
            return fh.read()
