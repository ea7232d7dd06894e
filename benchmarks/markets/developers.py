"""Developers of a benchmark market: each trains a model on its own domain's rows and builds the
package a real developer uploads (model + a sample of its rows, or for text an RKME the client
computed from the sample's embeddings); trained models are cached under var/bench-cache."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import numpy as np
import torch

from benchmarks.markets.base import CACHE, ROOT, Domain, MarketData

SAMPLE_ROWS = 300


def train(domain: Domain, market: str, *, seed: int) -> bytes:
    """TorchScript bytes of a softmax regression over the domain's own classes (cached)."""
    from tests.support.market import fit_softmax

    path = CACHE / "models" / f"{market}-{domain.name}-{seed}.pt"
    if path.exists():
        return path.read_bytes()
    X = domain.X_dev.reshape(domain.X_dev.shape[0], -1).astype(np.float64)
    y = np.asarray([domain.classes.index(c) for c in domain.y_dev])
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(fit_softmax(X, y, len(domain.classes), seed=seed, epochs=100)), buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def probabilities(model: bytes, X: np.ndarray) -> np.ndarray:
    """(n, k) softmax over the model's own classes."""
    net = torch.jit.load(io.BytesIO(model)).eval()
    with torch.no_grad():
        return (
            torch.softmax(net(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))), 1)
            .double()
            .numpy()
        )


def _csv(columns: list[str], X: np.ndarray) -> str:
    return ",".join(columns) + "\n" + "".join(",".join(repr(float(v)) for v in row) + "\n" for row in X)


def _text_rkme(E: np.ndarray) -> str:
    """The RKME the client computes for a text sample (``Client.spec_texts`` on its embeddings)."""
    sys.path.insert(0, str(ROOT / "client"))
    from lwm_client.data import rkme_document, spec_encoded
    from lwm_client.spaces import ENCODER_SPACES

    return json.dumps(rkme_document(spec_encoded(E, ENCODER_SPACES["text"])))


def package(market: MarketData, domain: Domain, model: bytes, *, seed: int) -> bytes:
    """The zip a developer uploads: learnware.yaml, model.pt and a sample of the training rows."""
    from tests.support.packages import manifest_yaml, zip_bytes

    # A developer with fewer rows than SAMPLE_ROWS (BBC topics: ~200 training texts each) sends them all.
    n_dev = domain.X_dev.shape[0]
    rows = np.random.default_rng(seed).choice(n_dev, min(SAMPLE_ROWS, n_dev), replace=False)
    input_: dict[str, Any] = {}
    files: dict[str, bytes | str] = {"model.pt": model}
    if market.modality == "table":
        input_ = {"columns": market.columns}
        files["sample.csv"] = _csv(market.columns, domain.X_dev[rows])
    elif market.modality == "image":
        input_ = {"shape": list(domain.X_dev.shape[1:])}
        buffer = io.BytesIO()
        np.savez(buffer, images=domain.X_dev[rows])
        files["sample.npz"] = buffer.getvalue()
    else:
        files["rkme.json"] = _text_rkme(domain.X_dev[rows])
    manifest = {
        "name": f"{market.name}-{domain.name}",
        "description": f"{market.description}: the {domain.name} developer",
        "kind": "model",
        "modality": market.modality,
        "task": "classification",
        "input": input_,
        "output": {"classes": list(domain.classes)},
        "license": "MIT",
        "tags": ["benchmark", market.name],
        "artifact": {"path": "model.pt", "format": "torchscript"},
    }
    return zip_bytes({"learnware.yaml": manifest_yaml(**manifest), **files})


def publish(owner: Any, market: MarketData) -> tuple[dict[int, str], dict[str, bytes]]:
    """Upload and publish every developer's package in this process (the upload service, then the
    publish pipeline with its real sandbox). Returns {version id: domain} and {domain: model}."""
    from marketplace.learnwares.services import learnware_upload
    from workers.pipelines.publish import publish_version

    by_version, models = {}, {}
    for i, (name, domain) in enumerate(market.domains.items()):
        models[name] = train(domain, market.name, seed=i)
        _, version, _ = learnware_upload(user=owner, data=package(market, domain, models[name], seed=i))
        result = publish_version(version_id=version.id, report=lambda *a, **k: None)
        if result.get("status") != "published":
            raise RuntimeError(f"{market.name}/{name} was not published: {result}")
        by_version[version.id] = name
    return by_version, models
