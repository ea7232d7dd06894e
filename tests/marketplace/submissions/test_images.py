"""Image submissions: reading a zip of PNG/JPEG files or an image NPZ (every bad input named),
the API's formats, and the pipeline in this process on the small image market."""

from __future__ import annotations

import io
import json
import stat
import zipfile
from typing import Any

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from numpy.testing import assert_allclose, assert_array_equal
from PIL import Image

from marketplace.core.exceptions import ValidationFailed
from marketplace.submissions.image_data import IMAGES, read_images
from marketplace.submissions.models import Submission
from marketplace.submissions.services import submission_create
from specs import rkme_fit
from specs.encoders import ConvImageEncoder
from tests.support.image_market import (
    image_market_create,
    image_names,
    image_task,
    images_npz,
    images_zip,
    png_bytes,
)
from workers.pipelines.reuse import reuse_run

pytestmark = pytest.mark.django_db

RNG = np.random.default_rng(0)
GREY = RNG.integers(
    0, 256, size=(5, 1, 6, 7), dtype=np.uint8
)  # H=6, W=7: rows and columns cannot be swapped unseen


@pytest.fixture(autouse=True)
def _no_active_limit(settings: Any) -> None:
    settings.LWM_SUBMISSION_MAX_ACTIVE = 1000


def _zip(files: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            if name == symlink:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, data)
    return buffer.getvalue()


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _refused(raw: bytes, fmt: str = IMAGES, **kwargs: Any) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as err:
        read_images(raw, fmt, field=kwargs.pop("field", "data"), **kwargs)
    return err.value


# --- reading -----------------------------------------------------------------------------------
def test_a_zip_of_pngs_decodes_to_the_pixels_in_name_order_with_labels_mapped_by_file_name():
    labels = np.array([3, 1, 4, 1, 5])
    data = read_images(images_zip(GREY, labels), IMAGES, field="labelled", labelled=True)
    assert data.shape == (1, 6, 7) and data.names == image_names(5)
    assert_array_equal(data.images, GREY / np.float32(255.0))  # PNG is lossless: exact
    assert_array_equal(data.y, labels)  # labels.csv is written in shuffled order


def test_grey_and_colour_images_together_become_rgb_with_grey_repeated():
    colour = RNG.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
    files = {"a.png": png_bytes(GREY[0]), "b.png": _encoded(Image.fromarray(colour, "RGB"), "PNG")}
    data = read_images(_zip(files), IMAGES, field="data")
    assert data.shape == (3, 6, 7)
    assert_array_equal(data.images[0], np.repeat(GREY[0], 3, axis=0) / np.float32(255.0))
    assert_array_equal(data.images[1], colour.transpose(2, 0, 1) / np.float32(255.0))


def test_an_npz_of_uint8_or_unit_float_images_reads_like_the_pngs():
    from_uint8 = read_images(images_npz(GREY, np.arange(5)), "npz", field="labelled", labelled=True)
    assert_array_equal(from_uint8.images, GREY / np.float32(255.0))
    assert_array_equal(from_uint8.y, np.arange(5))
    from_float = read_images(
        images_npz(GREY[:, 0].astype(np.float32) / 255.0), "npz", field="data"
    )  # (n, H, W): grey
    assert from_float.shape == (1, 6, 7)
    assert_allclose(from_float.images, from_uint8.images, atol=1e-7)


@pytest.mark.parametrize(
    "build, code, named",
    [
        (
            lambda: _zip({"a.png": png_bytes(GREY[0]), "b.png": png_bytes(GREY[1])[:40]}),
            "corrupt-image",
            "b.png",
        ),
        (lambda: _zip({"a.png": b"not an image at all"}), "corrupt-image", "a.png"),
        (lambda: _zip({"a.png": _encoded(Image.fromarray(GREY[0, 0]), "GIF")}), "bad-format", "GIF"),
        (lambda: _zip({"a.jpg": _encoded(Image.new("CMYK", (6, 6)), "JPEG")}), "wrong-image-mode", "CMYK"),
        (lambda: _zip({"a.png": _encoded(Image.new("I;16", (6, 6)), "PNG")}), "wrong-image-mode", "a.png"),
        (
            lambda: _zip({"a.png": png_bytes(GREY[0]), "b.png": png_bytes(GREY[1, :, :5])}),
            "wrong-image-size",
            "b.png",
        ),
        (lambda: _zip({"a.png": png_bytes(GREY[0, :, :3, :3])}), "wrong-image-size", "3x3"),
        (lambda: _zip({"a.png": png_bytes(GREY[0]), "notes.txt": b"hello"}), "bad-format", "notes.txt"),
        (lambda: _zip({"../evil.png": png_bytes(GREY[0])}), "path-traversal", "../evil.png"),
        (lambda: _zip({"/abs.png": png_bytes(GREY[0])}), "absolute-path", "/abs.png"),
        (
            lambda: _zip({"a.png": png_bytes(GREY[0]), "link.png": b"/etc/passwd"}, symlink="link.png"),
            "symlink",
            "link.png",
        ),
        (
            lambda: _zip({"a.png": png_bytes(GREY[0]), "more.zip": _zip({"b.png": png_bytes(GREY[1])})}),
            "nested-archive",
            "more.zip",
        ),
        (lambda: _zip({"big.png": b"\0" * (3 << 20)}), "zip-bomb", "big.png"),
        (lambda: b"PK\x03\x04 truncated", "corrupt-zip", "zip"),
        (lambda: _zip({"__MACOSX/._a.png": b"junk"}), "empty-data", "no PNG/JPEG"),
    ],
)
def test_every_bad_zip_is_refused_with_a_code_and_a_message_naming_the_problem(build, code, named):
    err = _refused(build())
    assert err.code == f"submission:user:{code}", err
    assert str(err).startswith("data:") and named in str(err)


def test_a_decompression_bomb_is_refused_from_its_header_before_it_is_decoded(settings):
    # 5000 x 5000 one-bit pixels compress to a few kB; decoded as floats they would take 100 MB.
    huge = _encoded(Image.new("1", (5000, 5000)), "PNG")
    assert len(huge) < 100_000
    err = _refused(_zip({"huge.png": huge}))
    assert err.code == "submission:user:image-too-large" and "5000x5000" in str(err)
    settings.LWM_SUBMISSION_MAX_IMAGE_PIXELS = 41  # the cap is a setting: 6 x 7 = 42 pixels is one too many
    assert _refused(images_zip(GREY[:1])).code == "submission:user:image-too-large"


def test_count_and_memory_caps_come_from_settings(settings):
    settings.LWM_SUBMISSION_MAX_IMAGES = 3
    err = _refused(
        images_zip(GREY)
    )  # 5 images: the zip validator's file cap (images + labels.csv) refuses it
    assert err.code == "submission:user:too-many-files" and "limit 4" in str(err)
    assert _refused(images_zip(GREY[:4])).code == "submission:user:too-many-files"  # 4 images, no labels.csv
    assert _refused(images_npz(GREY), "npz").code == "submission:user:too-many-files"
    settings.LWM_SUBMISSION_MAX_IMAGES = 100
    settings.LWM_SUBMISSION_MAX_IMAGE_VALUES = 5 * 6 * 7 - 1
    for raw, fmt in ((images_zip(GREY), IMAGES), (images_npz(GREY), "npz")):
        err = _refused(raw, fmt)
        assert err.code == "submission:user:too-large" and "210 values" in str(err)


@pytest.mark.parametrize(
    "labels_csv, code, named",
    [
        (None, "missing-labels", "no labels.csv"),
        (b"file,class\nimg_0000.png,1\n", "missing-labels", "'label'"),
        (
            b"file,label\nimg_0000.png,1\nimg_0001.png,2\nimg_0002.png,3\nimg_0003.png,4\n",
            "labels-mismatch",
            "img_0004.png",
        ),
        (
            b"file,label\n" + b"".join(f"img_{i:04d}.png,1\n".encode() for i in range(5)) + b"cat.png,2\n",
            "labels-mismatch",
            "cat.png",
        ),
        (
            b"file,label\n"
            + b"".join(f"img_{i:04d}.png,1\n".encode() for i in range(5))
            + b"img_0001.png,2\n",
            "labels-mismatch",
            "second time",
        ),
        (
            b"file,label\n" + b"".join(f"img_{i:04d}.png,\n".encode() for i in range(5)),
            "missing-labels",
            "empty label",
        ),
    ],
)
def test_labels_that_do_not_match_the_images_are_refused_naming_the_file(labels_csv, code, named):
    extra = {"labels.csv": labels_csv} if labels_csv is not None else {}
    err = _refused(images_zip(GREY, extra=extra), field="labelled", labelled=True)
    assert err.code == f"submission:user:{code}" and str(err).startswith("labelled:") and named in str(err), (
        err
    )


def test_a_custom_label_column_is_read():
    data = read_images(
        images_zip(GREY, np.arange(5), label_column="digit"),
        IMAGES,
        field="labelled",
        label_column="digit",
        labelled=True,
    )
    assert_array_equal(data.y, np.arange(5))


@pytest.mark.parametrize(
    "build, code",
    [
        (lambda: images_npz(GREY.astype(np.float32) * np.nan), "nan"),
        (
            lambda: images_npz(GREY[:, :, :, :, None].repeat(2, axis=4).reshape(5, 2, 6, 7)),
            "bad-format",
        ),  # C = 2
        (lambda: images_npz(-GREY.astype(np.float32) / 255.0 - 0.5), "bad-format"),
        (lambda: images_npz(GREY.astype(object)), "not-numeric"),
        (lambda: images_npz(GREY[:0]), "empty-data"),
        (lambda: b"not a zip", "bad-format"),
    ],
)
def test_bad_image_npz_files_are_refused(build, code):
    assert _refused(build(), "npz").code == f"submission:user:{code}"


def test_an_image_npz_needs_as_many_labels_as_images():
    assert _refused(images_npz(GREY), "npz", labelled=True).code == "submission:user:missing-labels"
    err = _refused(images_npz(GREY, np.arange(4)), "npz", labelled=True)
    assert err.code == "submission:user:labels-mismatch" and "4 labels for 5 images" in str(err)


# --- the API -----------------------------------------------------------------------------------
def test_a_zip_of_images_is_accepted_as_an_image_submission(alice, client_for):
    form = {
        "data": SimpleUploadedFile("photos.zip", images_zip(GREY)),
        "labelled": SimpleUploadedFile("labelled.zip", images_zip(GREY, np.arange(5))),
    }
    response = client_for(alice).post("/api/v1/submissions/", form, format="multipart")
    assert response.status_code == 202, response.json()
    body = response.json()["submission"]
    assert body["data_format"] == IMAGES and body["modality"] == "image" and body["has_labels"]
    submission = Submission.objects.get(id=body["id"])
    assert submission.data_file.name.endswith("/data.zip") and submission.labelled_file.name.endswith(
        "/labelled.zip"
    )
    assert submission.labelled_format == IMAGES


def test_an_image_npz_is_accepted_with_modality_image(alice, client_for):
    form = {"data": SimpleUploadedFile("images.npz", images_npz(GREY)), "modality": "image"}
    response = client_for(alice).post("/api/v1/submissions/", form, format="multipart")
    assert response.status_code == 202, response.json()
    assert response.json()["submission"]["modality"] == "image"


@pytest.mark.parametrize(
    "form, field",
    [
        (
            {"data": ("photos.zip", images_zip(GREY)), "labelled": ("labelled.csv", b"a,label\n1,x\n")},
            "labelled_format",
        ),
        ({"data": ("rows.csv", b"a,b\n1,2\n"), "modality": "image"}, "data_format"),
        (
            {
                "data": ("rows.csv", b"a,b\n1,2\n"),
                "labelled": ("labelled.zip", images_zip(GREY, np.arange(5))),
            },
            "labelled_format",
        ),
    ],
)
def test_files_that_cannot_hold_the_modalitys_data_are_refused_before_anything_is_stored(
    alice, client_for, form, field
):
    body = {k: SimpleUploadedFile(*v) if isinstance(v, tuple) else v for k, v in form.items()}
    response = client_for(alice).post("/api/v1/submissions/", body, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(field)
    assert not Submission.objects.exists()


# --- the pipeline in this process ------------------------------------------------------------------
def _submit(
    owner: Any, data: bytes, labelled: bytes | None, requirements: dict[str, Any], fmt: str = IMAGES
) -> Submission:
    extra = (
        {"labelled": ContentFile(labelled, name="l.zip"), "labelled_format": IMAGES}
        if labelled is not None
        else {}
    )
    return submission_create(
        owner=owner,
        data_format=fmt,
        data=ContentFile(data, name="d.zip"),
        modality="image",
        requirements=requirements,
        **extra,
    )


def test_an_image_task_is_specified_by_the_encoder_ranked_and_evaluated(bob, alice, report):
    market = image_market_create(owner=bob)
    task = image_task("transposed", n=50, n_labelled=50, seed=5)
    submission = _submit(
        alice,
        images_zip(task["images"]),
        images_zip(task["images_l"], task["y_l"]),
        {"feature_space": market.space.key},
    )
    reuse_run(submission_id=str(submission.id), report=report)
    results = Submission.objects.get(id=submission.id).results

    # spec: the RKME of the decoded PNGs under the space's encoder, recomputed here from the arrays.
    spec = results["spec"]
    assert spec["feature_space"] == market.space.key and spec["image_shape"] == [1, 8, 8]
    # Identification specs every image the user sent: the unlabelled ones and the labelled ones.
    every = np.concatenate([task["images"], task["images_l"]]).astype(np.float32) / 255.0
    E = ConvImageEncoder(0).encode(every).astype(np.float64)
    assert_allclose(spec["self_term"], rkme_fit(E, 100, 1.0, random_state=0).self_term(), rtol=1e-6)
    assert spec["labelled"]["classes"] == sorted({str(v) for v in task["y_l"]})

    own = market.learnwares["transposed"].id
    assert results["identify"]["singles"][0]["learnware_id"] == own
    assert results["rank"]["candidates"][0]["learnware_id"] == own
    # Direct accuracy of the top candidate is its own model on the labelled pixels, recomputed here.
    import torch

    model = torch.jit.load(io.BytesIO(market.arrays.models["transposed"]))
    with torch.no_grad():
        predicted = model(torch.from_numpy(task["images_l"].astype(np.float32) / 255.0)).argmax(1).numpy()
    assert_allclose(
        results["rank"]["candidates"][0]["scores"]["accuracy"], np.mean(predicted == task["y_l"]), atol=1e-12
    )

    evaluation = results["evaluate"]
    assert evaluation["labelled"] and set(evaluation["methods"]) == {
        m["method"] for m in results["assemble"]["methods"] if not m.get("skipped")
    }
    assert evaluation["verdict"]["beats_from_scratch"] == (evaluation["verdicts"]["from_scratch"] == "better")
    assert all(s["ci95"][0] <= s["mean"] <= s["ci95"][1] for s in evaluation["scores"].values())
    recipe_transform = json.loads(_package_file(submission, "recipe.json"))["transform"]
    assert recipe_transform["image"] == {
        "encoder": "ConvImageEncoder",
        "seed": 0,
        "side": 32,
        "shape": [1, 8, 8],
    }
    _assert_the_package_predicts_raw_images_as_evaluated(submission, task)


@pytest.mark.parametrize("method", ["stitching_head", "trained_job_selector"])
def test_a_package_whose_method_works_in_the_space_encodes_the_raw_images_as_the_pipeline_did(
    bob, alice, report, method
):
    # These methods take the images' encoding as well as the members' outputs: an identity transform could not
    # run them.
    market = image_market_create(owner=bob)
    task = image_task("inverted", n=40, n_labelled=50, seed=9)
    submission = _submit(
        alice,
        images_zip(task["images"]),
        images_zip(task["images_l"], task["y_l"]),
        {"feature_space": market.space.key, "methods": [method]},
    )
    reuse_run(submission_id=str(submission.id), report=report)
    submission.refresh_from_db()
    assert submission.results["assemble"]["chosen"] == method
    _assert_the_package_predicts_raw_images_as_evaluated(submission, task)


def test_an_image_package_takes_the_one_input_shape_its_members_declare():
    from workers.pipelines.reuse_package import _members_shape

    def files(shape: list[int]) -> dict[str, bytes]:
        return {"learnware.yaml": json.dumps({"input": {"shape": shape}}).encode()}  # JSON is YAML

    assert _members_shape([files([1, 8, 8]), files([1, 8, 8])]) == [1, 8, 8]
    with pytest.raises(ValueError, match="2 input shapes"):
        _members_shape([files([1, 8, 8]), files([3, 8, 8])])


def _client_predictor() -> Any:
    import sys
    from pathlib import Path

    sys.path.insert(
        0, str(Path(__file__).resolve().parents[3] / "client")
    )  # the client is its own distribution
    from lwm_client.predict import Predictor

    return Predictor


def _assert_the_package_predicts_raw_images_as_evaluated(
    submission: Submission, task: dict[str, Any]
) -> None:
    """The package, on the raw labelled images, predicts what the pipeline's refitted method does, on
    the server's predictor and on the client's, for every way of handing over the images."""
    from specs.packaging.manifest import parse_manifest
    from tests.support.reuse import delivered_predictions
    from workers.pipelines.reuse_package import PackagePredictor

    submission.refresh_from_db()
    content = submission.package.open("rb").read()
    manifest = parse_manifest(_package_file(submission, "learnware.yaml"))
    assert manifest["modality"] == "image" and manifest["input"] == {"shape": [1, 8, 8]}
    images = task["images_l"]  # uint8 (n, 1, 8, 8), as the PNGs held them
    server, client = PackagePredictor.from_bytes(content), _client_predictor().from_bytes(content)
    proba = server.predict_proba(images)
    assert np.array_equal(proba.argmax(axis=1), delivered_predictions(submission))
    unit = images.astype(np.float32) / 255.0
    for given in (images, unit, unit[:, 0], unit.reshape(len(unit), -1)):
        assert_allclose(client.predict_proba(given), proba, atol=1e-9)
    # The space the method sees is the space's encoder on the pixels, recomputed here.
    rows = client._inputs(images)
    assert_allclose(rows, unit.reshape(len(unit), -1).astype(np.float64), atol=0)
    assert_allclose(
        client._assembly.transform(rows), ConvImageEncoder(0).encode(unit).astype(np.float64), atol=1e-6
    )
    with pytest.raises(ValueError, match=r"\(n, 1, 8, 8\)"):
        server.predict(np.zeros((2, 1, 16, 16), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(n, 1, 8, 8\)"):
        client.predict(np.zeros((2, 3, 8, 8), dtype=np.uint8))


def test_labelled_images_of_another_size_than_the_data_fail_the_submission_naming_both(bob, alice, report):
    market = image_market_create(owner=bob, domains=("upright",))
    task = image_task("upright", n=20, n_labelled=20, seed=6)
    bigger = np.repeat(np.repeat(task["images_l"], 2, axis=2), 2, axis=3)  # 16 x 16
    submission = _submit(
        alice,
        images_zip(task["images"]),
        images_zip(bigger, task["y_l"]),
        {"feature_space": market.space.key},
    )
    with pytest.raises(ValidationFailed) as err:
        reuse_run(submission_id=str(submission.id), report=report)
    assert (
        err.value.code == "submission:user:wrong-image-size"
        and "1x16x16" in str(err.value)
        and "1x8x8" in str(err.value)
    )


def test_a_convolutional_learnware_is_fed_images_as_publishing_probed_it_ranked_and_packaged(
    bob, alice, report
):
    # Its model takes (n, 1, 8, 8) only (publishing probes image models so): flattened rows would fail it.
    import torch

    from tests.support.image_market import conv_model

    market = image_market_create(owner=bob, conv=("transposed",))
    task = image_task("transposed", n=50, n_labelled=50, seed=5)
    model = torch.jit.load(io.BytesIO(conv_model(market.arrays.models["transposed"])))
    unit = torch.from_numpy(task["images_l"].astype(np.float32) / 255.0)
    with pytest.raises(RuntimeError):
        model(unit.reshape(len(unit), -1))
    submission = _submit(
        alice,
        images_zip(task["images"]),
        images_zip(task["images_l"], task["y_l"]),
        {"feature_space": market.space.key},
    )
    reuse_run(submission_id=str(submission.id), report=report)
    results = Submission.objects.get(id=submission.id).results

    own = market.learnwares["transposed"].id
    top = results["rank"]["candidates"][0]
    assert top["learnware_id"] == own
    with torch.no_grad():
        predicted = model(unit).argmax(1).numpy()  # the conv model on the images, recomputed here
    assert_allclose(top["scores"]["accuracy"], np.mean(predicted == task["y_l"]), atol=1e-12)
    members = json.loads(_package_file(submission, "recipe.json"))["members"]
    assert own in {m["learnware_id"] for m in members}
    assert all(m["input_shape"] == [1, 8, 8] for m in members)
    _assert_the_package_predicts_raw_images_as_evaluated(submission, task)


def test_images_of_another_size_than_a_learnwares_input_shape_are_refused_naming_both():
    from workers.pipelines.reuse_members import Member, OutputCache

    member = Member(
        1,
        1,
        1,
        "digits-conv",
        "MIT",
        "0" * 64,
        "torchscript",
        "model.pt",
        None,
        np.zeros((1, 128)),
        np.ones(1),
        [1, 8, 8],
    )
    rows = np.zeros((3, 64), dtype=np.float32)
    images = OutputCache().inputs(member, rows)
    assert images.shape == (3, 1, 8, 8) and images.flags.c_contiguous
    assert_array_equal(
        OutputCache(image_shape=[1, 8, 8]).inputs(member, np.arange(192.0).reshape(3, 64)).reshape(3, -1),
        np.arange(192.0).reshape(3, 64),
    )  # (C, H, W) order kept
    with pytest.raises(ValidationFailed) as err:
        OutputCache(image_shape=[1, 16, 16]).inputs(member, np.zeros((3, 256), dtype=np.float32))
    assert (
        err.value.code == "submission:user:image-shape"
        and "[1, 16, 16]" in str(err.value)
        and "[1, 8, 8]" in str(err.value)
    )
    with pytest.raises(ValidationFailed) as err:  # the submission's shape unknown: the pixel counts are named
        OutputCache().inputs(member, np.zeros((3, 256), dtype=np.float32))
    assert (
        err.value.code == "submission:user:image-shape"
        and "256 pixels" in str(err.value)
        and "[1, 8, 8]" in str(err.value)
    )
    flat = Member(
        *[
            getattr(member, f)
            for f in (
                "version_id",
                "learnware_id",
                "number",
                "name",
                "license",
                "sha256",
                "artifact_format",
                "artifact_name",
                "classes",
                "Z",
                "beta",
            )
        ]
    )
    assert OutputCache().inputs(flat, rows) is rows  # a table learnware takes the rows


def test_a_submission_of_bigger_images_than_the_learnwares_take_fails_naming_both_sizes(bob, alice, report):
    market = image_market_create(owner=bob, domains=("upright",), conv=("upright",))
    task = image_task("upright", n=20, n_labelled=30, seed=6)
    big = {k: np.repeat(np.repeat(task[k], 2, axis=2), 2, axis=3) for k in ("images", "images_l")}  # 16 x 16
    submission = _submit(
        alice,
        images_zip(big["images"]),
        images_zip(big["images_l"], task["y_l"]),
        {"feature_space": market.space.key},
    )
    with pytest.raises(ValidationFailed) as err:
        reuse_run(submission_id=str(submission.id), report=report)
    assert err.value.code == "submission:user:image-shape", err.value
    assert "[1, 8, 8]" in str(err.value) and (
        "256 pixels" in str(err.value) or "[1, 16, 16]" in str(err.value)
    )


def _package_file(submission: Submission, name: str) -> bytes:
    submission.refresh_from_db()
    with submission.package.open("rb") as fh, zipfile.ZipFile(io.BytesIO(fh.read())) as zf:
        return zf.read(name)


def test_the_clients_labelled_image_folder_reads_like_the_servers_zip(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(
        0, str(Path(__file__).resolve().parents[3] / "client")
    )  # the client is its own distribution
    from lwm_client.data import read_labelled_images

    labels = np.array([2, 7, 1, 8, 2])
    with zipfile.ZipFile(io.BytesIO(images_zip(GREY, labels))) as zf:
        zf.extractall(tmp_path)
    images, y = read_labelled_images(tmp_path)
    server = read_images(images_zip(GREY, labels), IMAGES, field="labelled", labelled=True)
    assert_array_equal(images, server.images)
    assert_array_equal(y.astype(int), server.y)
    np.savez(tmp_path / "sample.npz", images=GREY, y=labels)
    images, y = read_labelled_images(tmp_path / "sample.npz")
    assert_array_equal(images, server.images)
    assert_array_equal(y, labels)


def test_a_client_rkme_with_labelled_images_as_the_client_sends_them_is_ranked_and_evaluated(
    bob, alice, report
):
    # What ``Client.submit(spec, labelled=(images, y), modality="image")`` sends: an RKME and an NPZ of the
    # images.
    from specs import rkme_to_json

    market = image_market_create(owner=bob)
    task = image_task("inverted", n=40, n_labelled=40, seed=7)
    E = ConvImageEncoder(0).encode(task["images"].astype(np.float32) / 255.0).astype(np.float64)
    rkme = rkme_to_json(rkme_fit(E, 40, 1.0, random_state=0))
    submission = submission_create(
        owner=alice,
        data_format="rkme",
        rkme_json=rkme,
        modality="image",
        labelled=ContentFile(
            images_npz(task["images_l"].astype(np.float32) / 255.0, task["y_l"]), name="l.npz"
        ),
        labelled_format="npz",
        requirements={"feature_space": market.space.key},
    )
    reuse_run(submission_id=str(submission.id), report=report)
    results = Submission.objects.get(id=submission.id).results
    assert results["spec"]["source"] == "client" and results["spec"]["image_shape"] == [1, 8, 8]
    own = market.learnwares["inverted"].id
    assert (
        results["identify"]["singles"][0]["learnware_id"]
        == own
        == results["rank"]["candidates"][0]["learnware_id"]
    )
    assert results["evaluate"]["labelled"] and results["evaluate"]["n_test"] == 40
