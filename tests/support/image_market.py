"""A tiny image market: sklearn's 8x8 digits under three capture conventions, one learnware each.

Domains are per-developer transforms of the images (upright, inverted ink, transposed); they
are the ones the image space's seeded conv encoder tells apart (squared MMD between domains
0.025 to 0.34, within a domain 0.0003; mirrored and upside-down digits are within the noise of
upright ones, so they are left out). Rows are split once (seeded) into the developers' half,
on which each domain's learnware (a TorchScript softmax regression on the pixels that takes
(n, 1, 8, 8) images, or the same pixels flattened) and its RKME (of the conv encoding) are
fitted, and the users' half, from which tasks are drawn.

``image_arrays()`` does the numerical work once per process (no database);
``image_market_create(owner=...)`` writes the rows (a fresh image space, learnwares, published
versions with their package in storage, specifications) and registers them with search.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits

from specs import RFFSketch, rkme_fit, rkme_to_json, self_term
from specs.image_spaces import CONV_SPACE_KEY, IMAGE_SPACES, LITE0_SPACE_KEY, image_encoder
from tests.support.market import fit_softmax, package_bytes

DOMAINS = ("upright", "inverted", "transposed")
CLASSES = [str(c) for c in range(10)]
SHAPE = (1, 8, 8)
GAMMA = 1.0  # the image space's: encoder outputs are unit vectors
SKETCH_DIM = 256
RKME_K = 30
DEV_ROWS = 400  # per domain: enough for a clear RKME, few enough to encode in about a second
LITE0_DEV_ROWS = 100  # per domain in the Lite0 space: about 5 s to encode the three
SEED = 0


def transform(images: np.ndarray, domain: str) -> np.ndarray:
    """A domain's view of (n, 8, 8) uint8 images, as (n, 1, 8, 8) uint8."""
    out = {"upright": images, "inverted": 255 - images, "transposed": images.transpose(0, 2, 1)}[domain]
    return np.ascontiguousarray(out[:, None], dtype=np.uint8)


class _ConvSoftmax(torch.nn.Module):
    """A convolutional front (a 1x1 identity conv) on the softmax regression: takes (n, 1, 8, 8) only.

    Its outputs equal the flat model's on the same images, so a test can recompute them; fed
    flattened (n, 64) rows, the conv fails, as a real convolutional learnware would."""

    def __init__(self, flat: torch.nn.Module) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, kernel_size=1)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
            self.conv.bias.zero_()
        self.flat = flat

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flat(torch.flatten(self.conv(x), 1))


def conv_model(flat_model: bytes) -> bytes:
    """TorchScript bytes of :class:`_ConvSoftmax` around a model from :func:`train_model`."""
    module = _ConvSoftmax(torch.jit.load(io.BytesIO(flat_model)))
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(module.eval(), torch.zeros(2, *SHAPE)), buffer)
    return buffer.getvalue()


def train_model(X: np.ndarray, y: np.ndarray, *, seed: int = 0, epochs: int = 40) -> bytes:
    """TorchScript bytes of a softmax regression fitted on X (n, 64) in [0, 1]; takes (n, 1, 8, 8) or (n,
    64)."""
    buffer = io.BytesIO()
    # Traced, not scripted: the graph is the same for any batch size and tracing takes a fraction of the time.
    module = fit_softmax(X, y, len(CLASSES), seed=seed, epochs=epochs)
    torch.jit.save(torch.jit.trace(module, torch.zeros(2, *SHAPE)), buffer)
    return buffer.getvalue()


@dataclass
class ImageArrays:
    """Everything numerical about the market; built once per process."""

    images: np.ndarray  # (1797, 8, 8) uint8
    labels: np.ndarray  # (1797,)
    user_rows: np.ndarray  # indices left for users
    models: dict[str, bytes] = field(default_factory=dict)
    rkmes: dict[str, str] = field(default_factory=dict)


@lru_cache(maxsize=2)
def image_arrays(space_key: str = CONV_SPACE_KEY) -> ImageArrays:
    """The market's arrays with RKMEs in the conv space, or (``LITE0_SPACE_KEY``) in the Lite0 space
    from fewer developer rows, as Lite0 encodes ~15x slower (the domains stay far apart there)."""
    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    perm = np.random.default_rng(11).permutation(images.shape[0])
    half = images.shape[0] // 2
    n_dev = DEV_ROWS if space_key == CONV_SPACE_KEY else LITE0_DEV_ROWS
    dev, users = np.sort(perm[:half])[:n_dev], np.sort(perm[half:])
    arrays = ImageArrays(images, labels, users)
    encoder = image_encoder(IMAGE_SPACES[space_key][0])
    for i, domain in enumerate(DOMAINS):
        pixels = transform(images[dev], domain).astype(np.float32) / 255.0
        arrays.models[domain] = train_model(pixels.reshape(len(dev), -1), labels[dev], seed=i)
        E = encoder.encode(pixels).astype(np.float64)
        arrays.rkmes[domain] = rkme_to_json(rkme_fit(E, RKME_K, GAMMA, random_state=i))
    return arrays


def package_zip(domain: str, arrays: ImageArrays, *, conv: bool = False) -> tuple[bytes, dict[str, Any]]:
    """A learnware package (learnware.yaml + model.pt + rkme.json) for one domain; with ``conv``,
    its model is the convolutional one (:func:`conv_model`) that takes (n, 1, 8, 8) only."""
    model = conv_model(arrays.models[domain]) if conv else arrays.models[domain]
    manifest = {
        "name": f"digit-images-{domain}" + ("-conv" if conv else ""),
        "description": f"Digit classifier for {domain} 8x8 grey images",
        "kind": "model",
        "modality": "image",
        "task": "classification",
        "input": {"shape": list(SHAPE)},
        "output": {"classes": CLASSES},
        "license": "MIT",
        "tags": ["digits", "images", domain],
        "artifact": {"path": "model.pt", "format": "torchscript"},
        "specification": {"rkme": "rkme.json"},
    }
    return package_bytes(manifest, model, arrays.rkmes[domain]), manifest


@dataclass
class ImageMarket:
    space: Any
    learnwares: dict[str, Any]  # domain -> Learnware
    versions: dict[str, Any]  # domain -> LearnwareVersion
    arrays: ImageArrays


def image_market_create(
    *,
    owner: Any,
    domains: tuple[str, ...] = DOMAINS,
    conv: tuple[str, ...] = (),
    lite0: bool = False,
    key: str = "",
) -> ImageMarket:
    """Write one published learnware per domain in a fresh conv image space (unique key) and index them;
    the domains in ``conv`` get the convolutional model (see :func:`package_zip`). With ``lite0`` the
    learnwares go to the market's real default space (``image-effnet-lite0-64``), RKMEs in it;
    ``key`` names the space instead of a fresh one."""
    from django.core.files.base import ContentFile

    from marketplace.learnwares.choices import Kind, Modality, Task, VersionStatus
    from marketplace.learnwares.models import FeatureSpace, Learnware, LearnwareVersion, Specification
    from marketplace.search.services import index_add

    space_key = LITE0_SPACE_KEY if lite0 else CONV_SPACE_KEY
    arrays = image_arrays(space_key)
    schema, dim, encoder_id = IMAGE_SPACES[space_key]
    key = key or (LITE0_SPACE_KEY if lite0 else f"image-conv-{uuid.uuid4().hex[:8]}")
    space, _ = FeatureSpace.objects.get_or_create(
        key=key,
        defaults={
            "kind": Modality.IMAGE,
            "schema": dict(schema),
            "dim": dim,
            "gamma": GAMMA,
            "standardization": {},
            "encoder_id": encoder_id,
            "sketch_seed": 0,
            "sketch_dim": SKETCH_DIM,
        },
    )
    sketcher = RFFSketch(dim, GAMMA, space.sketch_dim, random_state=space.sketch_seed)
    learnwares, versions = {}, {}
    for domain in domains:
        content, manifest = package_zip(domain, arrays, conv=domain in conv)
        lw = Learnware.objects.create(
            owner=owner,
            name=manifest["name"],
            slug=f"{manifest['name']}-{key}",
            description=manifest["description"],
            kind=Kind.MODEL,
            modality=Modality.IMAGE,
            task=Task.CLASSIFICATION,
            feature_space=space,
            license="MIT",
            tags=manifest["tags"],
        )
        version = LearnwareVersion(
            learnware=lw,
            number=1,
            manifest=manifest,
            artifact_sha256=hashlib.sha256(content).hexdigest(),
            artifact_size=len(content),
            artifact_format="torchscript",
            status=VersionStatus.PUBLISHED,
        )
        version.package.save("package.zip", ContentFile(content), save=False)
        version.save()
        doc = json.loads(arrays.rkmes[domain])
        Z, beta = np.asarray(doc["Z"]), np.asarray(doc["beta"])
        spec = Specification.objects.create(
            version=version,
            feature_space=space,
            rkme=doc,
            k=Z.shape[0],
            self_term=self_term(Z, beta, GAMMA),
            sketch=sketcher.transform(Z, beta).astype(np.float32).tobytes(),
            computed_from="client",
        )
        index_add(specification=spec)
        learnwares[domain], versions[domain] = lw, version
    return ImageMarket(space, learnwares, versions, arrays)


def image_task(domain: str, *, n: int = 60, n_labelled: int = 0, seed: int = 0) -> dict[str, Any]:
    """uint8 images (n, 1, 8, 8) of one domain from the users' half, with a disjoint labelled sample."""
    arrays = image_arrays()
    rows = np.random.default_rng(seed).permutation(arrays.user_rows)[: n + n_labelled]
    images, labels = transform(arrays.images[rows], domain), arrays.labels[rows]
    return {"images": images[:n], "y": labels[:n], "images_l": images[n:], "y_l": labels[n:]}


def png_bytes(image: np.ndarray) -> bytes:
    """One (1, H, W) or (3, H, W) uint8 image as PNG."""
    from PIL import Image

    pixels = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    return buffer.getvalue()


def image_names(n: int) -> list[str]:
    """File names that sort in row order."""
    return [f"img_{i:04d}.png" for i in range(n)]


def images_zip(
    images: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    extra: dict[str, bytes] | None = None,
    label_column: str = "label",
) -> bytes:
    """A zip of PNG files (rows in name order) and, with labels, ``labels.csv`` (file, label) in shuffled
    order."""
    names = image_names(len(images))
    files = {name: png_bytes(img) for name, img in zip(names, images, strict=True)}
    if labels is not None:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["file", label_column])
        for i in np.random.default_rng(0).permutation(len(names)):  # the mapping, not the order, must count
            writer.writerow([names[i], str(labels[i])])
        files["labels.csv"] = out.getvalue().encode()
    files.update(extra or {})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


def images_npz(images: np.ndarray, labels: np.ndarray | None = None, **extra: np.ndarray) -> bytes:
    arrays = {"images": images, **({"y": labels} if labels is not None else {}), **extra}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()
