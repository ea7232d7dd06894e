"""The publish pipeline: validate -> sandbox probe -> spec -> fingerprints -> index.

Each step computes only what is missing (the Specification row and its columns
are the keys), so a redelivered task does no double work. A user error rejects
the version with its reason (every rejection deletes the stored package); a
transient error propagates for the task to retry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import numpy as np
from django.core.files.base import ContentFile
from django.db import transaction

from marketplace.core.exceptions import ApplicationError, TransientError, ValidationFailed
from marketplace.learnwares import services
from marketplace.learnwares.choices import Kind, Modality, Task, VersionStatus
from marketplace.learnwares.conf import rkme_k, sandbox_limits, zip_limits
from marketplace.learnwares.encoding import encode_texts
from marketplace.learnwares.models import FeatureSpace, LearnwareVersion, Specification
from marketplace.learnwares.packages import Package, package_inspect, package_without
from marketplace.learnwares.samples import sample_encode, sample_raw
from marketplace.learnwares.services.adapter_bases import base_model_version
from specs import (
    RFFSketch,
    RKMESpecification,
    SerializationError,
    SpecError,
    arrays_to_bytes,
    rkme_from_json,
    rkme_to_json,
)
from specs.columns import Alignment, ColumnError, align_complete, column_names
from specs.data_rkme import encoded_rkme
from specs.fingerprints import (
    arrow_prototypes,
    image_probe_set,
    probe_fingerprint,
    probe_sentences,
    sphere_probe_set,
    table_probe_set,
)
from specs.packaging.zipsafe import ZipLimits
from specs.units import check_rms, unit_rms
from workers.pipelines.adapter_base import adapter_call
from workers.pipelines.publish_base_model import publish_base_model
from workers.pipelines.publish_text_model import base_pin, text_model_probe
from workers.sandbox import SandboxError, SandboxLimits, SandboxRefused, SandboxUnavailable, run_model

Report = Callable[..., None]
STEPS = ("validate", "sandbox", "spec", "fingerprints", "index")
PROBE_SEED = 0
SANDBOX_KINDS = {"torchscript": "torchscript", "peft_lora": "peft_lora", "onnx": "onnx"}
SANDBOX_KINDS["hf_safetensors"] = "hf_encoder"  # an uploaded base model's Hugging Face folder
FOLDER_FORMATS = ("peft_lora", "hf_safetensors")  # artifacts staged as {file name: bytes}


def _fail(code: str, message: str, **details: Any) -> ValidationFailed:
    return ValidationFailed(message, code=f"publish:user:{code}", details=details)


def _read_package(version: LearnwareVersion) -> bytes:
    try:
        with version.package.open("rb") as handle:
            return handle.read()
    except (OSError, ValueError) as exc:
        raise TransientError(f"cannot read the package from storage: {exc}") from exc


# --- sandbox ---------------------------------------------------------------------------------
def probe_inputs(*, manifest: dict[str, Any], space: FeatureSpace | None) -> np.ndarray:
    """The seeded probe set of the space (text encoders: probe sentences), in the model's input format."""
    if manifest["kind"] == Kind.BASE_MODEL and manifest["modality"] == Modality.IMAGE:
        return image_probe_set(manifest["input"]["shape"], 16, random_state=PROBE_SEED)
    if manifest["kind"] in (Kind.ADAPTER, Kind.BASE_MODEL):
        return np.array(probe_sentences(16, random_state=PROBE_SEED))
    assert space is not None  # noqa: S101 - every other kind has a feature space
    if manifest["modality"] == Modality.TABLE:
        std = space.standardization
        Z = table_probe_set(space.dim, 64, random_state=PROBE_SEED)
        rows = (Z * np.asarray(std["scale"]) + np.asarray(std["mean"])).astype(np.float32)
        # The probe set is laid out in the space's column order; the model takes its manifest's.
        return space_to_manifest(space, manifest).apply(rows)
    if manifest["modality"] == Modality.IMAGE:
        return image_probe_set(manifest["input"]["shape"], 32, random_state=PROBE_SEED)
    return sphere_probe_set(space.dim, 64, random_state=PROBE_SEED)


def check_outputs(*, manifest: dict[str, Any], outputs: np.ndarray, n: int) -> np.ndarray:
    """Output shape and label range must match the manifest; returns (n, k) scores/values."""
    dim = manifest["output"]["dim"]
    field = "output.classes" if manifest["task"] == Task.CLASSIFICATION else "output.dim"
    if outputs.shape[:1] != (n,):
        raise _fail(
            "output-shape",
            f"the model returned {outputs.shape} for {n} probe inputs; expected {n} rows",
            field=field,
        )
    if not np.isfinite(outputs).all():
        raise _fail("output-not-finite", "the model returned NaN or infinity on the probe set", field=field)
    if manifest["task"] == Task.CLASSIFICATION and outputs.ndim == 1:
        labels = outputs.astype(np.int64)
        if not np.array_equal(labels, outputs) or labels.min() < 0 or labels.max() >= dim:
            raise _fail(
                "output-labels", f"predicted labels must be integers in [0, {dim}) per {field}", field=field
            )
        return np.eye(dim, dtype=np.float32)[labels]
    flat = outputs.reshape(n, -1) if outputs.ndim > 1 else outputs[:, None]
    if flat.shape[1] != dim:
        raise _fail(
            "output-shape",
            f"the model returns {flat.shape[1]} values per input; {field} says {dim}",
            field=field,
        )
    return flat


def run_probe(*, package: Package, space: FeatureSpace | None) -> np.ndarray:
    manifest = package.manifest
    inputs = probe_inputs(manifest=manifest, space=space)
    artifact: Any = package.artifact if package.artifact_format in FOLDER_FORMATS else package.artifact_bytes
    call: dict[str, Any] = {"artifact": artifact, "base_model_path": None, "pooling": manifest.get("pooling")}
    if manifest["kind"] == Kind.ADAPTER:  # the offline MiniLM, or a published base staged beside it
        call = adapter_call(manifest, artifact)
    try:
        outputs = run_model(
            call.pop("artifact"),
            inputs,
            kind=SANDBOX_KINDS[package.artifact_format],
            limits=SandboxLimits(**sandbox_limits()),
            **call,
        )
    except SandboxUnavailable as exc:
        raise TransientError(exc.message) from exc
    except (
        SandboxRefused
    ) as exc:  # a format rule checked in the child: the upload's own code, no model output
        raise ValidationFailed(exc.message, code=exc.code, details=exc.details) from exc
    except SandboxError as exc:
        raise ValidationFailed(
            exc.message, code=f"publish:user:{exc.code.split(':', 1)[1]}", details={"log": exc.log[-1000:]}
        ) from exc
    return check_outputs(manifest=manifest, outputs=outputs, n=len(inputs))


# --- spec --------------------------------------------------------------------------------------
def space_to_manifest(space: FeatureSpace, manifest: dict[str, Any]) -> Alignment:
    """Rows in the space's column order -> the manifest's order (the model's input), by name."""
    return align_complete(column_names(space.schema["columns"]), manifest["input"]["columns"])


def manifest_to_space(space: FeatureSpace, columns: list[Any]) -> Alignment:
    """Rows (or RKME points) in ``columns``' order -> the space's order, by name."""
    return align_complete(column_names(columns), space.schema["columns"], what=f"feature space {space.key}")


def rkme_order(raw: bytes, space: FeatureSpace, manifest: dict[str, Any]) -> Alignment | None:
    """A client's RKME is in the order of its ``columns`` field (the client writes the space's), else
    in the manifest's: the map of its coordinates into the space's order (None: already in it)."""
    if space.kind != Modality.TABLE or not (space.schema or {}).get("columns"):
        return None
    sent = json.loads(raw).get("columns")
    try:
        order = manifest_to_space(space, sent if isinstance(sent, list) else manifest["input"]["columns"])
    except ColumnError as exc:
        raise _fail("rkme-columns", f"rkme.json: {exc}", file="rkme.json") from None
    return None if order.is_identity else order


def _rkme_in_space_order(
    spec: RKMESpecification, raw: bytes, space: FeatureSpace, manifest: dict[str, Any]
) -> RKMESpecification:
    """The client's RKME with its points permuted into the space's order (the Gaussian kernel is
    invariant)."""
    order = rkme_order(raw, space, manifest)
    if order is not None:
        spec.Z_ = np.ascontiguousarray(order.apply(spec.Z_))
    return spec


def verify_rkme(
    *, raw: bytes, space: FeatureSpace, manifest: dict[str, Any] | None = None
) -> RKMESpecification:
    """Check a client's rkme.json: format, the space's dimension and gamma, finite weights."""
    try:
        spec = rkme_from_json(raw)
    except SerializationError as exc:
        raise _fail("rkme-invalid", f"rkme.json: {exc}", file="rkme.json") from None
    if manifest is not None and spec.Z_.shape[1] == space.dim:
        spec = _rkme_in_space_order(spec, raw, space, manifest)
    if spec.Z_.shape[1] != space.dim:
        raise _fail(
            "rkme-dimension",
            f"rkme.json: field 'd' is {spec.Z_.shape[1]}, the feature space {space.key} has {space.dim}",
            file="rkme.json",
        )
    if not np.isclose(spec.gamma_, space.gamma, rtol=1e-9, atol=0):
        raise _fail(
            "rkme-gamma",
            f"rkme.json: field 'gamma' is {spec.gamma_}, the feature space {space.key} uses {space.gamma}",
            file="rkme.json",
        )
    total = float(spec.beta_.sum())
    if not 0.5 <= total <= 2.0 or spec.Z_.shape[0] > 5000:
        raise _fail(
            "rkme-weights",
            f"rkme.json: field 'beta' sums to {total:.3g} (expected about 1) with K <= 5000",
            file="rkme.json",
        )
    return spec


def fit_rkme(*, encoded: np.ndarray, space: FeatureSpace, seed_from: str) -> RKMESpecification:
    return encoded_rkme(encoded, space.gamma, k=rkme_k(), random_state=int(seed_from[:8], 16))


def spec_unit_rms(
    *, space: FeatureSpace, raw_sample: Any, rkme_json: bytes | None, manifest: dict[str, Any] | None = None
) -> list[float] | None:
    """The per-column RMS of the developer's rows (the units the model takes) in a unit-free table
    space: from the sample, else the ``unit_rms`` a client put in rkme.json; None if neither tells."""
    if space.kind != Modality.TABLE or not (space.standardization or {}).get("scale_invariant"):
        return None
    if raw_sample is not None:
        return unit_rms(np.asarray(raw_sample, dtype=np.float64)).tolist()
    sent = json.loads(rkme_json).get("unit_rms") if rkme_json is not None else None
    if sent is None:
        return None
    try:
        rms = check_rms(sent, space.dim)
        order = (
            rkme_order(rkme_json, space, manifest) if manifest is not None and rkme_json is not None else None
        )
        return (order.apply(rms[None, :])[0] if order is not None else rms).tolist()
    except SpecError as exc:
        raise _fail("rkme-unit-rms", f"rkme.json: field 'unit_rms': {exc}", file="rkme.json") from None


def store_spec(
    *,
    version: LearnwareVersion,
    space: FeatureSpace,
    spec: RKMESpecification,
    computed_from: str,
    unit_rms: list[float] | None = None,
) -> Specification:
    """Store the RKME (with ``unit_rms`` beside it when known: reuse maps users' rows into these units)."""
    sketch = RFFSketch(space.dim, space.gamma, space.sketch_dim, random_state=space.sketch_seed).transform(
        spec.Z_, spec.beta_
    )
    doc = json.loads(rkme_to_json(spec)) | ({"unit_rms": unit_rms} if unit_rms is not None else {})
    return services.specification_store(
        version=version,
        space=space,
        rkme=doc,
        k=int(spec.Z_.shape[0]),
        self_term=spec.self_term(),
        sketch=sketch.astype("<f4").tobytes(),
        computed_from=computed_from,
    )


def strip_sample(*, version: LearnwareVersion, data: bytes, package: Package) -> None:
    """Replace the stored package by the same zip without the sample (the data never stays)."""
    if not package.sample:
        return
    cleaned = package_without(data, set(package.sample))
    old = version.package.name
    version.artifact_sha256 = hashlib.sha256(cleaned).hexdigest()
    version.artifact_size = len(cleaned)
    version.package.save("package.zip", ContentFile(cleaned), save=False)
    LearnwareVersion.objects.filter(id=version.id).update(
        package=version.package.name,
        artifact_sha256=version.artifact_sha256,
        artifact_size=version.artifact_size,
    )
    if old:  # the version was loaded with its package: always true
        version.package.storage.delete(old)


# --- fingerprints ------------------------------------------------------------------------------
def adapter_prototypes(package: Package) -> bytes:
    from safetensors.numpy import load

    tensors = load(package.artifact["adapter_model.safetensors"])
    factors = {}
    for name, A in tensors.items():
        if ".lora_A." in name:
            B = tensors.get(name.replace(".lora_A.", ".lora_B."))
            if B is not None:
                factors[name.split(".lora_A.")[0]] = (A, B)
    return arrays_to_bytes({"kind": "arrow-prototypes", "top_k": 1}, arrow_prototypes(factors))


def card_text(version: LearnwareVersion) -> str:
    lw = version.learnware
    return f"{lw.name}. {lw.description} {' '.join(lw.tags)}".strip()


def store_fingerprints(*, version: LearnwareVersion, package: Package, outputs: np.ndarray) -> None:
    spec = version.specification
    fields: dict[str, Any] = {}
    if spec.probe_fingerprint is None:
        fields["probe_fingerprint"] = arrays_to_bytes(
            {"probe_seed": PROBE_SEED}, {"outputs": probe_fingerprint(outputs)}
        )
    if spec.arrow_prototypes is None and package.artifact_format == "peft_lora":
        fields["arrow_prototypes"] = adapter_prototypes(package)
    if spec.card_embedding is None:
        fields["card_embedding"] = encode_texts([card_text(version)])[0].astype("<f4").tobytes()
    if fields:
        Specification.objects.filter(id=spec.id).update(**fields)


# --- orchestration -----------------------------------------------------------------------------
def _space(package: Package, raw_sample: Any) -> FeatureSpace:
    reference = (
        raw_sample if package.manifest["modality"] == Modality.TABLE and raw_sample is not None else None
    )
    return services.feature_space_for_manifest(manifest=package.manifest, reference=reference)


def _run(version: LearnwareVersion, report: Report) -> str:
    report("validate", 0, len(STEPS), "checking the package")
    data = _read_package(version)
    has_spec = Specification.objects.filter(version=version).exists()
    package = package_inspect(data, limits=ZipLimits(**zip_limits()), require_spec=not has_spec)
    services.version_check(
        version=version, check="validate", ok=True, message=f"{package.artifact_format}, {len(data)} bytes"
    )
    if package.manifest["kind"] == Kind.BASE_MODEL:  # no feature space, no RKME: publish_base_model
        report("sandbox", 1, len(STEPS), "checking and loading the base model, embedding the probe")
        outputs = run_probe(package=package, space=None)
        return publish_base_model(version=version, package=package, outputs=outputs, report=report)
    raw = (
        sample_raw(manifest=package.manifest, kind=package.sample_kind, files=package.sample)
        if package.sample_kind and not has_spec
        else None
    )
    # An adapter's probe does not need its space, nor does a text model's on a published base (its
    # probe reads the base's width): the space is made after the probe passed, so a refused upload
    # leaves no empty encoder space behind.
    adapter = package.manifest["kind"] == Kind.ADAPTER
    base = services.published_text_base(package.manifest)
    # Read once, before the probe: the pin names the version probed, even if a newer one publishes meanwhile.
    base_version = base_model_version(base) if base is not None else None
    space = _space(package, raw) if not adapter and base is None else None
    if (
        space is not None and raw is not None and space.kind == Modality.TABLE
    ):  # the sample in the space's column order, by name
        raw = manifest_to_space(space, package.manifest["input"]["columns"]).apply(
            np.asarray(raw, dtype=np.float64)
        )

    report("sandbox", 1, len(STEPS), "running the model on the probe set")
    outputs = (
        text_model_probe(package=package, row=base, probe=run_probe)
        if base is not None
        else run_probe(package=package, space=space)
    )
    services.version_check(
        version=version, check="sandbox", ok=True, message=f"probe outputs {list(outputs.shape)}"
    )
    if base is not None and base_version is not None and not version.base_pin:  # a redelivery keeps its pin
        services.version_pin_base(version=version, pin=base_pin(base, base_version))
    space = space or _space(package, raw)

    report("spec", 2, len(STEPS), "verifying or computing the RKME")
    if not has_spec:
        if package.rkme_json is not None:
            spec, source = (
                verify_rkme(raw=package.rkme_json, space=space, manifest=package.manifest),
                "client",
            )
        else:
            spec, source = (
                fit_rkme(
                    encoded=sample_encode(space=space, data=raw),
                    space=space,
                    seed_from=version.upload_sha256 or version.artifact_sha256,
                ),
                "sample",
            )
        with transaction.atomic():
            store_spec(
                version=version,
                space=space,
                spec=spec,
                computed_from=source,
                unit_rms=spec_unit_rms(
                    space=space,
                    raw_sample=raw if source == "sample" else None,
                    rkme_json=package.rkme_json,
                    manifest=package.manifest,
                ),
            )
        strip_sample(version=version, data=data, package=package)
        services.version_check(
            version=version, check="spec", ok=True, message=f"RKME from {source}, K={spec.Z_.shape[0]}"
        )

    report("fingerprints", 3, len(STEPS), "probe fingerprint, prototypes, card embedding")
    version.refresh_from_db()
    store_fingerprints(version=version, package=package, outputs=outputs)

    report("index", 4, len(STEPS), "adding to the search index")
    return services.version_complete(version=version)


def publish_version(*, version_id: int, report: Report) -> dict[str, Any]:
    """Run every missing step for one version and return {version, status}.

    Raises
    ------
    ApplicationError
        The upload is refused; the version is rejected first, with the reason.
    TransientError
        Storage or sandbox briefly unavailable; the task retries.
    """
    version = LearnwareVersion.objects.select_related("learnware").get(id=version_id)
    if version.status not in (VersionStatus.UPLOADED, VersionStatus.VALIDATING):
        return {"version": version.id, "status": version.status, "skipped": "already decided"}
    services.version_start(version=version)
    try:
        status = _run(version, report)
    except ApplicationError as exc:
        services.version_check(version=version, check=report_stage(version), ok=False, message=exc.message)
        services.version_reject(version=version, reasons=[exc.to_dict()])
        raise
    return {
        "version": version.id,
        "learnware": version.learnware_id,
        "status": status,
        "sha256": version.artifact_sha256,
    }


def report_stage(version: LearnwareVersion) -> str:
    done = {c["check"] for c in version.checks if c.get("ok")}
    return next((s for s in STEPS if s not in done), "index")
