"""``specs.scratch_linear``: the from-scratch winner as data gives sklearn's probabilities.

The package is built from the market's own baselines fitted here (TF-IDF + logistic regression on
texts, downscaled pixels + standardised logistic regression on images) and read back; its numpy
probabilities must equal the fitted pipeline's ``predict_proba`` on new rows (unseen words, punctuation,
unicode, bigrams, empty texts; images that are kept or downscaled), and its pixel downscale must equal
torch's ``adaptive_avg_pool2d``. Altered packages are refused with named errors.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from specs.recipe import sha256_hex
from specs.scratch_linear import (
    SCRATCH_JSON,
    SCRATCH_WEIGHTS,
    ScratchLinearError,
    TfidfInput,
    pixel_features,
    read_scratch,
    scratch_files,
)
from workers.pipelines.reuse_scratch import (
    SoftmaxRegressionClassifier,
    _dense,
    scratch_models,
    text_scratch_model,
)

WORDS = ["river", "stone", "cloud", "lamp", "garden", "paper", "engine", "violin", "orbit", "bread"]
KEYS = ["goal striker", "vote senate", "pixel kernel", "oven flour"]
NEW_TEXTS = [
    "",  # no token at all: a zero row
    "zzz qqq unseen-words only!",  # nothing in the vocabulary
    "GOAL, striker... goal; STRIKER?! river",  # case, punctuation, a repeated bigram
    "Vote   senate\tvote\nsenate — Ünïcödé café naïve 東京",  # whitespace, unicode tokens
    "a b c goal striker x",  # one-letter tokens are not tokens: 'goal striker' is still a bigram
    "pixel kernel pixel kernel pixel kernel oven flour stone stone",
    "garden_path 42 4 oven-flour",  # \\w keeps underscores and digits together
]


def _texts(rng: np.random.Generator, n_classes: int, n: int) -> tuple[list[str], np.ndarray]:
    y = np.arange(n) % n_classes
    texts = []
    for label in y:
        words = list(rng.choice(WORDS, size=rng.integers(3, 9)))
        words.insert(int(rng.integers(0, len(words) + 1)), KEYS[label])
        if rng.random() < 0.3:  # some noise so the classes overlap
            words.append(KEYS[rng.integers(0, n_classes)].split()[0])
        texts.append(" ".join(words) + rng.choice([".", "!", "", " ?"]))
    return texts, y


def _tfidf_pipeline(max_features: int):
    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=max_features),
        FunctionTransformer(_dense, accept_sparse=True),
        SoftmaxRegressionClassifier(),
    )


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("max_features", [None, 25])  # None: the market's baseline (5000 terms)
def test_text_package_equals_the_fitted_tfidf_pipeline(rng, n_classes, max_features):
    texts, y = _texts(rng, n_classes, 60)
    model = (text_scratch_model() if max_features is None else _tfidf_pipeline(max_features)).fit(
        np.asarray(texts, dtype=object), y
    )
    classes = [f"class-{c}" for c in model.classes_]
    package = read_scratch(scratch_files(model, classes))
    assert package.classes == classes and package.modality == "text"
    new = NEW_TEXTS + _texts(rng, n_classes, 20)[0]
    expected = model.predict_proba(np.asarray(new, dtype=object))
    assert_allclose(package.predict_proba(new), expected, rtol=0, atol=1e-8)
    # The features themselves are sklearn's TF-IDF rows (the zero rows included).
    assert isinstance(package.inputs, TfidfInput)
    tfidf = model.steps[0][1].transform(new).toarray()
    assert_allclose(package.inputs.features(new), tfidf, rtol=0, atol=1e-12)
    assert not tfidf[:2].any() and tfidf[2:].any()


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 37, 23), (1, 20, 12)])
def test_pixel_features_are_torchs_adaptive_average_pool(rng, shape):
    torch = pytest.importorskip("torch")
    images = rng.random((5, *shape))
    h, w = shape[1:]
    pooled = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(images), (min(h, 16), min(w, 16)))
    assert_allclose(pixel_features(images), pooled.reshape(5, -1).numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 37, 23)])
def test_image_package_equals_the_fitted_pixel_pipeline(rng, n_classes, shape):
    y = np.arange(60) % n_classes
    images = rng.random((60, *shape)) * 0.5 + (y / n_classes)[:, None, None, None] * 0.5
    model = scratch_models("classification", 0)["logistic_regression"].fit(pixel_features(images), y)
    package = read_scratch(scratch_files(model, [str(c) for c in model.classes_], image_shape=shape))
    assert package.modality == "image"
    new = rng.random((9, *shape))
    expected = model.predict_proba(pixel_features(new))
    assert_allclose(package.predict_proba(new), expected, rtol=0, atol=1e-8)
    as_bytes = (new * 255).round().astype(np.uint8)  # decoded files: 0..255 scaled like the worker's
    assert_allclose(
        package.predict_proba(as_bytes), model.predict_proba(pixel_features(as_bytes / 255.0)), atol=1e-8
    )
    if shape[0] == 1:  # grey images without their channel axis
        assert_allclose(package.predict_proba(new[:, 0]), expected, rtol=0, atol=1e-8)
    with pytest.raises(ScratchLinearError) as wrong:
        package.predict_proba(rng.random((2, shape[0], shape[1] + 1, shape[2])))
    assert wrong.value.code == "predict:user:scratch-input"


@pytest.fixture
def text_files(rng) -> dict[str, bytes]:
    texts, y = _texts(rng, 3, 45)
    model = text_scratch_model().fit(np.asarray(texts, dtype=object), y)
    return scratch_files(model, ["a", "b", "c"])


def _with_recipe(files: dict[str, bytes], **changes) -> dict[str, bytes]:
    recipe = json.loads(files[SCRATCH_JSON])
    for key, value in changes.items():
        recipe[key] = value
    return {**files, SCRATCH_JSON: json.dumps(recipe).encode()}


def test_altered_or_foreign_packages_are_refused_by_name(text_files):
    def reason(files: dict[str, bytes]) -> str:
        with pytest.raises(ScratchLinearError) as caught:
            read_scratch(files)
        assert caught.value.code == f"predict:user:scratch-{caught.value.reason}"
        return caught.value.reason

    weights = text_files[SCRATCH_WEIGHTS]
    assert reason({**text_files, SCRATCH_WEIGHTS: weights[:-8] + b"\0" * 8}) == "checksum"
    assert reason(_with_recipe(text_files, version=2)) == "format"
    assert reason(_with_recipe(text_files, format="lwm-base-model-head")) == "format"
    assert reason({SCRATCH_JSON: b"{not json"}) == "format"
    recipe = json.loads(text_files[SCRATCH_JSON])
    spec = recipe["input"]
    assert reason(_with_recipe(text_files, input={**spec, "token_pattern": "(a+)+$"})) == "format"
    # A vocabulary with a term less: the idf and the head no longer fit it.
    smaller = dict(list(spec["vocabulary"].items())[:-1])
    smaller = {t: i for i, t in enumerate(sorted(smaller, key=smaller.__getitem__))}
    assert reason(_with_recipe(text_files, input={**spec, "vocabulary": smaller})) == "shape"
    assert reason(_with_recipe(text_files, classes=["a", "b"])) == "shape"
    # Tensors that make no head, behind a matching sha256.
    garbage = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "
    broken = _with_recipe(
        {**text_files, SCRATCH_WEIGHTS: garbage},
        weights={"path": SCRATCH_WEIGHTS, "sha256": sha256_hex(garbage)},
    )
    assert reason(broken) == "weights"
    with pytest.raises(ScratchLinearError) as texts:
        read_scratch(text_files).predict_proba("one string, not a list")
    assert texts.value.code == "predict:user:scratch-input"
