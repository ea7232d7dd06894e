"""Load a downloaded package and predict, on this machine, without ever unpickling.

Models are TorchScript archives, loaded by ``specs.packaging.torchscript.load_torchscript``:
the upload's checks run first (no pickle, no code that runs while loading), and every
operator of the loaded graph must be in the market's allow-list before the model is
called; or ONNX run by ONNX Runtime (``specs.packaging.onnx_run``), checked like the upload.
torch.export (``.pt2``) is refused: ``torch.export.load`` unpickles with full pickle. An
assembly package (``recipe.json`` + ``assembly.lwa``, built by a submission) is run by
``specs.recipe.RecipePredictor``, the market's own implementation (its pipeline and tests run
the same code); every member's bytes are checked against the recipe's sha256, and every
member is loaded by :func:`load_model` (the upload checks first). An image assembly
(``transform.image`` in the recipe) takes images: its members get the pixels flattened in
(C, H, W) order and its method the images' encoding by the space's seeded conv encoder.
An adapter package a text submission built (LoRA members in ``recipe.json``) is run by
``specs.adapter_runtime.AdapterRecipePredictor`` on the local MiniLM, as the market runs it, or on
the published base its recipe names (``base``: that version's package, fetched and checked by
``lwm_client.base_heads``, its folder's digest compared and its files checked by
``specs.base_models``): texts in, class probabilities from its head (or embeddings when it has
none) out.
A model-selection package (``base_head.json``: a head on a published base model) is run by
``specs.base_model_head.BaseHeadPredictor`` on the base's folder (``lwm_client.base_heads``
finds it: fetched from the market, or ``base=``), embedded as the market's worker embeds it. When
that head was worse than from scratch, the package holds the from-scratch winner instead
(``scratch.json``: TF-IDF or downscaled pixels + a linear head, plain data), run by
``lwm_client.scratch_models`` with ``specs.scratch_linear`` on raw texts or images.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import yaml

from lwm_client.errors import ConfigError, IntegrityError, PackageError, UnsafeArtifactError
from lwm_client.packages.check import MODEL_FILES, check_torch_zip
from lwm_client.predict_inputs import finite_rows, listed, numbers, row_width, texts_of
from specs.adapter_runtime import AdapterFilesError, AdapterRecipePredictor, is_adapter_recipe
from specs.base_model_head import is_base_head
from specs.images import image_rows
from specs.packaging.choices import MINILM_NAMES
from specs.packaging.errors import InvalidPackageError
from specs.packaging.torchscript import load_torchscript
from specs.recipe import (
    RecipeChecksumError,
    RecipeColumnsError,
    RecipeError,
    RecipeMemberBaseError,
    RecipePredictor,
    probabilities,
)
from specs.scratch_linear import is_scratch_linear


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
        raise UnsafeArtifactError(
            f"artifact format {fmt!r} cannot be loaded (only TorchScript or ONNX; torch.export "
            "archives are refused because loading them unpickles)",
            code="predict:user:format",
        )
    try:
        check_torch_zip("model.pt", raw, fmt)
        return load_torchscript(raw, "model.pt")
    except (PackageError, InvalidPackageError) as exc:
        raise UnsafeArtifactError(
            str(exc), code="predict:user:unsafe-artifact", details={**exc.details, "check": exc.code}
        ) from None


def _load_onnx(raw: bytes) -> Any:
    from specs.packaging.errors import InvalidPackageError
    from specs.packaging.onnx_run import load_onnx

    try:
        return load_onnx(raw)
    except ImportError:
        raise UnsafeArtifactError(
            "this package's model is ONNX: pip install onnxruntime onnx",
            code="predict:user:missing-onnxruntime",
        ) from None
    except InvalidPackageError as exc:
        raise UnsafeArtifactError(exc.message, code="predict:user:unsafe-artifact") from None


def _run(model: Any, X: np.ndarray) -> np.ndarray:
    from specs.packaging.onnx_run import OnnxModel

    if isinstance(model, OnnxModel):
        return np.asarray(model(np.ascontiguousarray(X, dtype=np.float32)), dtype=np.float64)
    import torch

    with torch.no_grad():
        out = model(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)))
    return out.double().numpy()


def base_head_predictor(files: dict[str, bytes], base: str | Path | None) -> Any:
    """A model-selection package's predictor on its base model (named errors, never a traceback)."""
    from lwm_client.base_heads import open_base_folder
    from specs.base_model_head import BaseHeadError, BaseHeadPredictor, read_recipe
    from specs.base_models import BaseModelFolderError

    try:
        recipe, head = read_recipe(files)
        return BaseHeadPredictor(recipe, head, open_base_folder(recipe.get("base_model") or {}, base))
    except BaseHeadError as exc:
        error = IntegrityError if "checksum" in exc.reason else UnsafeArtifactError
        raise error(str(exc), code=exc.code, details=exc.details) from None
    except BaseModelFolderError as exc:  # the base's folder fails the market's checks
        raise UnsafeArtifactError(
            f"the base model: {exc}", code="predict:user:base-head-base-unsafe", details={"check": exc.code}
        ) from None


def adapter_base(recipe: dict[str, Any], base: str | Path | None) -> Any:
    """(tokenizer, model) an adapter package runs on: the local MiniLM, or the published base its recipe
    names (``base``: fetched by ``Client.download_submission`` or given as ``base=``; the package's sha256
    and then the folder's digest must be the recipe's, and the folder passes the market's checks)."""
    from lwm_client.base_heads import open_base_folder
    from specs.base_models import BaseModelFolderError, inspect_model_folder, load_text_encoder

    ref = recipe.get("base") or {}
    if not ref:
        from lwm_client.data import minilm_path
        from specs.minilm import load_minilm

        return load_minilm(minilm_path())
    try:
        checked = inspect_model_folder(open_base_folder(ref, base))
        if checked.digest != ref.get("folder_digest"):
            raise IntegrityError(
                f"the base model's folder (digest {checked.digest}) is not the one the adapters were "
                f"assembled on ({ref.get('key')} v{ref.get('version')}, {ref.get('folder_digest')})",
                code="predict:user:adapter-base-checksum",
                details={"got": checked.digest, "expected": ref.get("folder_digest")},
            )
        return load_text_encoder(checked)
    except BaseModelFolderError as exc:  # the base's folder fails the market's checks
        raise UnsafeArtifactError(
            f"the base model: {exc}", code="predict:user:adapter-base-unsafe", details={"check": exc.code}
        ) from None


def _member(raw: bytes, fmt: str) -> Any:
    """A recipe member as ``specs.recipe`` runs it: float32 rows in, float64 outputs out."""
    model = load_model(raw, fmt)
    return lambda X32: _run(model, X32)


class Predictor:
    """``predict`` / ``predict_proba`` of a learnware package (a model) or an assembly package.

    Inputs: tables as (n, d) rows in the manifest's ``input.columns`` order (raw units),
    images as (n, C, H, W) in [0, 1] (an assembly also takes uint8 0..255, (n, H, W) grey
    images or flattened rows), texts as a list of strings (encoded with MiniLM here, or by the published
    base an assembly's recipe names: ``recipe.base``, as for adapter packages; a member head pinned to
    another base version gets the texts embedded by its own, the member's ``base``).
    """

    def __init__(
        self,
        files: dict[str, bytes],
        base: str | Path | None = None,
        *,
        package_sha256: str | None = None,
        bases: Mapping[str, Path] | None = None,
    ) -> None:
        # ``package_sha256``: the package's, to find the base version a downloaded text model is pinned to.
        # ``bases``: package sha256 -> zip of a base version the recipe's members run on (an isolated run's
        # copies); by default the ones ``Client.download_submission`` fetched.
        self.package_sha256 = package_sha256
        self._member_sources = dict(bases or {})
        self._member_encoders: dict[str, Any] = {}
        self.manifest = yaml.safe_load(files["learnware.yaml"])
        self.task = self.manifest.get("task", "classification")
        out = self.manifest.get("output") or {}
        self.classes: list[str] | None = list(out["classes"]) if out.get("classes") else None
        self.recipe = json.loads(files["recipe.json"]) if "recipe.json" in files else None
        self._adapter: AdapterRecipePredictor | None = None
        self._head: Any = None
        # A recipe's or a text model's published base, loaded on the first raw texts.
        self._base, self._encoder = base, cast(Any, None)
        if is_scratch_linear(files):  # the from-scratch winner: numpy on the raw texts or images
            from lwm_client.scratch_models import ScratchPredictor

            self._head = ScratchPredictor(files)
            self.classes, self.task = self._head.classes, self._head.task
            return
        if is_base_head(files):
            self._head = base_head_predictor(files, base)
            self.classes, self.task = self._head.classes, self._head.task
            return
        if self.recipe is not None and is_adapter_recipe(self.recipe):
            self._init_adapter(files, base)
            return
        if self.recipe is not None:
            self._init_assembly(files)
            return
        present = [n for n in MODEL_FILES if n in files]
        if self.manifest.get("kind") == "adapter" or not present:
            raise UnsafeArtifactError(
                "this package has no model to predict with (an adapter is loaded onto its base model)",
                code="predict:user:no-model",
            )
        self.model = load_model(files[present[0]], MODEL_FILES[present[0]])

    def _init_adapter(self, files: dict[str, bytes], base: str | Path | None) -> None:
        try:
            self._adapter = AdapterRecipePredictor(files, adapter_base(self.recipe or {}, base))
        except RecipeChecksumError as exc:
            raise IntegrityError(str(exc), code=exc.code) from None
        except AdapterFilesError as exc:
            raise UnsafeArtifactError(str(exc), code=f"predict:user:adapter-{exc.reason}") from None
        self.classes = self._adapter.classes or None
        self.task = self._adapter.task

    def _init_assembly(self, files: dict[str, bytes]) -> None:
        try:
            self._assembly = RecipePredictor(files, _member)
        except RecipeChecksumError as exc:
            raise IntegrityError(str(exc), code=exc.code) from None
        except RecipeError as exc:
            raise UnsafeArtifactError(str(exc), code=exc.code) from None
        self.classes = self._assembly.classes or None
        self.task = self._assembly.task

    @classmethod
    def from_bytes(
        cls, content: bytes, base: str | Path | None = None, bases: Mapping[str, Path] | None = None
    ) -> Predictor:
        with zipfile.ZipFile(io.BytesIO(content)) as zf:
            files = {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
        return cls(files, base, package_sha256=hashlib.sha256(content).hexdigest(), bases=bases)

    @classmethod
    def from_path(
        cls, path: str | Path, base: str | Path | None = None, bases: Mapping[str, Path] | None = None
    ) -> Predictor:
        return cls.from_bytes(Path(path).read_bytes(), base, bases)

    def _given_texts(self, X: Any) -> list[str] | None:
        """X's raw texts when this is a text package and X is not numbers already (one string is one
        text: :func:`lwm_client.predict_inputs.texts_of`); None for rows."""
        if self.manifest.get("modality") != "text" or (isinstance(X, np.ndarray) and X.dtype.kind in "biuf"):
            return None
        return texts_of(X)

    def _inputs(self, X: Any, texts: list[str] | None = None) -> np.ndarray:
        """X as the rows a model or recipe takes (``texts``: its raw texts, :meth:`_given_texts`)."""
        if self._image is not None:
            return image_rows(X, self._image["shape"])
        if texts is not None:
            return self._text_rows(texts)
        if hasattr(X, "columns") and hasattr(X, "to_numpy"):  # a DataFrame: its columns are matched by name
            from specs.columns import ColumnError, align_complete

            wanted = ((self.recipe or {}).get("input") or {}).get("columns") or (
                self.manifest.get("input") or {}
            ).get("columns")
            if wanted:
                try:
                    alignment = align_complete([str(c) for c in X.columns], wanted, what="this package")
                except ColumnError as exc:
                    raise ConfigError(
                        str(exc), code="predict:user:columns", details={"columns": exc.columns}
                    ) from None
                return finite_rows(alignment.apply(numbers(X)))
            X = numbers(X)
        rows = finite_rows(numbers(X))
        if rows.ndim == 1 and self.manifest.get("modality", "table") == "table":
            rows = rows[None, :]  # one row given as a flat vector of a table's values: a (1, d) table
        width = row_width(self.recipe, self.manifest)
        if width is not None and (rows.ndim != 2 or rows.shape[1] != width):
            raise ConfigError(
                f"rows of shape {rows.shape}: this package takes rows of {width} values",
                code="predict:user:columns",
            )
        return rows

    def _text_rows(self, texts: list[str]) -> np.ndarray:
        from lwm_client.data import encode_texts

        if (self.recipe or {}).get("base"):  # a submission's assembly in a published base's space
            return self._base_rows(texts)
        base = str(self.manifest.get("base_model") or "")
        if base and base not in MINILM_NAMES:  # MiniLM rows would be another space (and width)
            return self._model_base_rows(base, texts)
        return encode_texts(texts)

    def _model_base_rows(self, key: str, texts: list[str]) -> np.ndarray:
        """A published text model's raw texts embedded by its base: the one ``Client.download`` fetched and
        recorded, or ``base=`` (its package zip) (:mod:`lwm_client.model_bases`); else refused by name."""
        from lwm_client.model_bases import ModelBase
        from specs.base_models import BaseModelFolderError

        if self._encoder is None:
            self._encoder = ModelBase(key, self._base, self.package_sha256)
        if not self._encoder.available:
            raise ConfigError(
                f"this model takes the embeddings of base model {key!r}: download it with Client.download "
                f"(which fetches the base), pass base=<the base's package zip>, or pass "
                f"embed_with_base(market, texts, market.encoder_space('text', base_model={key!r})) "
                "(lwm_client.base_spaces)",
                code="predict:user:base-embeddings",
                details={"base_model": key},
            )
        try:
            return np.asarray(self._encoder.embed(texts))
        except BaseModelFolderError as exc:  # the base's folder fails the market's checks
            raise UnsafeArtifactError(
                f"the base model: {exc}", code="predict:user:adapter-base-unsafe", details={"check": exc.code}
            ) from None

    def _base_rows(self, texts: list[str]) -> np.ndarray:
        """Texts embedded by the base version the recipe names, as the worker embedded the user's (its
        declared pooling, L2-normalised: ``specs.adapter_bases.pooled_embeddings``); the base is fetched
        and checked as an adapter package's is (:func:`adapter_base`)."""
        from specs.adapter_bases import pooled_embeddings

        ref = (self.recipe or {})["base"]
        if self._encoder is None:
            self._encoder = adapter_base(self.recipe or {}, self._base)
        return pooled_embeddings(self._encoder, texts, pooling=str(ref.get("pooling") or "mean"))

    def _member_base_rows(self, texts: list[str] | None) -> dict[str, np.ndarray] | None:
        """The raw texts (the list the recipe's rows were embedded from) embedded once per base version the
        recipe's members run on besides ``recipe.base`` (``specs.recipe.RecipePredictor.member_bases``: text
        heads pinned to another version), each base fetched and checked as ``recipe.base`` is."""
        refs = self._assembly_member_bases()
        if not refs or texts is None:
            return None  # rows given: RecipePredictor refuses them by name when a member needs its own
        from specs.adapter_bases import pooled_embeddings

        out = {}
        for sha, ref in refs.items():
            if sha not in self._member_encoders:
                self._member_encoders[sha] = adapter_base({"base": ref}, self._member_sources.get(sha))
            pooling = str(ref.get("pooling") or "mean")
            out[sha] = pooled_embeddings(self._member_encoders[sha], texts, pooling=pooling)
        return out

    def _assembly_member_bases(self) -> dict[str, dict[str, Any]]:
        try:
            return self._assembly.member_bases()
        except RecipeError as exc:  # a member's base reference is malformed (recipe version, sha256)
            raise UnsafeArtifactError(str(exc), code=exc.code) from None

    @staticmethod
    def _adapter_texts(X: Any) -> list[str]:
        """An adapter package embeds raw texts with its adapted base: rows embedded elsewhere are refused
        by name (they once gave an empty prediction)."""
        texts = None if isinstance(X, np.ndarray) and X.dtype.kind in "biuf" else texts_of(X)
        if texts is None:
            raise ConfigError(
                "this adapter package embeds raw texts with its adapted base: pass the texts, not embeddings",
                code="predict:user:not-text",
            )
        return texts

    @property
    def _image(self) -> dict[str, Any] | None:
        """The recipe's image transform (encoder, seed, shape), or None."""
        return ((self.recipe or {}).get("transform") or {}).get("image")

    def _assembly_proba(self, X: np.ndarray, base_rows: dict[str, np.ndarray] | None = None) -> np.ndarray:
        try:
            return self._assembly.predict_proba(X, base_rows)
        except RecipeMemberBaseError as exc:  # embeddings given where a member needs its own version's
            raise ConfigError(
                f"{exc}: pass the raw texts (each member's base version embeds them)", code=exc.code
            ) from None
        except RecipeColumnsError as exc:  # the caller's rows, not the package, are wrong
            raise ConfigError(str(exc), code=exc.code) from None
        except RecipeError as exc:
            raise UnsafeArtifactError(str(exc), code=exc.code) from None

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n, C) class probabilities (classification) or (n,) / (n, k) values (regression, embedding)."""
        if self._head is not None:  # texts or images straight to the base model (or features), then the head
            return self._head.predict_proba(X if isinstance(X, np.ndarray) else [str(t) for t in listed(X)])
        if self._adapter is not None:  # texts straight to the adapted base (never the plain encoder)
            return self._adapter.predict_proba(self._adapter_texts(X))
        texts = self._given_texts(X)  # once: the recipe's rows and every member base's embed this same list
        inputs = self._inputs(X, texts)
        if self.recipe is not None:  # rows as given -> the space's order: specs.recipe.space_rows
            return self._assembly_proba(inputs, self._member_base_rows(texts))
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
