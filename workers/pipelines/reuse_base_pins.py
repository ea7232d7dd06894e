"""Which base version each text model of a run in a published base's space runs on.

A text model on a published base is pinned, when it publishes, to the base version it was checked
against (``LearnwareVersion.base_pin``). A run embeds the user's texts with one version (the spec stage's,
``results.spec.base_version_id``): the space-level methods (job selector, stitching, from-scratch heads)
work on those rows. Each member head, though, is fed the texts embedded by ITS pinned version
(:func:`member_base`, the same sandboxed ``base_encode``, cached per base folder digest), so its scores,
the assembly's fit and the package's predictions are those of the head on the embeddings it was trained
on. A member published before pins, or pinned to a version that is no longer published, runs on the
run's version; the identify and rank results say, for each candidate, its pin and the version it ran on
(:func:`base_pin_note`), and the recipe names each member's own base when it is not ``recipe.base``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from marketplace.core.exceptions import ApplicationError, ValidationFailed
from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.models import LearnwareVersion
from workers.pipelines.reuse_results import BasePinNote

if TYPE_CHECKING:
    from workers.pipelines.reuse_base import PublishedBase
    from workers.pipelines.reuse_context import ReuseContext


def own_version(pin: dict[str, Any]) -> tuple[int, int] | None:
    """(number, id) of the base version a member pinned to ``pin`` runs on when it is not the run's:
    its pin, while that version is published; None: no pin (the run's version is used)."""
    if not pin.get("version_id"):
        return None
    published = LearnwareVersion.objects.filter(
        id=int(pin["version_id"]), status=VersionStatus.PUBLISHED
    ).exists()
    return (int(pin["version"]), int(pin["version_id"])) if published else None


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
            "embedded_with": run_version,
            "explanation": f"published before base versions were pinned: run on the run's v{run_version}, "
            "the version it was trained on is not recorded",
        }
    version, version_id = int(pin["version"]), int(pin["version_id"])
    differs = version_id != run_version_id
    own = own_version(pin) if differs else (version, version_id)
    if own is None:
        embedded, explanation = (
            run_version,
            (
                f"pinned to base v{version}, which is no longer published: run on the run's v{run_version}, "
                "so its scores are on embeddings of another base version than the one it was trained on"
            ),
        )
    elif differs:
        embedded, explanation = (
            version,
            (
                f"pinned to base v{version}: fed your texts embedded by v{version} (its own); the run's "
                f"space-level methods use v{run_version}"
            ),
        )
    else:
        embedded, explanation = version, f"pinned to base v{version}, the version this run embeds with"
    return {
        "version": version,
        "version_id": version_id,
        "run_version": run_version,
        "run_version_id": run_version_id,
        "differs": differs,
        "embedded_with": embedded,
        "explanation": explanation,
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


def member_base(ctx: ReuseContext, version_id: int) -> PublishedBase | None:
    """The base version member ``version_id`` (a text head) is fed, when it is not the run's
    (``ctx.base``): its published pin; None for the run's version, outside a published base's space and
    for adapters (their stages embed the texts themselves). Loaded once a run."""
    if ctx.base is None or ctx.adapter_mode:
        return None
    bases = ctx.cache.member_bases
    if version_id not in bases:
        pin = LearnwareVersion.objects.filter(id=version_id).values_list("base_pin", flat=True).first()
        own = own_version(pin or {})
        chosen = None
        if own is not None and own[1] != ctx.base.version_id:
            from workers.pipelines.reuse_base import published_base

            try:
                chosen = published_base(ctx.space, ctx.submission.owner, own[1])
            except ValidationFailed:  # unpublished since the identify stage: the run's version
                chosen = None
            if chosen is not None and chosen.folder_digest == ctx.base.folder_digest:
                chosen = None  # the same files: the run's rows are its rows (no second base in the recipe)
        bases[version_id] = chosen
    return bases[version_id]


def labelled_rows_on(ctx: ReuseContext, base: PublishedBase) -> np.ndarray:
    """(n, dim) the labelled texts embedded by ``base`` in the sandbox (``base_encode``), once a run."""
    rows = ctx.cache.base_rows
    if base.version_id not in rows:
        from workers.pipelines.reuse_base import base_encode

        texts = ctx.labelled_texts
        assert texts is not None
        rows[base.version_id] = base_encode(base, ctx.space, list(texts.texts))
    return rows[base.version_id]


Rebase = Callable[[int, np.ndarray, "np.ndarray | None"], np.ndarray]


def member_inputs(ctx: ReuseContext) -> Rebase | None:
    """For ``OutputCache``: (member version id, rows X, their labelled indices) -> the rows that member is
    fed. X are labelled rows embedded by the run's version; ``rows`` says which (indices into the labelled
    sample, one per row of X: every stage passes them with ``ctx.labelled_table.X``). A member on its own
    version (:func:`member_base`) gets the rows of those indices on that version. Rows without indices are
    never fed on the wrong version: refused by name. None when no member can run on another version (not a
    text-model run in a published base's space)."""
    if ctx.base is None or ctx.adapter_mode or ctx.labelled_table is None:
        return None

    def rows_for(version_id: int, X: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        base = member_base(ctx, version_id)
        if base is None:
            return X
        own = labelled_rows_on(ctx, base)
        at = np.asarray([] if rows is None else rows, dtype=np.int64)
        inside = at.size == 0 or (at.min() >= 0 and at.max() < own.shape[0])
        if rows is None or at.shape != (X.shape[0],) or not inside:
            raise ApplicationError(
                f"member {version_id}: rows that are not labelled rows (by index) cannot be embedded by its "
                f"base v{base.version}",
                code="submission:app:member-base-rows",
                http_status=500,
            )
        return own[at]

    return rows_for
