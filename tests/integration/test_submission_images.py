"""Image submissions on real services: API -> broker -> worker process -> S3 -> API.

A small image market (sklearn digits as 8x8 grey images under three capture conventions,
``tests.support.image_market``): a labelled zip of PNGs and an unlabelled image NPZ from one
domain each find that domain's learnware first; a corrupt PNG fails only its own submission.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from numpy.testing import assert_allclose

from specs import rkme_fit
from specs.encoders import ConvImageEncoder
from tests.integration.test_submissions import _finished
from tests.support.image_market import image_market_create, image_task, images_npz, images_zip, png_bytes

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client"))  # the client is its own distribution
from lwm_client.predict import Predictor  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _post(
    client: Any, files: dict[str, tuple[str, bytes]], requirements: dict[str, Any], **fields: str
) -> dict[str, Any]:
    form: dict[str, Any] = {k: SimpleUploadedFile(*v) for k, v in files.items()}
    response = client.post(
        "/api/v1/submissions/",
        {**form, "requirements": json.dumps(requirements), **fields},
        format="multipart",
    )
    assert response.status_code == 202, response.json()
    assert response.json()["submission"]["modality"] == "image"
    return response.json()


def test_image_submissions_find_their_domains_learnware_and_are_evaluated_with_labels(
    celery_worker, s3_storage, bob, alice, client_for
):
    market = image_market_create(owner=bob)
    client = client_for(alice)
    space = {"feature_space": market.space.key}
    transposed = image_task("transposed", n=60, n_labelled=60, seed=31)
    inverted = image_task("inverted", n=60, seed=32)
    labelled = _post(
        client,
        {
            "data": ("photos.zip", images_zip(transposed["images"])),
            "labelled": ("labelled.zip", images_zip(transposed["images_l"], transposed["y_l"])),
        },
        space,
    )
    unlabelled = _post(
        client, {"data": ("images.npz", images_npz(inverted["images"]))}, space, modality="image"
    )
    broken = images_zip(
        inverted["images"][:12], extra={"img_0005.png": png_bytes(inverted["images"][5])[:30]}
    )
    corrupt = _post(client, {"data": ("broken.zip", broken)}, space)

    body = _finished(client, labelled["submission"]["id"])
    assert body["status"] == "succeeded", body["error"]
    results = body["results"]
    assert results["spec"]["image_shape"] == [1, 8, 8] and body["feature_space"] == market.space.key
    # The worker's RKME is the one of every decoded PNG (unlabelled and labelled) under the space's encoder,
    # recomputed here.
    every = np.concatenate([transposed["images"], transposed["images_l"]]).astype(np.float32) / 255.0
    E = ConvImageEncoder(0).encode(every).astype(np.float64)
    assert_allclose(
        results["spec"]["self_term"], rkme_fit(E, 100, 1.0, random_state=0).self_term(), rtol=1e-6
    )
    own = market.learnwares["transposed"].id
    assert results["identify"]["singles"][0]["learnware_id"] == own
    assert results["rank"]["candidates"][0]["learnware_id"] == own
    assert results["rank"]["candidates"][0]["scores"]["accuracy"] > max(
        c["scores"]["accuracy"] for c in results["rank"]["candidates"][1:]
    )
    evaluation = results["evaluate"]
    assert (
        evaluation["labelled"] and evaluation["n_test"] == 60
    )  # every labelled image, by repeated cross-validation
    assert set(evaluation["methods"]) == {
        m["method"] for m in results["assemble"]["methods"] if not m.get("skipped")
    }
    assert evaluation["verdict"]["beats_from_scratch"] == (evaluation["verdicts"]["from_scratch"] == "better")
    # The downloaded package, on the user's machine, predicts the raw images as the server's refitted method
    # does.
    from marketplace.submissions.models import Submission
    from tests.support.reuse import delivered_predictions

    download = client.get(body["package_url"])
    content = b"".join(download.streaming_content)
    assert hashlib.sha256(content).hexdigest() == body["package_sha256"]
    predictor = Predictor.from_bytes(content)
    assert predictor.manifest["input"] == {"shape": [1, 8, 8]}
    classes = results["assemble"]["classes"]
    predicted = predictor.predict(transposed["images_l"])
    expected = np.asarray(classes)[delivered_predictions(Submission.objects.get(id=body["id"]))]
    assert np.array_equal(predicted, expected)

    body = _finished(client, unlabelled["submission"]["id"])
    assert body["status"] == "succeeded", body["error"]
    assert body["results"]["identify"]["singles"][0]["learnware_id"] == market.learnwares["inverted"].id
    assert body["results"]["evaluate"]["labelled"] is False and body["results"]["rank"]["skipped"]

    body = _finished(client, corrupt["submission"]["id"])
    assert body["status"] == "rejected"
    assert (
        body["error"]["code"] == "submission:user:corrupt-image"
        and "img_0005.png" in body["error"]["message"]
    )
