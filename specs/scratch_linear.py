"""A model-selection package for the from-scratch winner: TF-IDF or downscaled pixels + a linear head.

When a head on the chosen base model is worse than from scratch, the model-selection pipeline
(``workers.pipelines.model_selection``) delivers its from-scratch baseline refitted on every row, as
data the client computes with numpy alone (nothing in the package is ever executed or unpickled):

* ``scratch.json`` (:data:`SCRATCH_JSON`): ``format`` / ``version``, ``classes`` (one per probability
  column), ``input`` (how raw rows become features) and ``weights`` {``path``, ``sha256``};
* ``scratch.safetensors`` (:data:`SCRATCH_WEIGHTS`): the :class:`specs.base_model_head.LinearHead`
  tensors ``mean`` / ``scale`` / ``weight`` / ``bias`` (texts: no standardisation, mean 0 and scale 1)
  and, for texts, ``idf`` (V,).

``input`` is ``{"kind": "tfidf", "vocabulary": {term: column}, "idf": {"tensor": "idf"}, "ngram_range",
"sublinear_tf", "lowercase", "token_pattern", "norm"}`` (sklearn's ``TfidfVectorizer`` with word
n-grams, reimplemented by :class:`TfidfInput`) or ``{"kind": "pixels", "side", "channels", "height",
"width"}`` (images (n, C, H, W) area-averaged to at most ``side`` x ``side``: :func:`pixel_features`,
the one implementation the worker's baseline and the client share).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from specs.base_model_head import BaseHeadError, LinearHead
from specs.exceptions import SpecError
from specs.recipe import sha256_hex

SCRATCH_JSON = "scratch.json"
SCRATCH_WEIGHTS = "scratch.safetensors"
SCRATCH_FORMAT = "lwm-scratch-linear"
SCRATCH_VERSION = 1
PIXEL_SIDE = 16  # the from-scratch image baseline reads pixels area-downscaled to at most this side
# The only tokeniser accepted (sklearn's default): a package's regex is data, and an arbitrary one
# could backtrack for minutes on a user's text.
TOKEN_PATTERN = r"(?u)\b\w\w+\b"
MAX_NGRAM = 5


class ScratchLinearError(SpecError):
    """A from-scratch package cannot run: ``code`` names why (``predict:user:scratch-*``)."""

    def __init__(self, message: str, *, reason: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.code = f"predict:user:scratch-{reason}"
        self.details = details or {}


def is_scratch_linear(files: dict[str, bytes] | set[str]) -> bool:
    return SCRATCH_JSON in files


# --- pixels ----------------------------------------------------------------------------------------
def _pool_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in): row i averages [floor(i n_in / n_out), ceil((i + 1) n_in / n_out)), the windows
    of torch's ``adaptive_avg_pool2d`` (overlapping when n_out does not divide n_in)."""
    P = np.zeros((n_out, n_in))
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
        P[i, start:end] = 1.0 / (end - start)
    return P


def pixel_features(images: np.ndarray, side: int = PIXEL_SIDE) -> np.ndarray:
    """(n, C*h*w) float64: images (n, C, H, W) area-averaged to at most ``side`` x ``side`` pixels
    (smaller images are kept as they are), the from-scratch image baseline's input."""
    x = np.asarray(images, dtype=np.float64)
    h, w = x.shape[2:]
    if h > side or w > side:
        x = np.einsum("oh,nchw,pw->ncop", _pool_matrix(h, min(h, side)), x, _pool_matrix(w, min(w, side)))
    return np.ascontiguousarray(x.reshape(x.shape[0], -1))


@dataclass(frozen=True)
class PixelInput:
    side: int
    shape: tuple[int, int, int]  # (C, H, W) of the training images

    @property
    def dim(self) -> int:
        c, h, w = self.shape
        return c * min(h, self.side) * min(w, self.side)

    def features(self, X: Any) -> np.ndarray:
        x = np.asarray(X)
        if x.dtype == np.uint8:  # 0..255 pixels, as decoded files hold them
            x = x / 255.0
        if x.ndim == 3 and self.shape[0] == 1:  # grey images without their channel axis
            x = x[:, None]
        if x.ndim != 4 or tuple(x.shape[1:]) != self.shape or x.dtype.kind not in "fiu":
            raise ScratchLinearError(
                f"this model reads images of shape (n, {', '.join(map(str, self.shape))}), got {x.shape}",
                reason="input",
            )
        return pixel_features(x, self.side)


# --- texts -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TfidfInput:
    """sklearn's ``TfidfVectorizer.transform`` (word analyzer) with numpy: lowercase, the token regex,
    n-grams joined by a space, counts of the vocabulary's terms, 1 + ln(tf) when sublinear, times the
    fitted idf, then the l2 norm of each row (an empty row stays zero)."""

    vocabulary: dict[str, int]
    idf: np.ndarray
    ngram_range: tuple[int, int]
    sublinear_tf: bool
    lowercase: bool
    norm: str | None

    @property
    def dim(self) -> int:
        return int(self.idf.shape[0])

    def terms(self, text: str) -> list[str]:
        tokens = re.findall(TOKEN_PATTERN, text.lower() if self.lowercase else text)
        low, high = self.ngram_range
        return [" ".join(tokens[i : i + n]) for n in range(low, high + 1) for i in range(len(tokens) - n + 1)]

    def features(self, X: Any) -> np.ndarray:
        if isinstance(X, str) or not all(isinstance(t, str) for t in X):
            raise ScratchLinearError("this model reads a list of texts", reason="input")
        out = np.zeros((len(X), self.dim))
        for row, text in enumerate(X):
            counts = Counter(t for t in self.terms(text) if t in self.vocabulary)
            if not counts:
                continue
            cols = np.fromiter((self.vocabulary[t] for t in counts), dtype=np.int64, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            values = (np.log(tf) + 1.0 if self.sublinear_tf else tf) * self.idf[cols]
            if self.norm == "l2":
                values /= np.sqrt(np.dot(values, values))
            out[row, cols] = values
        return out


# --- writing ---------------------------------------------------------------------------------------
def _tfidf_input(vectorizer: Any) -> tuple[dict[str, Any], np.ndarray]:
    """The json ``input`` and the idf of a fitted ``TfidfVectorizer`` this format reproduces."""
    p = vectorizer.get_params()
    supported = (
        p["analyzer"] == "word"
        and p["token_pattern"] == TOKEN_PATTERN
        and p["tokenizer"] is p["preprocessor"] is p["stop_words"] is p["strip_accents"] is None
        and p["use_idf"]
        and not p["binary"]
        and p["norm"] in ("l2", None)
    )
    if not supported:
        raise ScratchLinearError(f"a TfidfVectorizer with {p} is not this format's", reason="format")
    spec = {
        "kind": "tfidf",
        "vocabulary": {str(t): int(c) for t, c in sorted(vectorizer.vocabulary_.items(), key=lambda x: x[1])},
        "idf": {"tensor": "idf"},
        "ngram_range": [int(n) for n in p["ngram_range"]],
        "sublinear_tf": bool(p["sublinear_tf"]),
        "lowercase": bool(p["lowercase"]),
        "token_pattern": TOKEN_PATTERN,
        "norm": p["norm"],
    }
    return spec, np.asarray(vectorizer.idf_, dtype=np.float64)


def scratch_files(
    pipeline: Any,
    classes: list[str],
    *,
    image_shape: tuple[int, int, int] | None = None,
    side: int = PIXEL_SIDE,
    evaluation: dict[str, Any] | None = None,
) -> dict[str, bytes]:
    """``scratch.json`` and ``scratch.safetensors`` of a fitted baseline: ``TfidfVectorizer`` + dense +
    ``SoftmaxRegressionClassifier`` (texts), or ``StandardScaler`` + ``SoftmaxRegressionClassifier`` on
    :func:`pixel_features` of images of ``image_shape`` (C, H, W). ``classes``: one per probability column."""
    from safetensors.numpy import save
    from sklearn.feature_extraction.text import TfidfVectorizer

    from specs.base_model_head import fitted_head

    first, model = pipeline.steps[0][1], pipeline.steps[-1][1]
    tensors: dict[str, np.ndarray] = {}
    if isinstance(first, TfidfVectorizer):
        spec, tensors["idf"] = _tfidf_input(first)
        W, b = model.model_.full_coef()
        head = LinearHead(np.zeros(W.shape[1]), np.ones(W.shape[1]), np.asarray(W), np.asarray(b))
    elif image_shape is not None:
        c, h, w = (int(n) for n in image_shape)
        spec = {"kind": "pixels", "side": int(side), "channels": c, "height": h, "width": w}
        head = fitted_head(pipeline)
    else:
        raise ScratchLinearError("an image baseline needs its images' shape", reason="format")
    if head.weight.shape[0] != len(classes):
        raise ScratchLinearError(f"{len(classes)} classes for {head.weight.shape[0]} logits", reason="shape")
    tensors.update(head.tensors())
    weights = save({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in tensors.items()})
    doc = {
        "format": SCRATCH_FORMAT,
        "version": SCRATCH_VERSION,
        "classes": [str(c) for c in classes],
        "input": spec,
        "weights": {"path": SCRATCH_WEIGHTS, "sha256": sha256_hex(weights)},
        "evaluation": evaluation or {},
    }
    return {SCRATCH_JSON: json.dumps(doc, indent=1, sort_keys=True).encode(), SCRATCH_WEIGHTS: weights}


# --- reading ---------------------------------------------------------------------------------------
def _shape(message: str) -> ScratchLinearError:
    return ScratchLinearError(f"{SCRATCH_JSON}: {message}", reason="shape")


def _pixel_input(spec: dict[str, Any]) -> PixelInput:
    dims = [spec.get(k, 0) for k in ("side", "channels", "height", "width")]
    if not all(isinstance(n, int) and not isinstance(n, bool) and 0 < n <= 4096 for n in dims):
        raise _shape(f"pixel input {dims} is not four positive sizes")
    side, c, h, w = (int(n) for n in dims)
    return PixelInput(side=side, shape=(c, h, w))


def _tfidf_from(spec: dict[str, Any], raw: bytes) -> TfidfInput:
    from safetensors.numpy import load

    vocabulary, ngrams = spec.get("vocabulary"), spec.get("ngram_range", [])
    if spec.get("token_pattern") != TOKEN_PATTERN or spec.get("norm") not in ("l2", None):
        raise ScratchLinearError(f"{SCRATCH_JSON}: an unsupported tokeniser or norm", reason="format")
    ok_ngrams = (
        isinstance(ngrams, list)
        and len(ngrams) == 2
        and all(isinstance(n, int) for n in ngrams)
        and 1 <= ngrams[0] <= ngrams[1] <= MAX_NGRAM
    )
    if not isinstance(vocabulary, dict) or not ok_ngrams:
        raise ScratchLinearError(f"{SCRATCH_JSON}: malformed tfidf input", reason="format")
    if spec.get("idf") != {"tensor": "idf"}:
        raise ScratchLinearError(f"{SCRATCH_JSON}: idf must name the weights' tensor 'idf'", reason="format")
    values = list(vocabulary.values())
    if not all(isinstance(c, int) for c in values) or sorted(values) != list(range(len(values))):
        raise _shape("the vocabulary's columns are not 0..V-1, one per term")
    idf = np.asarray(load(raw).get("idf", np.zeros(0)), dtype=np.float64)
    if idf.shape != (len(values),):
        raise _shape(f"idf {idf.shape} for a vocabulary of {len(values)} terms")
    return TfidfInput(
        vocabulary={str(t): int(c) for t, c in vocabulary.items()},
        idf=idf,
        ngram_range=(ngrams[0], ngrams[1]),
        sublinear_tf=bool(spec.get("sublinear_tf")),
        lowercase=bool(spec.get("lowercase", True)),
        norm=spec.get("norm"),
    )


@dataclass(frozen=True)
class ScratchLinear:
    """A read, verified package: raw rows -> :attr:`inputs` features -> :attr:`head` probabilities."""

    recipe: dict[str, Any]
    inputs: TfidfInput | PixelInput
    head: LinearHead

    @property
    def classes(self) -> list[str]:
        return list(self.recipe["classes"])

    @property
    def modality(self) -> str:
        return "text" if isinstance(self.inputs, TfidfInput) else "image"

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.head.predict_proba(self.inputs.features(X))


def read_scratch(files: dict[str, bytes]) -> ScratchLinear:
    """The package's recipe, input transform and head, the weights checked against the recipe's sha256.

    Raises
    ------
    ScratchLinearError
        ``format`` (not this format or version, malformed json), ``checksum`` (the weights' bytes
        differ), ``weights`` (tensors that make no head), ``shape`` (vocabulary, idf, head and classes
        disagree).
    """
    try:
        recipe = json.loads(files[SCRATCH_JSON])
        fmt, version, spec = recipe.get("format"), recipe.get("version"), recipe["input"]
        raw = files[recipe["weights"]["path"]]
        expected, kind, classes = recipe["weights"]["sha256"], spec["kind"], recipe["classes"]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ScratchLinearError(f"{SCRATCH_JSON} is malformed ({exc})", reason="format") from None
    if fmt != SCRATCH_FORMAT or version != SCRATCH_VERSION or kind not in ("tfidf", "pixels"):
        raise ScratchLinearError(
            f"{SCRATCH_JSON}: format {fmt!r} v{version} ({kind}) is not this client's", reason="format"
        )
    if sha256_hex(raw) != expected:
        raise ScratchLinearError(
            f"{SCRATCH_WEIGHTS} does not match {SCRATCH_JSON}'s sha256", reason="checksum"
        )
    try:
        head = LinearHead.from_bytes(raw)
    except BaseHeadError as exc:
        raise ScratchLinearError(
            str(exc).replace("head.safetensors", SCRATCH_WEIGHTS), reason="weights"
        ) from None
    inputs = _tfidf_from(spec, raw) if kind == "tfidf" else _pixel_input(spec)
    if inputs.dim != head.mean.shape[0]:
        raise _shape(f"the input gives {inputs.dim} features, the head reads {head.mean.shape[0]}")
    if not isinstance(classes, list) or len(classes) != head.bias.shape[0]:
        raise _shape(f"{len(classes)} classes for {head.bias.shape[0]} logits")
    return ScratchLinear(recipe=recipe, inputs=inputs, head=head)
