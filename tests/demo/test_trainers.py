"""The demo learnwares learn something real: held-out scores beat the trivial baselines by a margin."""

from __future__ import annotations

import io

import numpy as np
import torch

from demo import datasets, trainers


def run(model_bytes: bytes, X: np.ndarray) -> np.ndarray:
    model = torch.jit.load(io.BytesIO(model_bytes)).eval()
    with torch.no_grad():
        return model(torch.tensor(X, dtype=torch.float32)).numpy()


def test_flights_classifier_beats_the_majority_class_on_its_held_out_rows():
    d = next(x for x in datasets.flights() if x.name == "flights-delay-origin-ewr")
    pred = run(trainers.table_classifier(d.X_dev, d.y_dev, 2), d.X_user).argmax(1)
    accuracy, majority = float(np.mean(pred == d.y_user)), max(np.mean(d.y_user), 1 - np.mean(d.y_user))
    assert accuracy > majority + 0.05, (accuracy, majority)


def test_diamond_regressor_explains_most_of_the_price_variance_in_raw_units():
    d = datasets.diamonds()[4]
    pred = run(trainers.table_regressor(d.X_dev, d.y_dev), d.X_user)[:, 0]
    r2 = 1 - np.sum((pred - d.y_user) ** 2) / np.sum((d.y_user - d.y_user.mean()) ** 2)
    assert r2 > 0.8, r2


def test_image_domains_are_transforms_of_the_same_images():
    images = np.random.default_rng(0).random((3, 1, 5, 5)).astype(np.float32)
    np.testing.assert_array_equal(datasets.image_transform(images, "mirrored"), images[..., ::-1])
    np.testing.assert_allclose(datasets.image_transform(images, "inverted"), 1 - images)
    np.testing.assert_array_equal(
        datasets.image_transform(datasets.image_transform(images, "transposed"), "transposed"), images
    )
