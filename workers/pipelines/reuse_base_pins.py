"""Which base version each text model of a run in a published base's space was pinned to.

A text model on a published base is pinned, when it publishes, to the base version it was checked
against (``LearnwareVersion.base_pin``); a run embeds the user's texts, and every member's, with one
version (the spec stage's, ``results.spec.base_version_id``). Members are not yet fed the embeddings of
their own pinned versions: the identify and rank results say, for each candidate, the version it was
pinned to and whether it differs from the run's, so a user sees which heads ran on another version
than the one they were trained on (docs/model-selection.md, "Not yet").
"""

from __future__ import annotations

from typing import Any

from marketplace.learnwares.models import LearnwareVersion
from workers.pipelines.reuse_results import BasePinNote


def base_pin_note(pin: dict[str, Any], run_version: int, run_version_id: int) -> BasePinNote:
    """The note of one member pinned to ``pin`` (empty: published before pins) in a run on
    ``run_version`` (number) / ``run_version_id``."""
    if not pin.get("version_id"):
        return {
            "version": None,
            "version_id": None,
            "run_version": run_version,
            "run_version_id": run_version_id,
            "differs": None,
            "explanation": f"published before base versions were pinned: run on the run's v{run_version}, "
            "the version it was trained on is not recorded",
        }
    differs = int(pin["version_id"]) != run_version_id
    return {
        "version": int(pin["version"]),
        "version_id": int(pin["version_id"]),
        "run_version": run_version,
        "run_version_id": run_version_id,
        "differs": differs,
        "explanation": (
            f"pinned to base v{pin['version']}, but run on the run's v{run_version}: its scores are on "
            "embeddings of another base version than the one it was trained on"
            if differs
            else f"pinned to base v{pin['version']}, the version this run embeds with"
        ),
    }


def run_base_version(version_id: int | None) -> tuple[int, int] | None:
    """(number, id) of the base version a run embeds with; None outside a published base's space."""
    if version_id is None:
        return None
    number = LearnwareVersion.objects.filter(id=version_id).values_list("number", flat=True).first()
    return (int(number), version_id) if number is not None else None


def identified_pins(identify: Any) -> dict[int, BasePinNote]:
    """version id -> the ``base_pin`` note the identify stage gave it (singles and mixture components)."""
    cards = [*identify.singles, *identify.mixture.get("components", [])]
    return {int(c["version_id"]): c["base_pin"] for c in cards if "base_pin" in c}
