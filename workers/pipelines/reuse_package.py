"""Stage ``package``: the chosen assembly as a learnware package, and a predictor for it.

The zip holds ``learnware.yaml`` (the manifest, artifact format ``assembly``),
``recipe.json`` (method, task classes, the space transform, and every member's exact
learnware version, package sha256, artifact path and sha256, classes and licence),
``assembly.lwa`` (the fitted method, specs' no-pickle format); in a published base's space the
recipe's ``base`` (the version the user's texts were embedded with) and, for a member head fed
another version (its pin), the member's own ``base``; ``members/<i>/<file>``
(each member's model artifact, byte for byte) and ``rkme.json`` (the spec of the user's
data, so the package can itself be published). Entries are written in a fixed order with
a fixed timestamp, so the same inputs give the same bytes (and sha256).

An image assembly takes images: the manifest declares ``input.shape`` (C, H, W) and the
recipe's ``transform.image`` names the space's encoder, seed and shape; its members get the
pixels flattened in (C, H, W) order, as in the pipeline, and the methods that work in the
space get the images' encoding.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath

import numpy as np
import torch
import yaml

from marketplace.submissions.services import submission_package_save
from specs.assembly import Assembly, BestSingle
from specs.assembly.prune import prune
from specs.packaging.onnx_run import load_onnx
from specs.packaging.torchscript import load_torchscript
from specs.recipe import RECIPE_FORMAT, MemberModel, RecipePredictor, package_files, recipe_version
from workers.base import Report
from workers.pipelines.reuse_base_pins import member_base
from workers.pipelines.reuse_context import ReuseContext
from workers.pipelines.reuse_members import Member
from workers.pipelines.reuse_results import AssembleResult, Json, PackageResult
from workers.pipelines.reuse_scratch import scratch_fit, scratch_models, scratch_torchscript
from workers.pipelines.reuse_shared import (
    context_members,
    deterministic_zip,
    labelled_codes,
    license_expression,
    sha256_hex,
)

SCRATCH_LICENSE = "LicenseRef-Proprietary"  # a model trained on the user's own rows is theirs


def _assembled(ctx: ReuseContext) -> AssembleResult:
    result = ctx.assemble_result
    assert isinstance(result, AssembleResult)  # adapters have their own package stage
    return result


def _delivered(ctx: ReuseContext) -> tuple[str, Json | None]:
    """(method, assemble row) of what the evaluate stage measured to be best; row None for from scratch."""
    assemble, evaluation = _assembled(ctx), ctx.results["evaluate"]
    winner = evaluation.get("winner") or {}
    if winner.get("kind") == "from_scratch":
        return winner["method"], None
    method = (
        str(evaluation["chosen"])
        if evaluation.get("labelled") and evaluation.get("labels_used")
        else assemble.chosen
    )
    return method, next(r for r in assemble.methods if r["method"] == method)


def _scratch_member(ctx: ReuseContext, name: str) -> tuple[bytes, Json, list[str] | None]:
    """The winning from-scratch model, refitted on every labelled row, as TorchScript bytes."""
    assert ctx.labelled_table is not None
    task, classes = ctx.submission.task, _assembled(ctx).classes or []
    model = scratch_fit(
        scratch_models(task, ctx.seed)[name], ctx.labelled_table.X, labelled_codes(ctx, classes), task
    )
    assert not isinstance(model, int)  # evaluate only lets a fitted model win
    own = [classes[int(c)] for c in model.classes_] if task == "classification" else None
    card = {
        "learnware_id": None,
        "version_id": None,
        "version": None,
        "name": f"from-scratch-{name}",
        "license": SCRATCH_LICENSE,
        "sha256": None,
    }
    return scratch_torchscript(model, task), card, own


def run(ctx: ReuseContext, report: Report) -> PackageResult:
    """Build the package of the delivered method and store it with the submission."""
    assemble = _assembled(ctx)
    method, row = _delivered(ctx)
    files: dict[str, bytes] = {"rkme.json": ctx.work_load(ctx.spec_result.rkme_file["file"])}
    entries: list[Json] = []
    members: list[Member]
    task, classes = ctx.submission.task, assemble.classes
    nc = len(classes) if task == "classification" and classes else None
    if row is None:  # a model trained from scratch on the user's rows: an assembly of one member
        artifact, card, own = _scratch_member(ctx, method)
        path = "members/0/model.pt"
        files[path] = artifact
        entries.append(
            {
                **card,
                "package_sha256": None,
                "classes": own,
                "input_shape": None,
                "origin": "from_scratch",
                "artifact": {"path": path, "format": "torchscript", "sha256": sha256_hex(artifact)},
            }
        )
        assembly_model: Assembly = BestSingle(task=task, n_classes=nc).fit([np.zeros(0)], scores=np.ones(1))
        kind, members, licenses = "best_single", [], [SCRATCH_LICENSE]
    else:
        all_members, cache = context_members(ctx, [m["version_id"] for m in assemble.members])
        kept, assembly_model = prune(
            Assembly.from_bytes(ctx.work_load(row["artifact"]["file"])), len(all_members)
        )
        members = [all_members[i] for i in kept]  # members of weight 0 are not shipped
        for i, m in enumerate(members):
            artifact = cache.artifact(m)
            path = f"members/{i}/{PurePosixPath(m.artifact_name).name}"
            files[path] = artifact
            entries.append(
                {
                    **m.card(),
                    "package_sha256": m.sha256,
                    "classes": m.classes,
                    "input_shape": m.input_shape,
                    "artifact": {"path": path, "format": m.artifact_format, "sha256": sha256_hex(artifact)},
                    **member_map_entry(ctx, m),
                    **member_base_entry(ctx, m),
                }
            )
        kind, licenses = assembly_model.kind, [m.license for m in members]
    assembly = assembly_model.to_bytes()
    files["assembly.lwa"] = assembly
    evaluation = ctx.results["evaluate"]
    transform = ctx.transform.to_dict()
    if "image" in transform and not transform["image"]["shape"]:
        # No images came with the submission (an RKME without a labelled sample): the members' shape.
        transform["image"]["shape"] = _members_shape([cache.files(m) for m in members])
    recipe = {
        "format": RECIPE_FORMAT,
        "version": recipe_version(entries),
        "method": method,
        "task": task,
        "classes": classes,
        "feature_space": ctx.space.key,
        "transform": transform,
        "assembly": {"path": "assembly.lwa", "sha256": sha256_hex(assembly), "kind": kind},
        "members": entries,
        "licenses": sorted(set(licenses)),
        "evaluation": {
            "verdict": evaluation.get("verdict"),
            "statement": evaluation.get("statement"),
            "winner": evaluation.get("winner"),
            "verdicts": evaluation.get("verdicts"),
        },
    }
    if ctx.base is not None:  # texts in a published base's space: the client embeds them with this version
        recipe["base"] = ctx.base.card()
    columns = (ctx.space.schema or {}).get("columns")
    given = recipe_input(ctx)
    if given is not None:  # the package takes the user's rows as given: their columns, their order
        recipe["input"], columns = given, given["columns"]
    files["recipe.json"] = json.dumps(recipe, indent=2, sort_keys=True).encode()
    described = ", ".join(f"{e['name']}" + (f" v{e['version']}" if e.get("version") else "") for e in entries)
    manifest = {
        # Named after the inputs, not the submission: the same inputs give the same bytes.
        "name": f"assembly-{ctx.stored_key('evaluate')[:12]}",
        "kind": "model",
        "modality": ctx.submission.modality,
        "task": task,
        "description": f"{method} over {len(entries)} member(s): {described}",
        "input": {"shape": transform["image"]["shape"]}
        if "image" in transform
        else {"columns": columns}
        if columns
        else {"dim": ctx.space.dim},
        "output": {"classes": classes} if classes else {"dim": 1},
        "license": license_expression(licenses),
        "tags": ["assembly", method],
        "artifact": {"format": "assembly", "path": "recipe.json"},
        **({"base_model": ctx.base.key} if ctx.base is not None else {}),
        "feature_space": ctx.space.key,
        "specification": "rkme.json",
    }
    files["learnware.yaml"] = yaml.safe_dump(manifest, sort_keys=True).encode()
    content = deterministic_zip(files)
    report("package", 1, 1, f"package of {len(content)} bytes")
    submission_package_save(submission_id=ctx.submission.id, content=content, filename="package.zip")
    return PackageResult(
        sha256=sha256_hex(content),
        size=len(content),
        files=sorted(files),
        license=license_expression(licenses),
        method=method,
        winner=evaluation.get("winner"),
        members=[{"version_id": e["version_id"], "sha256": e["package_sha256"]} for e in entries],
    )


def member_map_entry(ctx: ReuseContext, member: Member) -> Json:
    """``input_map`` of a recipe member: the factors (d,) that take the user's raw rows into the
    member's units (``x_member = x * scale``) and, when its model's columns are in another order
    than the space's, ``order`` (its columns as indices into the space's rows, applied after the
    scale); absent when both are the identity. With columns the user lacks, ``impute``: the member's
    own RKME fill (``specs.impute.member_fill``); absent when it keeps the plan's."""
    _, cache = context_members(ctx, [member.version_id])
    scale = cache.scale(member)
    mapping: Json = {} if scale is None else {"scale": scale.tolist()}
    if member.input_order is not None:
        mapping["order"] = list(member.input_order)
    out: Json = {"input_map": mapping} if mapping else {}
    fill = cache.fill(member)  # its own RKME's fill of the columns the user lacks (specs.impute.member_rows)
    return out | ({"impute": fill} if fill is not None else {})


def member_base_entry(ctx: ReuseContext, member: Member) -> Json:
    """``base`` of a recipe member fed another base version than the recipe's (a text head pinned to
    it, ``reuse_base_pins.member_base``): the same fields as ``recipe.base``; absent otherwise."""
    own = member_base(ctx, member.version_id)
    return {"base": own.card()} if own is not None else {}


def recipe_input(ctx: ReuseContext) -> Json | None:
    """The recipe's ``input``: the user's data columns as given (``columns``) and, for each space
    column, the given column that feeds it (``index``); None when the data named no columns.
    Rows reach the space by name, so permuted, extra and renamed columns predict as given."""
    report = ctx.spec_result.columns
    if not report or ctx.is_image:
        return None
    out: Json = {"columns": list(report["given"]), "index": [int(i) for i in report["index"]]}
    plan = ctx.imputation
    if plan:  # columns the user lacks, filled as in the pipeline (specs.impute.impute_raw)
        out["impute"] = {k: v for k, v in plan.items() if k not in ("source", "explanation", "own_rkme")}
    return out


def _members_shape(files: list[dict[str, bytes]]) -> list[int]:
    """The one ``input.shape`` the members' manifests declare (image learnwares must declare it)."""
    shapes = {tuple(yaml.safe_load(f["learnware.yaml"]).get("input", {}).get("shape") or ()) for f in files}
    shapes.discard(())
    if len(shapes) != 1:
        raise ValueError(
            f"the members declare {len(shapes)} input shapes {sorted(shapes)}: an image assembly needs one"
        )
    return list(next(iter(shapes)))


def _member_model(raw: bytes, fmt: str) -> MemberModel:
    """A member's model, checked like any upload: TorchScript through ``load_torchscript`` (no
    load-time code, allow-listed operators), ONNX through ONNX Runtime (one thread)."""
    if fmt == "onnx":
        onnx_model = load_onnx(raw)
        return lambda X32: np.asarray(onnx_model(X32), dtype=np.float64)
    module = load_torchscript(raw, "model.pt")

    def run(X32: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(X32)).double().numpy()

    return run


class PackagePredictor(RecipePredictor):
    """Predict with a package built by :func:`run` (``specs.recipe``, the client's implementation too);
    TorchScript and ONNX members run in this process: this is the user's side, on their machine,
    with the artifacts the market checked. In a published base's space its inputs are embeddings of
    ``recipe.base``'s version; a member head on its own version (``member_bases()``) takes that version's
    embeddings of the same texts as ``predict_proba(X, base_rows={package sha256: rows})``."""

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__(files, _member_model)

    @classmethod
    def from_bytes(cls, content: bytes) -> PackagePredictor:
        return cls(package_files(content))

    def _outputs(self, X: np.ndarray) -> list[np.ndarray]:
        return self.member_outputs(X)
