"""Stage ``package``: the chosen assembly as a learnware package, and a predictor for it.

The zip holds ``learnware.yaml`` (the manifest, artifact format ``assembly``),
``recipe.json`` (method, task classes, the space transform, and every member's exact
learnware version, package sha256, artifact path and sha256, classes and licence),
``assembly.lwa`` (the fitted method, specs' no-pickle format), ``members/<i>/<file>``
(each member's model artifact, byte for byte) and ``rkme.json`` (the spec of the user's
data, so the package can itself be published). Entries are written in a fixed order with
a fixed timestamp, so the same inputs give the same bytes (and sha256).

An image assembly takes images: the manifest declares ``input.shape`` (C, H, W) and the
recipe's ``transform.image`` names the space's encoder, seed and shape; its members get the
pixels flattened in (C, H, W) order, as in the pipeline, and the methods that work in the
space get the images' encoding.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import torch
import yaml

from marketplace.submissions.services import submission_package_save
from specs.assembly import Assembly, BestSingle
from specs.assembly.prune import prune
from specs.images import image_rows, rows_as_images
from specs.packaging.onnx_run import OnnxModel, load_onnx
from specs.packaging.torchscript import load_torchscript
from workers.base import Report
from workers.pipelines import reuse_methods as methods
from workers.pipelines.reuse_context import ImageSpaceTransform, ReuseContext, SpaceTransform
from workers.pipelines.reuse_members import probabilities
from workers.pipelines.reuse_rank import context_members

RECIPE_FORMAT = "lwm-assembly-recipe"
RECIPE_VERSION = 1
_EPOCH = (1980, 1, 1, 0, 0, 0)
SCRATCH_LICENSE = "LicenseRef-Proprietary"  # a model trained on the user's own rows is theirs


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[name])
    return buffer.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _license(licenses: list[str]) -> str:
    unique = sorted(set(licenses))
    return unique[0] if len(unique) == 1 else " AND ".join(unique)


def _delivered(ctx: ReuseContext) -> tuple[str, dict[str, Any] | None]:
    """(method, assemble row) of what the evaluate stage measured to be best; row None for from scratch."""
    assemble, evaluation = ctx.results["assemble"], ctx.results["evaluate"]
    winner = evaluation.get("winner") or {}
    if winner.get("kind") == "from_scratch":
        return winner["method"], None
    method = evaluation.get("chosen") if evaluation.get("labelled") and evaluation.get("labels_used") else assemble["chosen"]
    return method, next(r for r in assemble["methods"] if r["method"] == method)


def _scratch_member(ctx: ReuseContext, name: str) -> tuple[bytes, dict[str, Any], list[str] | None]:
    """The winning from-scratch model, refitted on every labelled row, as TorchScript bytes."""
    from workers.pipelines.reuse_assemble import labelled_codes
    from workers.pipelines.reuse_evaluate import scratch_fit, scratch_models
    from workers.pipelines.reuse_scratch import scratch_torchscript

    assert ctx.labelled_table is not None
    task, classes = ctx.submission.task, ctx.results["assemble"]["classes"] or []
    model = scratch_fit(scratch_models(task, ctx.seed)[name], ctx.labelled_table.X, labelled_codes(ctx, classes), task)
    assert not isinstance(model, int)  # evaluate only lets a fitted model win
    own = [classes[int(c)] for c in model.classes_] if task == "classification" else None
    card = {"learnware_id": None, "version_id": None, "version": None, "name": f"from-scratch-{name}",
            "license": SCRATCH_LICENSE, "sha256": None}
    return scratch_torchscript(model, task), card, own


def run(ctx: ReuseContext, report: Report) -> dict[str, Any]:
    """Build the package of the delivered method and store it with the submission."""
    assemble = ctx.results["assemble"]
    method, row = _delivered(ctx)
    files: dict[str, bytes] = {"rkme.json": ctx.work_load(ctx.results["spec"]["rkme_file"]["file"])}
    entries = []
    task, classes = ctx.submission.task, assemble["classes"]
    nc = len(classes) if task == "classification" and classes else None
    if row is None:  # a model trained from scratch on the user's rows: an assembly of one member
        artifact, card, own = _scratch_member(ctx, method)
        path = "members/0/model.pt"
        files[path] = artifact
        entries.append({**card, "package_sha256": None, "classes": own, "input_shape": None, "origin": "from_scratch",
                        "artifact": {"path": path, "format": "torchscript", "sha256": _sha(artifact)}})
        assembly_model = BestSingle(task=task, n_classes=nc).fit([np.zeros(0)], scores=np.ones(1))
        kind, members, licenses = "best_single", [], [SCRATCH_LICENSE]
    else:
        all_members, cache = context_members(ctx, [m["version_id"] for m in assemble["members"]])
        kept, assembly_model = prune(Assembly.from_bytes(ctx.work_load(row["artifact"]["file"])), len(all_members))
        members = [all_members[i] for i in kept]  # members of weight 0 are not shipped
        for i, m in enumerate(members):
            artifact = cache.artifact(m)
            path = f"members/{i}/{PurePosixPath(m.artifact_name).name}"
            files[path] = artifact
            entries.append({**m.card(), "package_sha256": m.sha256, "classes": m.classes, "input_shape": m.input_shape,
                            "artifact": {"path": path, "format": m.artifact_format, "sha256": _sha(artifact)},
                            **member_map_entry(ctx, m)})
        kind, licenses = assembly_model.kind, [m.license for m in members]
    assembly = assembly_model.to_bytes()
    files["assembly.lwa"] = assembly
    evaluation = ctx.results["evaluate"]
    transform = ctx.transform.to_dict()
    if "image" in transform and not transform["image"]["shape"]:
        # No images came with the submission (an RKME without a labelled sample): the members' shape.
        transform["image"]["shape"] = _members_shape([cache.files(m) for m in members])
    recipe = {
        "format": RECIPE_FORMAT, "version": RECIPE_VERSION, "method": method, "task": task,
        "classes": classes, "feature_space": ctx.space.key, "transform": transform,
        "assembly": {"path": "assembly.lwa", "sha256": _sha(assembly), "kind": kind},
        "members": entries, "licenses": sorted(set(licenses)),
        "evaluation": {"verdict": evaluation.get("verdict"), "statement": evaluation.get("statement"),
                       "winner": evaluation.get("winner"), "verdicts": evaluation.get("verdicts")},
    }
    files["recipe.json"] = json.dumps(recipe, indent=2, sort_keys=True).encode()
    columns = (ctx.space.schema or {}).get("columns")
    described = ", ".join(f"{e['name']}" + (f" v{e['version']}" if e.get("version") else "") for e in entries)
    manifest = {
        # Named after the inputs, not the submission: the same inputs give the same bytes.
        "name": f"assembly-{evaluation['key'][:12]}", "kind": "model", "modality": ctx.submission.modality,
        "task": task, "description": f"{method} over {len(entries)} member(s): {described}",
        "input": {"shape": transform["image"]["shape"]} if "image" in transform else {"columns": columns} if columns
        else {"dim": ctx.space.dim},
        "output": {"classes": classes} if classes else {"dim": 1},
        "license": _license(licenses), "tags": ["assembly", method],
        "artifact": {"format": "assembly", "path": "recipe.json"}, "feature_space": ctx.space.key,
        "specification": "rkme.json",
    }
    files["learnware.yaml"] = yaml.safe_dump(manifest, sort_keys=True).encode()
    content = _zip(files)
    report("package", 1, 1, f"package of {len(content)} bytes")
    submission_package_save(submission_id=ctx.submission.id, content=content, filename="package.zip")
    return {"sha256": _sha(content), "size": len(content), "files": sorted(files), "license": manifest["license"],
            "method": method, "winner": evaluation.get("winner"),
            "members": [{"version_id": e["version_id"], "sha256": e["package_sha256"]} for e in entries]}


def member_map_entry(ctx: ReuseContext, member: Any) -> dict[str, Any]:
    """``input_map`` of a recipe member: the factors (d,) that take the user's raw rows into the
    member's units (``x_member = x * scale``); absent when the units are unknown (identity)."""
    _, cache = context_members(ctx, [member.version_id])
    scale = cache.scale(member)
    return {} if scale is None else {"input_map": {"scale": scale.tolist()}}


def _members_shape(files: list[dict[str, bytes]]) -> list[int]:
    """The one ``input.shape`` the members' manifests declare (image learnwares must declare it)."""
    shapes = {tuple(yaml.safe_load(f["learnware.yaml"]).get("input", {}).get("shape") or ()) for f in files}
    shapes.discard(())
    if len(shapes) != 1:
        raise ValueError(f"the members declare {len(shapes)} input shapes {sorted(shapes)}: an image assembly needs one")
    return list(next(iter(shapes)))


def member_inputs(X: np.ndarray, entry: dict[str, Any]) -> np.ndarray:
    """Rows X (n, d) as the recipe member takes them: (n, C, H, W) float32 when it declares an
    ``input_shape`` (an image learnware, probed so at publishing), else float32 rows in the
    member's units (its ``input_map.scale``, when the recipe has one)."""
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    mapping = entry.get("input_map")
    if mapping:
        X32 = np.ascontiguousarray(X32 * np.asarray(mapping["scale"], dtype=np.float32))
    shape = entry.get("input_shape")
    return np.ascontiguousarray(rows_as_images(X32, shape)) if shape else X32


def _member_model(raw: bytes, fmt: str) -> Any:
    """A member's model, checked like any upload: TorchScript through ``load_torchscript`` (no
    load-time code, allow-listed operators), ONNX through ONNX Runtime (one thread)."""
    if fmt == "onnx":
        return load_onnx(raw)
    return load_torchscript(raw, "model.pt")


def _member_run(model: Any, X32: np.ndarray) -> np.ndarray:
    if isinstance(model, OnnxModel):
        return np.asarray(model(X32), dtype=np.float64)
    return model(torch.from_numpy(X32)).double().numpy()


class PackagePredictor:
    """Predict with a package built by :func:`run` (TorchScript and ONNX members run in this process:
    this is the user's side, on their machine, with the artifacts the market checked)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.manifest = yaml.safe_load(files["learnware.yaml"])
        self.recipe = json.loads(files["recipe.json"])
        if self.recipe.get("format") != RECIPE_FORMAT or self.recipe.get("version") != RECIPE_VERSION:
            raise ValueError(f"recipe.json is not a {RECIPE_FORMAT} v{RECIPE_VERSION} recipe")
        assembly = files[self.recipe["assembly"]["path"]]
        if _sha(assembly) != self.recipe["assembly"]["sha256"]:
            raise ValueError("assembly.lwa does not match the sha256 in recipe.json")
        self.assembly = Assembly.from_bytes(assembly)
        t = self.recipe["transform"]
        self.image = t.get("image")
        self.transform: SpaceTransform | ImageSpaceTransform
        if self.image:  # rows of pixels -> the space, by the space's seeded conv encoder
            self.transform = ImageSpaceTransform(self.image["shape"], int(self.image["seed"]), len(t["mean"]))
        else:
            self.transform = SpaceTransform(np.asarray(t["rms"]), {})
            self.transform.mean, self.transform.scale, self.transform.unit_free = np.asarray(t["mean"]), np.asarray(t["scale"]), t["unit_free"]
        self.members = []
        for entry in self.recipe["members"]:
            raw = files[entry["artifact"]["path"]]
            if _sha(raw) != entry["artifact"]["sha256"]:
                raise ValueError(f"{entry['artifact']['path']} does not match its sha256")
            self.members.append((_member_model(raw, entry["artifact"].get("format", "torchscript")), entry))

    @classmethod
    def from_bytes(cls, content: bytes) -> PackagePredictor:
        with zipfile.ZipFile(io.BytesIO(content)) as zf:
            return cls({info.filename: zf.read(info) for info in zf.infolist()})

    def _outputs(self, X: np.ndarray) -> list[np.ndarray]:
        classes = self.recipe["classes"]
        out = []
        with torch.no_grad():
            for model, entry in self.members:
                raw = _member_run(model, member_inputs(X, entry))
                if self.recipe["task"] != "classification":
                    out.append(raw.reshape(raw.shape[0], -1)[:, 0])
                    continue
                probs, full = probabilities(raw), np.zeros((X.shape[0], len(classes)))
                own = entry["classes"] or [str(i) for i in range(probs.shape[1])]
                for j, c in enumerate(own):
                    if c in classes:
                        full[:, classes.index(c)] = probs[:, j]
                out.append(full)
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, C) probabilities over ``recipe['classes']`` (classification) or (n,) predictions.

        X: table rows (n, d) in raw units, or, for an image assembly, images (see :func:`image_rows`)."""
        X = image_rows(X, self.image["shape"]) if self.image else np.asarray(X, dtype=np.float64)
        task = self.recipe["task"]
        nc = len(self.recipe["classes"]) if task == "classification" else None
        return methods.predict_method(self.assembly, task=task, n_classes=nc, outputs=self._outputs(X), Xs=self.transform(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class names (n,) or regression predictions (n,)."""
        out = self.predict_proba(X)
        if self.recipe["task"] != "classification":
            return out
        return np.asarray(self.recipe["classes"])[out.argmax(axis=1)]
