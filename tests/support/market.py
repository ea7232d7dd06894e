"""A constructed market on real data: sklearn's digits split into domains, one learnware each.

Domains are per-developer transforms of the 8x8 images (upright, mirrored, upside-down,
inverted ink, transposed): every domain has all ten classes, and a model trained on one
is good on its own domain only. Rows are split once (seeded) into the developers' half,
on which each domain's learnware (a TorchScript softmax regression) and RKME are fitted,
and the users' half, from which tasks are drawn, so a user never holds training rows.

``market_arrays()`` does the numerical work once per process (no database);
``market_create(owner=...)`` writes the rows (feature space, learnwares, published
versions with their package in storage, specifications) and registers them with search.
"""

from __future__ import annotations

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
import yaml
from sklearn.datasets import load_digits

from specs import RFFSketch, TableStandardizer, rkme_fit, rkme_to_json
from specs.units import unit_rms

DOMAINS = ("upright", "mirrored", "upside-down", "inverted", "transposed")
COLUMNS = [f"p{i}" for i in range(64)]
CLASSES = [str(c) for c in range(10)]
GAMMA = 1.0 / (2 * 64)
SKETCH_DIM = 512
RKME_K = 50


def transform(images: np.ndarray, domain: str) -> np.ndarray:
    """Apply a domain's transform to (n, 64) digit rows."""
    img = images.reshape(-1, 8, 8)
    out = {
        "upright": img,
        "mirrored": img[:, :, ::-1],
        "upside-down": img[:, ::-1, :],
        "inverted": 16.0 - img,
        "transposed": img.transpose(0, 2, 1),
    }[domain]
    return np.ascontiguousarray(out.reshape(-1, 64), dtype=np.float64)


class _Softmax(torch.nn.Module):
    """Softmax regression on standardised inputs: (n, 64) rows, or (n, 1, 8, 8) images flattened."""

    def __init__(
        self, mean: torch.Tensor, scale: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
    ) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("scale", scale)
        self.linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x.reshape(x.shape[0], -1) - self.mean) / self.scale)


def fit_softmax(X: np.ndarray, y: np.ndarray, n_classes: int, *, seed: int = 0, epochs: int = 40) -> _Softmax:
    """A softmax regression on X (n, p) fitted full-batch with L-BFGS (small L2 penalty)."""
    torch.manual_seed(seed)
    mean, std = X.mean(axis=0), X.std(axis=0)
    scale = np.where(std > 0, std, 1.0)
    Xt = torch.tensor((X - mean) / scale, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.int64)
    layer = torch.nn.Linear(X.shape[1], n_classes)
    opt = torch.optim.LBFGS(layer.parameters(), max_iter=epochs, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(layer(Xt), yt) + 1e-3 * (layer.weight**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return _Softmax(
        torch.tensor(mean, dtype=torch.float32),
        torch.tensor(scale, dtype=torch.float32),
        layer.weight.detach(),
        layer.bias.detach(),
    ).eval()


def package_bytes(manifest: dict[str, Any], model: bytes, rkme_json: str) -> bytes:
    """A learnware package zip (learnware.yaml + model.pt + rkme.json), byte-reproducible."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in (
            ("learnware.yaml", yaml.safe_dump(manifest).encode()),
            ("model.pt", model),
            ("rkme.json", rkme_json.encode()),
        ):
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


def train_model(X: np.ndarray, y: np.ndarray, *, seed: int = 0, epochs: int = 40) -> bytes:
    """A softmax regression trained full-batch with L-BFGS; returns TorchScript bytes."""
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(fit_softmax(X, y, 10, seed=seed, epochs=epochs)), buffer)
    return buffer.getvalue()


@dataclass
class MarketArrays:
    """Everything numerical about the market; built once per process."""

    standardizer: TableStandardizer
    user_rows: np.ndarray  # (n_users,) indices into digits for user tasks
    images: np.ndarray  # (1797, 64)
    labels: np.ndarray  # (1797,)
    models: dict[str, bytes] = field(default_factory=dict)
    rkmes: dict[str, str] = field(default_factory=dict)


@lru_cache(maxsize=1)
def market_arrays() -> MarketArrays:
    digits = load_digits()
    images, labels = digits.data.astype(np.float64), digits.target.astype(np.int64)
    perm = np.random.default_rng(7).permutation(images.shape[0])
    dev, users = np.sort(perm[: images.shape[0] // 2]), np.sort(perm[images.shape[0] // 2 :])
    reference = np.vstack([transform(images[dev], d) for d in DOMAINS])
    standardizer = TableStandardizer().fit(reference)
    arrays = MarketArrays(standardizer, users, images, labels)
    for i, domain in enumerate(DOMAINS):
        X = transform(images[dev], domain)
        arrays.models[domain] = train_model(X, labels[dev], seed=i)
        spec = rkme_fit(standardizer.transform(X), RKME_K, GAMMA, random_state=i)
        # The developer's units travel beside the RKME (as the client's spec builder writes them).
        doc = json.loads(rkme_to_json(spec)) | {"unit_rms": unit_rms(X).tolist()}
        arrays.rkmes[domain] = json.dumps(doc)
    return arrays


def package_zip(domain: str, arrays: MarketArrays, *, license: str = "MIT") -> tuple[bytes, dict[str, Any]]:
    """A learnware package (learnware.yaml + model.pt + rkme.json) for one domain."""
    manifest = {
        "name": f"digits-{domain}",
        "description": f"Digit classifier for {domain} 8x8 scans",
        "kind": "model",
        "modality": "table",
        "task": "classification",
        "input": {"columns": COLUMNS},
        "output": {"classes": CLASSES},
        "license": license,
        "tags": ["digits", domain],
        "artifact": {"path": "model.pt", "format": "torchscript"},
        "specification": {"rkme": "rkme.json"},
    }
    return package_bytes(manifest, arrays.models[domain], arrays.rkmes[domain]), manifest


@dataclass
class Market:
    space: Any
    learnwares: dict[str, Any]  # domain -> Learnware
    versions: dict[str, Any]  # domain -> LearnwareVersion
    arrays: MarketArrays


def market_create(
    *,
    owner: Any,
    domains: tuple[str, ...] = DOMAINS,
    licenses: dict[str, str] | None = None,
    private: tuple[str, ...] = (),
) -> Market:
    """Write the market's rows and register every version with the search index.

    Each call makes a new feature space key, so a worker's cached index of an earlier
    test (same generation numbers, other rows) is never taken for this market's.
    """
    from django.core.files.base import ContentFile

    from marketplace.learnwares.choices import Kind, Modality, Task, VersionStatus, Visibility
    from marketplace.learnwares.models import FeatureSpace, Learnware, LearnwareVersion, Specification
    from marketplace.search.services import index_add

    arrays = market_arrays()
    key = f"digits-{uuid.uuid4().hex[:8]}"
    space = FeatureSpace.objects.create(
        key=key,
        kind=Modality.TABLE,
        schema={"columns": COLUMNS},
        dim=64,
        gamma=GAMMA,
        standardization=arrays.standardizer.to_dict(),
        sketch_seed=0,
        sketch_dim=SKETCH_DIM,
    )
    sketcher = RFFSketch(64, GAMMA, SKETCH_DIM, random_state=0)
    learnwares, versions = {}, {}
    for domain in domains:
        license = (licenses or {}).get(domain, "MIT")
        content, manifest = package_zip(domain, arrays, license=license)
        lw = Learnware.objects.create(
            owner=owner,
            name=manifest["name"],
            slug=f"{manifest['name']}-{key}",
            description=manifest["description"],
            kind=Kind.MODEL,
            modality=Modality.TABLE,
            task=Task.CLASSIFICATION,
            feature_space=space,
            license=license,
            tags=manifest["tags"],
            visibility=Visibility.PRIVATE if domain in private else Visibility.PUBLIC,
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
        from specs import self_term

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
    return Market(space, learnwares, versions, arrays)


def user_task(
    mix: dict[str, float],
    *,
    n: int = 300,
    n_labelled: int = 0,
    seed: int = 0,
    column_scale: np.ndarray | None = None,
) -> dict[str, Any]:
    """Rows of a user whose data come from ``mix`` (domain -> share), from the users' half.

    Returns ``X`` (n, 64), and with ``n_labelled`` a disjoint labelled sample ``X_l``, ``y_l``;
    ``column_scale`` (64,) multiplies every column (the user measures in other units).
    """
    arrays = market_arrays()
    rng = np.random.default_rng(seed)
    need = n + n_labelled
    if need > arrays.user_rows.shape[0]:
        raise ValueError(f"at most {arrays.user_rows.shape[0]} user rows exist, asked for {need}")
    rows = rng.permutation(arrays.user_rows)[:need]
    shares = np.array(list(mix.values()), dtype=np.float64)
    counts = np.floor(shares / shares.sum() * need).astype(int)
    counts[0] += need - counts.sum()
    bounds = np.concatenate([[0], np.cumsum(counts)])
    X = np.vstack(
        [transform(arrays.images[rows[a:b]], d) for d, a, b in zip(mix, bounds[:-1], bounds[1:], strict=True)]
    )
    y = arrays.labels[rows]
    order = rng.permutation(need)
    X, y = X[order], y[order]
    if column_scale is not None:
        X = X * column_scale
    return {"X": X[:n], "X_l": X[n:], "y_l": y[n:], "y": y[:n]}


def csv_bytes(
    X: np.ndarray, y: np.ndarray | None = None, *, columns: list[str] | None = None, label: str = "label"
) -> bytes:
    """A CSV file with a header row (and a label column when ``y`` is given)."""
    header = list(columns or COLUMNS) + ([label] if y is not None else [])
    lines = [",".join(header)]
    for i, row in enumerate(X):
        values = [repr(float(v)) for v in row] + ([str(y[i])] if y is not None else [])
        lines.append(",".join(values))
    return ("\n".join(lines) + "\n").encode()
