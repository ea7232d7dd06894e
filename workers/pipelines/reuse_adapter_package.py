"""Stage ``package`` for adapters, and a predictor for what it builds.

* A single LoRA (best single, weighted sum, TIES, negation) becomes a published-learnware
  adapter package (docs/package-format.md): ``learnware.yaml`` (``kind: adapter``,
  ``modality: text``, ``task: embedding``, ``base_model``), ``adapter_config.json`` and
  ``adapter_model.safetensors`` in PEFT's layout (scaling folded into B, ``lora_alpha = r``;
  modules of lower rank are padded with zero factors so one ``r`` fits all), ``rkme.json``
  (the user's texts in the run's space), plus ``recipe.json`` (members, sha256s, licences,
  evaluation) and, with labels, ``head.lwa`` (the logistic head over its embeddings). On a published
  base the manifest's ``base_model`` is that base's key, ``output.dim`` its width, and the recipe's
  ``base`` records the version the run used, its package sha256 and its folder digest.
  The publish pipeline accepts it as it is (tested).
* Arrow routing is not one LoRA, and the package format has no kind for a routed library:
  its package is an assembly recipe (``kind: model``, ``artifact: {format: assembly}``, as
  for table assemblies) with each member's PEFT files byte for byte under ``members/<i>/``
  and the router in ``assembly.lwa``. It is predictable with :class:`AdapterPackagePredictor`
  but not publishable as it is.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import yaml

from marketplace.submissions.services import submission_package_save
from specs.adapter_runtime import ADAPTER_BASE, AdapterRecipePredictor
from specs.assembly import ArrowRouter, LoRAAdapter
from specs.recipe import RECIPE_FORMAT, recipe_version
from workers.base import Report
from workers.pipelines.reuse_adapters import layer_cache, load_model
from workers.pipelines.reuse_base import PublishedBase
from workers.pipelines.reuse_context import ReuseContext
from workers.pipelines.reuse_members import ADAPTER_CONFIG, ADAPTER_WEIGHTS, Member
from workers.pipelines.reuse_results import AdapterAssembleResult, AdapterPackageResult, Json
from workers.pipelines.reuse_shared import (
    context_members,
    deterministic_zip,
    license_expression,
    sha256_hex,
)
from workers.pipelines.reuse_text import base_model

PEFT_BASE_NAME = "sentence-transformers/all-MiniLM-L6-v2"
TEXT_DIM = 384


def peft_files(adapter: LoRAAdapter, base_name: str = PEFT_BASE_NAME) -> dict[str, bytes]:
    """``adapter_config.json`` + ``adapter_model.safetensors`` of one LoRA, loadable by PEFT on its base."""
    from safetensors.numpy import save

    r = max(A.shape[0] for A, _ in adapter.factors.values())
    tensors = {}
    for module, (A, B) in sorted(_scaled(adapter).items()):
        pad = r - A.shape[0]  # zero factors add nothing to dW
        tensors[f"{module}.lora_A.weight"] = np.vstack([A, np.zeros((pad, A.shape[1]))]).astype(np.float32)
        tensors[f"{module}.lora_B.weight"] = np.hstack([B, np.zeros((B.shape[0], pad))]).astype(np.float32)
    targets = sorted({m.rsplit(".", 1)[-1] for m in adapter.factors})
    config = {
        "peft_type": "LORA",
        "task_type": "FEATURE_EXTRACTION",
        "base_model_name_or_path": base_name,
        "r": r,
        "lora_alpha": r,
        "lora_dropout": 0.0,
        "target_modules": targets,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
    }
    return {ADAPTER_CONFIG: json.dumps(config, sort_keys=True).encode(), ADAPTER_WEIGHTS: save(tensors)}


def _scaled(adapter: LoRAAdapter) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {m: (A, adapter.scaling[m] * B) for m, (A, B) in adapter.factors.items()}


def run(ctx: ReuseContext, report: Report) -> AdapterPackageResult:
    """Build the package of the chosen adapter method and store it with the submission."""
    assemble = ctx.assemble_result
    assert isinstance(assemble, AdapterAssembleResult)
    chosen = next(r for r in assemble.methods if r["method"] == assemble.chosen)
    members, cache = context_members(ctx, [m["version_id"] for m in assemble.members + assemble.negated])
    model = load_model(chosen["method"], ctx.work_load(chosen["artifact"]["file"]))
    base = layer_cache(ctx).base  # None: the MiniLM
    files: dict[str, bytes] = {"rkme.json": ctx.work_load(ctx.spec_result.rkme_file["file"])}
    entries: list[Json] = []
    for i, m in enumerate(members):
        own = cache.files(m)
        entry: Json = {
            **m.card(),
            "package_sha256": m.sha256,
            "negated": i >= len(assemble.members),
            "artifact": {"format": "peft_lora", "sha256": sha256_hex(own[ADAPTER_WEIGHTS])},
        }
        if isinstance(model, ArrowRouter):
            for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
                files[f"members/{i}/{name}"] = own[name]
            entry["artifact"]["path"] = f"members/{i}/{ADAPTER_WEIGHTS}"
        entries.append(entry)
    if isinstance(model, ArrowRouter):
        files["assembly.lwa"] = model.to_bytes()
    else:
        files.update(peft_files(model) if base is None else peft_files(model, base.key))
    if chosen.get("head"):
        files["head.lwa"] = ctx.work_load(chosen["head"]["file"])
    evaluation = ctx.results["evaluate"]
    recipe = {
        "format": RECIPE_FORMAT,
        "version": recipe_version(entries),
        "method": chosen["method"],
        "task": ctx.submission.task,
        "classes": assemble.classes,
        "feature_space": ctx.space.key,
        "base_model": ADAPTER_BASE if base is None else base.key,
        # A published base: the exact version, package and folder a client must fetch to run this.
        "base": None if base is None else base.card(),
        "assembly": {
            "path": "assembly.lwa" if isinstance(model, ArrowRouter) else ADAPTER_WEIGHTS,
            "kind": chosen["method"],
        },
        "head": {"path": "head.lwa", "sha256": sha256_hex(files["head.lwa"])}
        if "head.lwa" in files
        else None,
        "members": entries,
        "licenses": sorted({m.license for m in members}),
        "evaluation": {"verdict": evaluation.get("verdict"), "statement": evaluation.get("statement")},
    }
    recipe["assembly"]["sha256"] = sha256_hex(files[recipe["assembly"]["path"]])
    files["recipe.json"] = json.dumps(recipe, indent=2, sort_keys=True).encode()
    files["learnware.yaml"] = yaml.safe_dump(
        _manifest(ctx, chosen["method"], members, evaluation, model, base), sort_keys=True
    ).encode()
    content = deterministic_zip(files)
    report("package", 1, 1, f"package of {len(content)} bytes")
    submission_package_save(submission_id=ctx.submission.id, content=content, filename="package.zip")
    return AdapterPackageResult(
        sha256=sha256_hex(content),
        size=len(content),
        files=sorted(files),
        license=license_expression([m.license for m in members]),
        method=chosen["method"],
        kind="adapter" if not isinstance(model, ArrowRouter) else "assembly",
        members=[{"version_id": e["version_id"], "sha256": e["package_sha256"]} for e in entries],
    )


def _manifest(
    ctx: ReuseContext,
    method: str,
    members: list[Member],
    evaluation: Json,
    model: LoRAAdapter | ArrowRouter,
    base: PublishedBase | None,
) -> Json:
    on = "all-MiniLM-L6-v2" if base is None else f"{base.name} v{base.version}"
    base_model, dim = (ADAPTER_BASE, TEXT_DIM) if base is None else (base.key, base.dim)
    description = f"{method} over {len(members)} LoRA adapters on {on}: " + ", ".join(
        f"{m.name} v{m.number}" for m in members
    )
    common = {
        "name": f"assembly-{ctx.stored_key('evaluate')[:12]}",
        "description": description,
        "modality": "text",
        "license": license_expression([m.license for m in members]),
        "tags": ["assembly", method],
    }
    if isinstance(model, ArrowRouter):
        return {
            **common,
            "kind": "model",
            "task": ctx.submission.task,
            "input": {},
            "output": {"dim": dim},
            "artifact": {"format": "assembly", "path": "recipe.json"},
            "base_model": base_model,
            "specification": "rkme.json",
        }
    return {
        **common,
        "kind": "adapter",
        "task": "embedding",
        "input": {},
        "output": {"dim": dim},
        "base_model": base_model,
    }


class AdapterPackagePredictor(AdapterRecipePredictor):
    """``specs.adapter_runtime.AdapterRecipePredictor`` on the registered MiniLM base (the client runs
    the same predictor on its own copy of the base). A package on a published base (``recipe.base``)
    is not run here: that base is an upload, which the worker runs only in the sandbox."""

    def __init__(self, files: dict[str, bytes], base: Any = None) -> None:
        published = json.loads(files["recipe.json"]).get("base")  # an upload: never run in the worker
        super().__init__(files, base if base is not None or published else base_model())
