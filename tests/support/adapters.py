"""A tiny adapter market in the MiniLM text space: one LoRA adapter per topic of short sentences.

Each topic has 16 sentences, half positive and half negative in tone; the first 8 (4 + 4)
are the developer's (the adapter's RKME is fitted on their MiniLM embeddings), the last 8
are left for users. Adapters are seeded random LoRAs (r = 4 on query/value of all six
layers, ``tests.support.packages.lora_files``): they exercise ranking, arithmetic, routing
and packaging on the real base model, not skill. ``adapter_market_create`` writes the rows
directly (published versions, specifications, search index), as ``tests.support.market`` does.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

from specs import RFFSketch, rkme_fit, rkme_to_json, self_term
from tests.support.packages import lora_files

TOPICS: dict[str, list[tuple[str, str]]] = {
    "sports": [
        ("The team won the final in a thrilling match", "pos"),
        ("Our striker scored twice and the fans cheered", "pos"),
        ("A record crowd celebrated the championship title", "pos"),
        ("The goalkeeper made a brilliant save", "pos"),
        ("The club lost again and the coach was sacked", "neg"),
        ("A bad injury ended his season early", "neg"),
        ("The referee made a terrible call in the derby", "neg"),
        ("Fans booed the team after the defeat", "neg"),
        ("She ran a personal best in the marathon", "pos"),
        ("The young player had a superb debut", "pos"),
        ("The match was cancelled after crowd trouble", "neg"),
        ("They were relegated after a dismal season", "neg"),
        ("The cyclists enjoyed a great sprint finish", "pos"),
        ("The tennis star broke down in tears after losing", "neg"),
        ("A last minute goal sealed a famous victory", "pos"),
        ("The striker missed an open goal and the team lost", "neg"),
    ],
    "finance": [
        ("Shares rallied after strong quarterly earnings", "pos"),
        ("The bank reported record profits this year", "pos"),
        ("Investors welcomed the upbeat growth forecast", "pos"),
        ("The startup raised a large funding round", "pos"),
        ("The stock crashed after the fraud was revealed", "neg"),
        ("The company filed for bankruptcy on Monday", "neg"),
        ("Inflation hit savers and markets fell sharply", "neg"),
        ("The firm cut thousands of jobs to save costs", "neg"),
        ("Dividends rose as sales beat expectations", "pos"),
        ("The merger created a profitable market leader", "pos"),
        ("Bond yields spiked and the currency slumped", "neg"),
        ("The lender posted a heavy quarterly loss", "neg"),
        ("Exports grew and the economy expanded quickly", "pos"),
        ("Debt worries sent the index to a yearly low", "neg"),
        ("The retailer's profits doubled over the holidays", "pos"),
        ("The airline warned of losses as demand collapsed", "neg"),
    ],
    "cooking": [
        ("This soup recipe is warm and delicious", "pos"),
        ("The fresh bread came out golden and crisp", "pos"),
        ("Grandma's apple pie is simply wonderful", "pos"),
        ("The spicy curry tasted amazing with rice", "pos"),
        ("The cake burned and tasted bitter", "neg"),
        ("The pasta was soggy and far too salty", "neg"),
        ("The sauce curdled and the dinner was ruined", "neg"),
        ("The steak was tough and overcooked", "neg"),
        ("Roasted vegetables with herbs are a treat", "pos"),
        ("The chocolate mousse was light and rich", "pos"),
        ("The fish smelled off and nobody ate it", "neg"),
        ("The rice stuck to the pan and burned", "neg"),
        ("A perfect omelette takes only minutes", "pos"),
        ("The cookies were dry and crumbly", "neg"),
        ("The lemon tart was tangy and delightful", "pos"),
        ("The stew was bland and watery", "neg"),
    ],
}
DEV, USER = slice(0, 8), slice(8, 16)
SKETCH_DIM = 256
RKME_K = 8


def topic_texts(topic: str, part: slice = USER) -> tuple[list[str], list[str]]:
    """(texts, labels) of one topic's developer or user half."""
    rows = TOPICS[topic][part]
    return [t for t, _ in rows], [y for _, y in rows]


def adapter_package(
    topic: str, seed: int, rkme: str, *, license: str = "Apache-2.0"
) -> tuple[bytes, dict[str, Any]]:
    manifest = {
        "name": f"lora-{topic}",
        "description": f"LoRA on MiniLM for {topic} texts",
        "kind": "adapter",
        "modality": "text",
        "task": "embedding",
        "input": {},
        "output": {"dim": 384},
        "license": license,
        "tags": ["lora", topic],
        "base_model": "all-minilm-l6-v2",
    }
    files = {
        "learnware.yaml": yaml.safe_dump(manifest).encode(),
        **lora_files(r=4, seed=seed),
        "rkme.json": rkme.encode(),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), files[name])
    return buffer.getvalue(), manifest


@dataclass
class AdapterMarket:
    space: Any
    learnwares: dict[str, Any]
    versions: dict[str, Any]
    files: dict[str, dict[str, bytes]]  # topic -> adapter_config.json / adapter_model.safetensors


def adapter_market_create(*, owner: Any, topics: tuple[str, ...] = tuple(TOPICS)) -> AdapterMarket:
    """Write one published adapter per topic in a fresh text space (unique key) and index them."""
    from django.core.files.base import ContentFile

    from marketplace.learnwares.choices import Kind, Modality, Task, VersionStatus
    from marketplace.learnwares.encoding import encode_texts
    from marketplace.learnwares.models import (
        BaseModel,
        FeatureSpace,
        Learnware,
        LearnwareVersion,
        Specification,
    )
    from marketplace.learnwares.services.spaces import base_models_register
    from marketplace.search.services import index_add

    key = f"text-minilm-{uuid.uuid4().hex[:8]}"
    space = FeatureSpace.objects.create(
        key=key,
        kind=Modality.TEXT,
        schema={},
        dim=384,
        gamma=1.0,
        standardization={},
        sketch_seed=0,
        sketch_dim=SKETCH_DIM,
    )
    base_models_register()  # a transactional test before this one may have flushed the registry
    base = BaseModel.objects.get(key="all-minilm-l6-v2")
    sketcher = RFFSketch(384, 1.0, SKETCH_DIM, random_state=0)
    learnwares, versions, files = {}, {}, {}
    for seed, topic in enumerate(topics):
        E = encode_texts(topic_texts(topic, DEV)[0]).astype(np.float64)
        spec = rkme_fit(E, RKME_K, 1.0, random_state=seed)
        content, manifest = adapter_package(topic, seed, rkme_to_json(spec))
        lw = Learnware.objects.create(
            owner=owner,
            name=manifest["name"],
            slug=f"{manifest['name']}-{key}",
            description=manifest["description"],
            kind=Kind.ADAPTER,
            modality=Modality.TEXT,
            task=Task.EMBEDDING,
            feature_space=space,
            license=manifest["license"],
            tags=manifest["tags"],
            base_model=base,
        )
        version = LearnwareVersion(
            learnware=lw,
            number=1,
            manifest=manifest,
            artifact_sha256=hashlib.sha256(content).hexdigest(),
            artifact_size=len(content),
            artifact_format="peft_lora",
            status=VersionStatus.PUBLISHED,
        )
        version.package.save("package.zip", ContentFile(content), save=False)
        version.save()
        doc = json.loads(rkme_to_json(spec))
        row = Specification.objects.create(
            version=version,
            feature_space=space,
            rkme=doc,
            k=spec.Z_.shape[0],
            self_term=self_term(spec.Z_, spec.beta_, 1.0),
            sketch=sketcher.transform(spec.Z_, spec.beta_).astype(np.float32).tobytes(),
            computed_from="client",
        )
        index_add(specification=row)
        learnwares[topic], versions[topic] = lw, version
        files[topic] = lora_files(r=4, seed=seed)
    return AdapterMarket(space, learnwares, versions, files)


def jsonl_bytes(texts: list[str], labels: list[str] | None = None) -> bytes:
    rows = [{"text": t, **({"label": labels[i]} if labels is not None else {})} for i, t in enumerate(texts)]
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()
