"""Issue 22: a second adapter submission on the same texts reads its layer states from the worker's
embedding cache. Seconds of the spec, rank and assemble stages of two identical labelled submissions
of adapters on a published base (the first fills ``VAR_DIR/embeddings``, the second reads it), and of
a third after the cache folder is deleted (a cold run again, so the first run's share of one-off
warm-ups is visible).

Usage:
    .venv/bin/python benchmarks/embedding_cache_rank.py [--texts 1000] [--adapters 3] [--base minilm|tiny]

In this process on a throw-away SQLite database (``benchmarks.reuse_quality.setup_django``): the base
(the offline all-MiniLM-L6-v2 folder published as a ``kind: base_model`` package, or the tests' tiny
random BERT) and ``--adapters`` random PEFT LoRAs on it go through the upload service and the publish
pipeline (real sandbox); each submission is ``submission_create`` + ``reuse_run`` with ``--texts``
labelled texts (two topics), as ``benchmarks/markets/ours.py`` submits. The stage seconds are the
pipeline's own (``submission.results[stage]["seconds"]``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOPICS = {  # words of the tests' tiny vocabulary, so both bases tokenise them
    "finance": ["market", "bank", "share", "price", "profit", "sales", "company", "economy"],
    "sport": ["sport", "team", "win", "game", "match", "player", "goal", "cup", "season", "coach"],
}
STAGES = ("spec", "rank", "assemble")


def texts_and_labels(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    labels = [list(TOPICS)[i % 2] for i in range(n)]
    texts = [" ".join(["the", *rng.choice(TOPICS[t], size=int(rng.integers(4, 12)))]) for t in labels]
    return texts, labels


def _publish(owner, data: bytes) -> int:
    from marketplace.learnwares.services import learnware_upload
    from workers.pipelines.publish import publish_version

    _, version, _ = learnware_upload(user=owner, data=data)
    result = publish_version(version_id=version.id, report=lambda *a, **k: None)
    if result.get("status") != "published":
        raise RuntimeError(f"not published: {result}")
    return int(version.learnware_id)


def _jsonl(texts: list[str], labels: list[str] | None = None) -> bytes:
    rows = [{"text": t, **({"label": labels[i]} if labels else {})} for i, t in enumerate(texts)]
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


def submit(owner, space: str, texts: list[str], labels: list[str]) -> dict[str, float]:
    from django.core.files.base import ContentFile

    from marketplace.submissions.models import Submission
    from marketplace.submissions.services import submission_create
    from workers.pipelines.reuse import reuse_run

    s = submission_create(
        owner=owner,
        data_format="jsonl",
        data=ContentFile(_jsonl(texts), name="d.jsonl"),
        labelled=ContentFile(_jsonl(texts, labels), name="l.jsonl"),
        labelled_format="jsonl",
        modality="text",
        requirements={"kind": "adapter", "feature_space": space, "max_modules": 2},
    )
    reuse_run(submission_id=str(s.id), report=lambda *a, **k: None)
    results = Submission.objects.get(id=s.id).results
    missing = [stage for stage in STAGES if "seconds" not in (results.get(stage) or {})]
    if missing:
        raise RuntimeError(f"stages {missing} did not run: {json.dumps(results)[:2000]}")
    return {stage: float(results[stage]["seconds"]) for stage in STAGES}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--adapters", type=int, default=3)
    parser.add_argument("--base", choices=("minilm", "tiny"), default="minilm")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        from benchmarks.reuse_quality import setup_django

        setup_django(tmp)
        from django.conf import settings
        from django.contrib.auth import get_user_model

        from marketplace.learnwares.encoding import minilm_path
        from marketplace.learnwares.models import BaseModel
        from specs.adapter_bases import encoder_space_key
        from tests.support.base_adapters import base_adapter_package, peft_lora_folder
        from tests.support.base_model_packages import base_model_folder, base_model_package

        if args.base == "minilm":
            folder = tmp / "base"
            folder.mkdir()
            for name in (
                "config.json",
                "model.safetensors",
                "tokenizer.json",
                "tokenizer_config.json",
                "vocab.txt",
                "special_tokens_map.json",
            ):
                shutil.copy(Path(minilm_path()) / name, folder / name)
        else:
            folder = base_model_folder(tmp / "base", "bert", seed=6)
        dim = int(json.loads((folder / "config.json").read_text())["hidden_size"])
        owner = get_user_model().objects.create_user("developer")
        user = get_user_model().objects.create_user("user")
        base_lw = _publish(owner, base_model_package(folder, name=f"bench-{args.base}", dim=dim))
        key = BaseModel.objects.get(learnware_id=base_lw).key
        texts, labels = texts_and_labels(args.texts)
        for i in range(args.adapters):
            lora = peft_lora_folder(folder, tmp / f"lora{i}", seed=11 + i)
            sample = [t for t, y in zip(texts, labels, strict=True) if y == list(TOPICS)[i % 2]][:20]
            _publish(
                owner, base_adapter_package(lora, base_model=key, dim=dim, name=f"lora-{i}", sample=sample)
            )
        space = encoder_space_key(key)
        cache = Path(settings.VAR_DIR) / "embeddings"
        shutil.rmtree(cache, ignore_errors=True)
        runs = {"first (cold cache)": submit(user, space, texts, labels)}
        entries = len(list(cache.rglob("*.npy")))
        runs["second (same texts)"] = submit(user, space, texts, labels)
        shutil.rmtree(cache, ignore_errors=True)
        runs["third (cache deleted)"] = submit(user, space, texts, labels)
    print(
        f"base {args.base} ({dim}-d), {args.adapters} adapters, {args.texts} labelled texts; "
        f"{entries} cache entries after the first run"
    )
    print(f"| run | {' | '.join(f'{s} s' for s in STAGES)} |")
    print(f"|---|{'---|' * len(STAGES)}")
    for name, seconds in runs.items():
        print(f"| {name} | {' | '.join(f'{seconds[s]:.2f}' for s in STAGES)} |")


if __name__ == "__main__":
    main()
