"""``manage.py publish_base_model FOLDER --owner USER --name NAME``: an admin-registered base model.

It goes through the same path as a developer's upload (package checks, the sandbox, the publish job),
so it becomes an ordinary ``kind: base_model`` learnware row with a card and versions. Only the
files a base model is made of are taken from the folder (``config.json``, ``model.safetensors``, the
tokenizer files): a sentence-transformers download's ``1_Pooling/``, ``README.md`` or ``.gitattributes``
stay behind, and ``--pooling`` says what ``1_Pooling`` said.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import yaml
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from marketplace.core.exceptions import ApplicationError
from marketplace.learnwares.services import learnware_upload
from specs.base_models.folder import TOKENIZER_FILES, WEIGHTS_FILE
from specs.packaging.choices import POOLINGS


def base_model_zip(folder: Path, manifest: dict[str, Any]) -> bytes:
    """``learnware.yaml`` + the folder's config, weights and tokenizer files under ``model/``."""
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    width = config.get("hidden_size", config.get("dim"))
    manifest = {**manifest, "output": {"dim": width}} if isinstance(width, int) else manifest
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("learnware.yaml", yaml.safe_dump(manifest, sort_keys=False))
        for name in ("config.json", WEIGHTS_FILE, *TOKENIZER_FILES):
            if (folder / name).is_file():
                archive.write(folder / name, f"model/{name}")
    return buffer.getvalue()


class Command(BaseCommand):
    help = "Publish a Hugging Face text encoder folder as a kind: base_model learnware (through the sandbox)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("folder", type=Path)
        parser.add_argument("--owner", required=True, help="username of the publishing account")
        parser.add_argument("--name", required=True)
        parser.add_argument("--pooling", choices=POOLINGS, default="mean")
        parser.add_argument("--license", default="Apache-2.0")
        parser.add_argument("--description", default="")
        parser.add_argument("--tags", nargs="*", default=["base-model"])

    def handle(self, *args: Any, **options: Any) -> None:
        folder: Path = options["folder"]
        if not (folder / "config.json").is_file():
            raise CommandError(f"{folder} has no config.json")
        owner = get_user_model().objects.filter(username=options["owner"]).first()
        if owner is None:
            raise CommandError(f"no user {options['owner']!r}")
        manifest = {
            "name": options["name"],
            "description": options["description"] or f"{options['name']}: a pretrained text encoder.",
            "kind": "base_model",
            "modality": "text",
            "task": "embedding",
            "pooling": options["pooling"],
            "input": {},
            "output": {"dim": 0},  # replaced by the config's width
            "license": options["license"],
            "tags": options["tags"],
        }
        try:
            lw, version, job = learnware_upload(user=owner, data=base_model_zip(folder, manifest))
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        self.stdout.write(f"learnware {lw.id} v{version.number}: publish job {job.id} queued")
