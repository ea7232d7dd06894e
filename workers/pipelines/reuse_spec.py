"""Stage ``spec``: resolve the feature space and compute (or validate) the user's RKME."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.models import FeatureSpace
from marketplace.submissions.choices import DataFormat
from marketplace.submissions.services import submission_feature_space_set
from specs import RKMESpecification, SpecError, rkme_fit, rkme_from_json, rkme_to_json
from specs.encoders import IMAGE_DIM, TEXT_DIM
from specs.units import check_rms, unit_rms
from workers.base import Report
from workers.pipelines.reuse_context import ReuseContext, SpaceTransform

RKME_K = 100


def _fail(field: str, message: str, code: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", code=code, details={field: [message]})


def resolve_space(ctx: ReuseContext, columns: list[str] | None, d: int) -> FeatureSpace:
    """The requested space (checked against the data), else the only table space that fits."""
    key = ctx.requirements.get("feature_space")
    if key:
        space = FeatureSpace.objects.filter(key=key).first()
        if space is None:
            raise _fail("requirements.feature_space", f"feature space {key!r} does not exist", "submission:user:unknown-feature-space")
        _check_fits(space, columns, d)
        return space
    fitting = [s for s in FeatureSpace.objects.filter(kind=ctx.submission.modality, dim=d).order_by("key") if _fits(s, columns, d)]
    if len(fitting) == 1:
        return fitting[0]
    if not fitting:
        encoded = {"text": "MiniLM texts", "image": "conv-encoded images"}
        what = f"columns {columns}" if columns else encoded.get(ctx.submission.modality, f"{d} unnamed columns")
        raise _fail("data", f"no {ctx.submission.modality} feature space has {what}", "submission:user:wrong-feature-space")
    raise _fail("requirements.feature_space", f"the data fit several feature spaces {[s.key for s in fitting]}: name one",
                "submission:user:ambiguous-feature-space")


def _space_columns(space: FeatureSpace) -> list[str] | None:
    columns = (space.schema or {}).get("columns")
    if not columns:
        return None
    return [c["name"] if isinstance(c, dict) else str(c) for c in columns]


def _fits(space: FeatureSpace, columns: list[str] | None, d: int) -> bool:
    expected = _space_columns(space)
    return space.dim == d and (columns is None or expected is None or expected == columns)


def _check_fits(space: FeatureSpace, columns: list[str] | None, d: int) -> None:
    if space.dim != d:
        raise _fail("data", f"has {d} feature columns, feature space {space.key!r} has {space.dim}", "submission:user:wrong-feature-space")
    expected = _space_columns(space)
    if columns is not None and expected is not None and expected != columns:
        missing = [c for c in expected if c not in columns]
        raise _fail("data", f"columns differ from feature space {space.key!r} (missing {missing[:10]}, got {columns[:10]})",
                    "submission:user:wrong-feature-space")


def _check_labels(ctx: ReuseContext, space: FeatureSpace) -> dict[str, Any] | None:
    table = ctx.labelled_table
    if table is None:
        return None
    if not ctx.is_image:  # image rows are pixels: the encoder, not the columns, maps them into the space
        _check_fits(space, table.columns, table.X.shape[1])
    y = table.y
    assert y is not None
    if ctx.submission.task == "regression":
        if y.dtype.kind not in "iuf":
            raise _fail("labelled", "regression targets must be numbers", "submission:user:labels-mismatch")
        return {"n": int(y.shape[0]), "target_mean": float(np.mean(y)), "target_std": float(np.std(y))}
    classes, counts = np.unique(y.astype(str), return_counts=True)
    # A single class is kept: the label-free package is still delivered, and the labels still
    # show how often it is right on them (the assemble and evaluate stages say so).
    return {"n": int(y.shape[0]), "classes": classes.tolist(), "counts": counts.tolist(),
            "single_class": bool(classes.shape[0] < 2)}


def _from_rkme(ctx: ReuseContext) -> tuple[RKMESpecification, FeatureSpace, np.ndarray]:
    try:
        spec = rkme_from_json(ctx.data_bytes)
    except SpecError as exc:
        raise _fail("rkme", str(exc), "submission:user:bad-rkme") from exc
    space = resolve_space(ctx, None, spec.n_features_in_)
    if not np.isclose(spec.gamma_, space.gamma, rtol=1e-9, atol=0.0):
        raise _fail("rkme", f"gamma {spec.gamma_!r} differs from feature space {space.key!r} ({space.gamma!r}): "
                    "compute it in the space's coordinates", "submission:user:wrong-feature-space")
    # The unit-free scale: the client's (``unit_rms`` in the RKME it sent), else the labelled sample's.
    sent = json.loads(ctx.data_bytes).get("unit_rms")
    if sent is not None and not ctx.is_image:
        try:
            return spec, space, check_rms(sent, space.dim)
        except SpecError as exc:
            raise _fail("rkme", str(exc), "submission:user:bad-rkme") from exc
    table = ctx.labelled_table
    rms = unit_rms(table.X) if table is not None and not ctx.is_image else None
    return spec, space, rms


def _from_images(ctx: ReuseContext) -> tuple[RKMESpecification, FeatureSpace]:
    from marketplace.learnwares.encoding import image_encoder

    images = ctx.user_images.images
    labelled = ctx.labelled_images
    if labelled is not None:  # every row the user holds describes their distribution (see _identification_rows)
        images = np.concatenate([images, labelled.images.astype(images.dtype)])
    space = resolve_space(ctx, None, IMAGE_DIM)
    E = image_encoder(int((space.schema or {}).get("seed", 0))).encode(images).astype(np.float64)
    try:
        return rkme_fit(E, min(RKME_K, E.shape[0]), space.gamma, random_state=ctx.seed), space
    except SpecError as exc:
        raise _fail("data", str(exc), "submission:user:bad-data") from exc


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


def run(ctx: ReuseContext, report: Report) -> dict[str, Any]:
    """Spec the user's data in its feature space (or validate the uploaded RKME)."""
    if ctx.submission.data_format == DataFormat.RKME:
        spec, space, known = _from_rkme(ctx)
        rms_known, rms = known is not None, known if known is not None else np.ones(space.dim)
        source = "client"
    elif ctx.is_image:
        spec, space = _from_images(ctx)
        rms, rms_known = np.ones(space.dim), False  # encoder outputs: no unit-free step
        source = "data"
    elif ctx.submission.data_format in (DataFormat.CSV, DataFormat.NPZ):
        table = ctx.user_table
        space = resolve_space(ctx, table.columns, table.X.shape[1])
        rows = _identification_rows(ctx, table.X)
        rms, rms_known = unit_rms(rows), True
        X = SpaceTransform(rms, space.standardization or {})(rows)
        try:
            spec = rkme_fit(X, min(RKME_K, X.shape[0]), space.gamma, random_state=ctx.seed)
        except SpecError as exc:
            raise _fail("data", str(exc), "submission:user:bad-data") from exc
        source = "data"
    elif ctx.is_text:
        from marketplace.learnwares.encoding import encode_texts

        texts = list(ctx.user_texts.texts)
        if ctx.labelled_texts is not None and not ctx.adapter_mode:
            texts += list(ctx.labelled_texts.texts)
        space = resolve_space(ctx, None, TEXT_DIM)
        rms, rms_known = np.ones(space.dim), False  # unit vectors: the text space needs no unit-free step
        try:
            spec = rkme_fit(encode_texts(texts).astype(np.float64), min(RKME_K, len(texts)), space.gamma, random_state=ctx.seed)
        except SpecError as exc:
            raise _fail("data", str(exc), "submission:user:bad-data") from exc
        source = "data"
    else:
        raise _fail("data_format", f"{ctx.submission.data_format!r} data are not supported by the reuse pipeline yet",
                    "submission:user:unsupported-format")
    labelled = _check_labels(ctx, space)
    image_shape = _image_shape(ctx)
    submission_feature_space_set(submission_id=ctx.submission.id, feature_space=space)
    stored = ctx.work_save("user-rkme.json", rkme_to_json(spec).encode())
    return {
        "feature_space": space.key, "source": source, "n_rows": spec.n_samples_, "d": int(spec.n_features_in_),
        "K": int(spec.Z_.shape[0]), "gamma": float(spec.gamma_), "self_term": spec.self_term(),
        "rkme_file": stored, "unit_rms": rms.tolist(), "unit_rms_known": rms_known, "labelled": labelled, "image_shape": image_shape,
        "explanation": (f"{'your RKME was validated' if source == 'client' else f'{spec.n_samples_} {_unit(ctx)} reduced to an RKME of {spec.Z_.shape[0]} points'} "
                        f"in feature space {space.key} (d={space.dim}, gamma={space.gamma:.4g})"),
    }


def _unit(ctx: ReuseContext) -> str:
    if ctx.is_image and ctx.submission.data_format != DataFormat.RKME:
        return f"images ({'x'.join(map(str, ctx.user_images.shape))}, C x H x W, encoded by the seeded conv encoder)"
    return "rows"


def user_spec(ctx: ReuseContext) -> RKMESpecification:
    """The user's RKME written by this stage."""
    if "user_spec" not in ctx.cache:
        ctx.cache["user_spec"] = rkme_from_json(ctx.work_load(ctx.results["spec"]["rkme_file"]["file"]))
    return ctx.cache["user_spec"]


def as_json(spec: RKMESpecification) -> dict[str, Any]:
    return json.loads(rkme_to_json(spec))
