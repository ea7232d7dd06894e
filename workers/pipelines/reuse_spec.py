"""Stage ``spec``: resolve the feature space and compute (or validate) the user's RKME."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.conf import rkme_k
from marketplace.learnwares.models import FeatureSpace
from marketplace.learnwares.services.adapter_bases import is_base_space
from marketplace.learnwares.services.registered import MINILM_KEY
from marketplace.submissions.choices import DataFormat
from marketplace.submissions.data import field_error, regression_targets
from marketplace.submissions.services import submission_feature_space_set
from specs import RKMESpecification, SpecError, rkme_from_json, rkme_to_json
from specs.columns import align
from specs.data_rkme import encoded_rkme, space_coordinates
from specs.encoders import TEXT_DIM
from specs.image_spaces import CONV_SPACE_KEY, DEFAULT_IMAGE_SPACE_KEY
from specs.impute import filled_rms
from specs.marginal import to_space_units
from specs.mixture_bootstrap import MAX_NOISE_ROWS
from specs.units import check_rms, unit_rms
from workers.base import Report
from workers.pipelines import reuse_impute
from workers.pipelines.reuse_base import base_encode, published_base
from workers.pipelines.reuse_context import ReuseContext, space_alignment
from workers.pipelines.reuse_results import Json, SpecResult


def resolve_space(ctx: ReuseContext, columns: list[str] | None, d: int) -> FeatureSpace:
    """The requested space (checked against the data), else the table space the data fit.

    Named columns fit a space holding a subset of them (any order; the rest are extra and
    ignored); when several fit, the one using most of the user's columns wins, a tie is
    refused. Unnamed columns fit a space of their width."""
    key = ctx.requirements.get("feature_space")
    if key:
        space = FeatureSpace.objects.filter(key=key).first()
        if space is None:
            raise field_error(
                "requirements.feature_space",
                f"feature space {key!r} does not exist",
                "submission:user:unknown-feature-space",
            )
        if not (columns is not None and _may_impute(ctx) and _covers_enough(space, columns)):
            _check_fits(space, columns, d)
        return space
    candidates = FeatureSpace.objects.filter(kind=ctx.submission.modality).order_by("key")
    if ctx.submission.modality == "text":  # the MiniLM's texts; a base model's space is never guessed
        candidates = candidates.filter(encoder_id__in=("", MINILM_KEY))
    if columns is None or ctx.submission.modality != "table":
        candidates = candidates.filter(dim=d)
    fitting = [s for s in candidates if _fits(s, columns, d)]
    if not fitting and columns is not None and _may_impute(ctx):
        # No space has all its columns in the table: the one the table covers best, if it covers enough.
        partial = [
            (len(set(_space_columns(s) or []) & set(columns)), s)
            for s in candidates
            if _covers_enough(s, columns)
        ]
        if partial:
            most = max(n for n, _ in partial)
            fitting = [s for n, s in partial if n == most]
    if len(fitting) > 1 and columns is not None:
        widest = max(s.dim for s in fitting)
        fitting = [s for s in fitting if s.dim == widest]
    if len(fitting) == 1:
        return fitting[0]
    if not fitting:
        encoded = {"text": "MiniLM texts", "image": "encoded images"}
        what = (
            f"columns {columns[:12]}"
            if columns
            else encoded.get(ctx.submission.modality, f"{d} unnamed columns")
        )
        closest = ""
        if columns is not None:
            shared = [(len(set(_space_columns(s) or []) & set(columns)), s) for s in candidates]
            n, near = max(shared, key=lambda p: p[0], default=(0, None))
            if near is not None and n:
                missing = [c for c in _space_columns(near) or [] if c not in columns]
                closest = f"; the closest, {near.key!r}, also needs {missing[:10]}"
        raise field_error(
            "data",
            f"no {ctx.submission.modality} feature space has {what}{closest} (rename columns with "
            'requirements.column_map {"yours": "theirs"})',
            "submission:user:wrong-feature-space",
        )
    raise field_error(
        "requirements.feature_space",
        f"the data fit several feature spaces {[s.key for s in fitting]}: name one",
        "submission:user:ambiguous-feature-space",
    )


def _labelled_columns(ctx: ReuseContext) -> tuple[list[str], np.ndarray] | None:
    """The labelled table's column names (after the column map) and raw rows: they may hold a
    column the data lack, which the plan then learns from them (``reuse_impute.learn_columns``)."""
    tabular = (DataFormat.CSV, DataFormat.NPZ)
    if not ctx.submission.has_labels or ctx.submission.labelled_format not in tabular:
        return None
    table = ctx.raw_labelled_table
    names = ctx.user_columns(table, "labelled")
    return None if names is None else (names, table.X)


def _may_impute(ctx: ReuseContext) -> bool:
    return bool(ctx.requirements.get("impute_missing", True))


def _covers_enough(space: FeatureSpace, columns: list[str]) -> bool:
    """The table holds enough of the space's columns to fill the rest from a learnware's RKME."""
    expected = _space_columns(space)
    if not expected:
        return False
    shared = len(set(expected) & set(columns))
    return shared >= reuse_impute.MIN_SHARED and shared / len(expected) >= reuse_impute.MIN_COVERAGE


def _space_columns(space: FeatureSpace) -> list[str] | None:
    columns = (space.schema or {}).get("columns")
    if not columns:
        return None
    return [c["name"] if isinstance(c, dict) else str(c) for c in columns]


def _fits(space: FeatureSpace, columns: list[str] | None, d: int) -> bool:
    expected = _space_columns(space)
    if columns is None or expected is None:
        return space.dim == d
    return set(expected) <= set(columns)


def _check_fits(space: FeatureSpace, columns: list[str] | None, d: int) -> None:
    expected = _space_columns(space)
    if columns is None or expected is None:
        if space.dim != d:
            raise field_error(
                "data",
                f"has {d} feature columns, feature space {space.key!r} has {space.dim}",
                "submission:user:wrong-feature-space",
            )
        return
    missing = [c for c in expected if c not in columns]
    if missing:
        from marketplace.search.column_suggest import column_suggestions

        extra = [c for c in columns if c not in expected]
        hints = column_suggestions(extra=extra, missing=missing, schema=space.schema or {})
        message = (
            f"lacks columns {missing[:10]} of feature space {space.key!r}"
            + (
                f"; your unmatched columns {extra[:10]} can be renamed with requirements.column_map"
                if extra
                else ""
            )
            + (
                "; suggested: "
                + ", ".join(f"{h['yours']!r}: {h['theirs']!r} ({h['confidence']:.2f})" for h in hints)
                if hints
                else ""
            )
        )
        raise ValidationFailed(
            f"data: {message}",
            code="submission:user:wrong-feature-space",
            details={"data": [message], "missing": missing, "suggestions": hints},
        )


def _check_labels(ctx: ReuseContext, space: FeatureSpace) -> dict[str, Any] | None:
    table = ctx.labelled_table
    if table is None:
        return None
    if not (ctx.is_image or ctx.is_text):  # pixels and texts: the encoder, not columns, maps them there
        _check_fits(space, table.columns, table.X.shape[1])
    y = table.y
    assert y is not None
    if ctx.submission.task == "regression":
        y = regression_targets(y, "labelled")
        return {"n": int(y.shape[0]), "target_mean": float(np.mean(y)), "target_std": float(np.std(y))}
    classes, counts = np.unique(y.astype(str), return_counts=True)
    # A single class is kept: the label-free package is still delivered, and the labels still
    # show how often it is right on them (the assemble and evaluate stages say so).
    return {
        "n": int(y.shape[0]),
        "classes": classes.tolist(),
        "counts": counts.tolist(),
        "single_class": bool(classes.shape[0] < 2),
    }


def _from_rkme(ctx: ReuseContext) -> tuple[RKMESpecification, FeatureSpace, np.ndarray | None]:
    try:
        spec = rkme_from_json(ctx.data_bytes)
    except SpecError as exc:
        raise field_error("rkme", str(exc), "submission:user:bad-rkme") from exc
    space = resolve_space(ctx, None, spec.n_features_in_)
    ctx.space_resolved(space)
    if not np.isclose(spec.gamma_, space.gamma, rtol=1e-9, atol=0.0):
        raise field_error(
            "rkme",
            f"gamma {spec.gamma_!r} differs from feature space {space.key!r} ({space.gamma!r}): "
            "compute it in the space's coordinates",
            "submission:user:wrong-feature-space",
        )
    # The unit-free scale: the client's (``unit_rms`` in the RKME it sent), else the labelled sample's.
    sent = json.loads(ctx.data_bytes).get("unit_rms")
    if sent is not None and not ctx.is_image:
        try:
            return spec, space, check_rms(sent, space.dim)
        except SpecError as exc:
            raise field_error("rkme", str(exc), "submission:user:bad-rkme") from exc
    table = ctx.labelled_table
    rms = unit_rms(table.X) if table is not None and not ctx.is_image else None
    return spec, space, rms


def _image_space(ctx: ReuseContext) -> FeatureSpace:
    """The named space (``requirements.feature_space``), else the default image space (Lite0), else --
    in a market whose image learnwares all predate it -- the conv space; the images are encoded in that
    one space only, so the search compares like with like (rule in specs.image_spaces)."""
    named = ctx.requirements.get("feature_space")
    for key in [named] if named else [DEFAULT_IMAGE_SPACE_KEY, CONV_SPACE_KEY]:
        space = FeatureSpace.objects.filter(key=key, kind="image").first()
        if space is not None:
            return space
    if named:
        raise field_error(
            "requirements.feature_space",
            f"image feature space {named!r} does not exist",
            "submission:user:unknown-feature-space",
        )
    raise field_error(
        "data",
        "no image feature space exists yet (no image learnware is published)",
        "submission:user:wrong-feature-space",
    )


def _from_images(ctx: ReuseContext) -> tuple[RKMESpecification, FeatureSpace, np.ndarray]:
    from marketplace.learnwares.encoding import image_encoder

    images = ctx.user_images.images
    labelled = ctx.labelled_images
    if (
        labelled is not None
    ):  # every row the user holds describes their distribution (see _identification_rows)
        images = np.concatenate([images, labelled.images.astype(images.dtype)])
    space = _image_space(ctx)
    E = image_encoder(space.schema).encode(images).astype(np.float64)
    try:
        return encoded_rkme(E, space.gamma, k=rkme_k(), random_state=ctx.seed), space, E
    except SpecError as exc:
        raise field_error("data", str(exc), "submission:user:bad-data") from exc


def _identification_rows(ctx: ReuseContext, X: np.ndarray) -> np.ndarray:
    """The unlabelled rows and the labelled ones: all of them are the user's distribution, and the
    RKME (identification, mixture test) and the unit-free scale are estimated better from more rows.
    A labelled table of another width is left out here and refused by name in ``_check_labels``."""
    table = ctx.labelled_table
    if table is None or table.X.shape[1] != X.shape[1]:
        return X
    return np.vstack([X, table.X])


def _image_shape(ctx: ReuseContext) -> list[int] | None:
    """(C, H, W) of the user's images (data, else the labelled sample); None without images."""
    if not ctx.is_image:
        return None
    if ctx.submission.data_format != DataFormat.RKME:
        return list(ctx.user_images.shape)
    labelled = ctx.labelled_images
    return list(labelled.shape) if labelled is not None else None


def run(ctx: ReuseContext, report: Report) -> SpecResult:
    """Spec the user's data in its feature space (or validate the uploaded RKME)."""
    rows: np.ndarray | None = None  # the user's rows in the space: they calibrate the mixture test
    if ctx.submission.data_format == DataFormat.RKME:
        spec, space, known = _from_rkme(ctx)
        rms_known, rms = known is not None, known if known is not None else np.ones(space.dim)
        source = "client"
    elif ctx.is_image:
        spec, space, rows = _from_images(ctx)
        rms, rms_known = np.ones(space.dim), False  # encoder outputs: no unit-free step
        source = "data"
    elif ctx.submission.data_format in (DataFormat.CSV, DataFormat.NPZ):
        raw = ctx.raw_user_table
        space = resolve_space(ctx, ctx.user_columns(raw, "data"), raw.X.shape[1])
        names = ctx.user_columns(raw, "data")
        expected = _space_columns(space)
        if names is not None and expected is not None and not set(expected) <= set(names):
            try:
                plan = reuse_impute.plan_imputation(
                    owner=ctx.submission.owner,
                    space=space,
                    alignment=align(names, expected),
                    X=raw.X,
                    seed=ctx.seed,
                    labelled=_labelled_columns(ctx),
                )
            except LookupError as exc:
                raise field_error("data", str(exc), "submission:user:wrong-feature-space") from exc
            ctx.imputation_planned(plan)
        ctx.space_resolved(space)  # from here on the user's tables are in the space's column order
        table = ctx.user_table
        rows = _identification_rows(ctx, table.X)
        rms, rms_known = unit_rms(rows), True
        if ctx.imputation:  # imputed columns are in the developer's units already (specs.impute.filled_rms)
            rms = filled_rms(rms, ctx.imputation)
            rows = to_space_units(
                rows,
                mean=np.asarray(ctx.imputation["mean"]),
                scale=np.asarray(ctx.imputation["scale"]),
                rms=rms if ctx.imputation["unit_free"] else None,
            )
        else:
            rows = space_coordinates(rows, space.standardization)
        try:
            spec = encoded_rkme(rows, space.gamma, k=rkme_k(), random_state=ctx.seed)
        except SpecError as exc:
            raise field_error("data", str(exc), "submission:user:bad-data") from exc
        source = "data"
    elif ctx.is_text:
        from marketplace.learnwares.encoding import encode_texts

        texts = list(ctx.user_texts.texts)
        if ctx.labelled_texts is not None and not ctx.adapter_mode:
            texts += list(ctx.labelled_texts.texts)
        named = FeatureSpace.objects.filter(key=ctx.requirements.get("feature_space") or "").first()
        if named is not None and is_base_space(named):
            # The user's texts embedded by the base itself, in the sandbox, at its newest published version:
            # the result records that version and every later stage and the recipe use exactly it.
            space, base = named, published_base(named, ctx.submission.owner)  # hidden: unknown-base-model
            ctx.space_resolved(space)
            ctx.base_resolved(base)
            assert base is not None
            rows = base_encode(base, space, texts)
        else:
            space = resolve_space(ctx, None, TEXT_DIM)
            rows = encode_texts(texts).astype(np.float64)
        rms, rms_known = np.ones(space.dim), False  # unit vectors: the text space needs no unit-free step
        try:
            spec = encoded_rkme(rows, space.gamma, k=rkme_k(), random_state=ctx.seed)
        except SpecError as exc:
            raise field_error("data", str(exc), "submission:user:bad-data") from exc
        source = "data"
    else:
        raise field_error(
            "data_format",
            f"{ctx.submission.data_format!r} data are not supported by the reuse pipeline yet",
            "submission:user:unsupported-format",
        )
    ctx.space_resolved(space)
    labelled = _check_labels(ctx, space)
    image_shape = _image_shape(ctx)
    columns = _columns_report(ctx, space)
    submission_feature_space_set(submission_id=ctx.submission.id, feature_space=space)
    stored = ctx.work_save("user-rkme.json", rkme_to_json(spec).encode())
    rows_file = None if rows is None else ctx.work_save("user-rows.npy", _rows_bytes(rows, ctx.seed))
    reduced = f"{spec.n_samples_} {_unit(ctx)} reduced to an RKME of {spec.Z_.shape[0]} points"
    origin = "your RKME was validated" if source == "client" else reduced
    return SpecResult(
        feature_space=space.key,
        source=source,
        n_rows=spec.n_samples_,
        d=int(spec.n_features_in_),
        K=int(spec.Z_.shape[0]),
        gamma=float(spec.gamma_),
        self_term=spec.self_term(),
        rkme_file=stored,
        unit_rms=rms.tolist(),
        unit_rms_known=rms_known,
        labelled=labelled,
        image_shape=image_shape,
        columns=columns,
        imputation=ctx.imputation,
        explanation=(f"{origin} in feature space {space.key} (d={space.dim}, gamma={space.gamma:.4g})"),
        rows_file=rows_file,
        base_version_id=ctx.base.version_id if ctx.base is not None else None,
    )


def _columns_report(ctx: ReuseContext, space: FeatureSpace) -> Json | None:
    """How the user's data columns met the space's: matched (in the space's order), extra
    (ignored), the ``column_map`` applied, and the data file's own columns (the package's input)."""
    if ctx.submission.data_format not in (DataFormat.CSV, DataFormat.NPZ) or ctx.is_image:
        return None
    raw, expected = ctx.raw_user_table, _space_columns(space)
    names = ctx.user_columns(raw, "data")
    if names is None or expected is None:
        return None
    alignment = (
        align(names, expected) if ctx.imputation else space_alignment(names, expected, space.key, "data")
    )
    return {
        **alignment.report(),
        "imputed": reuse_impute.public_plan(ctx.imputation),
        "column_map": dict(ctx.requirements.get("column_map") or {}),
        "given": list(raw.columns or []),
        "index": [int(i) for i in alignment.index],
    }


def _rows_bytes(rows: np.ndarray, seed: int) -> bytes:
    """At most ``MAX_NOISE_ROWS`` rows (a seeded subsample): all the mixture test resamples."""
    if rows.shape[0] > MAX_NOISE_ROWS:
        rows = rows[np.random.default_rng(seed).choice(rows.shape[0], MAX_NOISE_ROWS, replace=False)]
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(rows, dtype=np.float64), allow_pickle=False)
    return buf.getvalue()


def _unit(ctx: ReuseContext) -> str:
    if ctx.is_image and ctx.submission.data_format != DataFormat.RKME:
        return (
            f"images ({'x'.join(map(str, ctx.user_images.shape))}, C x H x W, encoded by the seeded conv "
            "encoder)"
        )
    return "rows"


def as_json(spec: RKMESpecification) -> dict[str, Any]:
    return json.loads(rkme_to_json(spec))
