"""The "Use this package" snippet of an assembled submission package on a published base model.

A text submission in a published base's encoder space (``text-<key>``; text models or adapters) delivers
a package whose ``recipe.json`` names the base version the run embedded with (``recipe.base``: learnware
id, version, package sha256, folder digest). Raw texts only run on that base, so the snippet says what
the client does with it: ``Client.download_submission`` fetches the package and that base version's
package (each verified against its sha256), and ``Client.load`` checks the base folder's digest against
``recipe.base`` before anything runs (``lwm_client.base_heads``, ``lwm_client.predict``). The base is
the spec stage's choice (``results.spec.base_version_id``), read here from the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marketplace.learnwares.models import BaseModel, LearnwareVersion

TEXTS = '["Shares in the company rose after strong results.", "The striker scored twice."]'


@dataclass(frozen=True)
class PackageBase:
    """The published base version an assembled package runs on (what its ``recipe.base`` names)."""

    key: str
    name: str
    learnware_id: int
    version: int
    package_sha256: str


def package_base(results: dict[str, Any]) -> PackageBase | None:
    """The base version of a run in a published base's space (None: any other run, or the base's
    version or registry row is gone)."""
    version_id = (results.get("spec") or {}).get("base_version_id")
    if not version_id:
        return None
    version = LearnwareVersion.objects.filter(id=version_id).select_related("learnware").first()
    row = BaseModel.objects.filter(learnware_id=version.learnware_id).first() if version else None
    if version is None or row is None:
        return None
    return PackageBase(row.key, row.name, version.learnware_id, version.number, version.artifact_sha256)


def _output(task: str, adapter: bool) -> str:
    if adapter:
        return "# class names with the package's head; without one, one embedding row per text"
    return "# one class name per text" if task == "classification" else "# one output per text"


def base_package_snippet(
    *, site_url: str, submission_id: str, base: PackageBase, task: str, adapter: bool
) -> str:
    """Python that downloads the package with its base and runs it on raw texts."""
    return (
        "from lwm_client import Client\n\n"
        f"market = Client({site_url!r})  # with LWM_TOKEN (your API token): the package is yours\n"
        f"# the package (sha256 verified) and the base model its recipe.base names: {base.name} "
        f"v{base.version}\n"
        f"# (learnware {base.learnware_id}, package sha256 {base.package_sha256}),\n"
        "# fetched into base_models/ and checked against that sha256, with any other base version a\n"
        "# member head was pinned to at its upload (its recipe member's base)\n"
        "# (a base version no longer visible to you: download:user:base-not-visible)\n"
        f'package = market.download_submission("{submission_id}", dest=".")\n'
        "# load checks the base folder's digest against recipe.base.folder_digest before anything runs\n"
        '# (or market.load(package.path, base="base.zip"): that version\'s zip, checked the same way)\n'
        "model = market.load(package.path)\n\n"
        f"# raw texts in: embedded by {base.key} v{base.version}, as the market embedded yours\n"
        f"texts = {TEXTS}\n"
        f"print(model.predict(texts))  {_output(task, adapter)}\n"
    )
