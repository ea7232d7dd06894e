"""The reuse stages for LoRA adapters on one base model (``requirements.kind = "adapter"``).

* rank: every candidate adapter runs on the base over the labelled texts; the mean-pooled
  hidden state of each of the base's layers is kept and scored by layer aggregation
  (``specs.transferability.score_layers``: LogME, regularised H-score and 3-NN on the mean
  of the layers), then combined with the MMD score as for models.
* assemble: the best single adapter, LoRA weighted sum, TIES and Arrow routing over the
  members (``requirements.negate`` subtracts adapters: LoRA negation). With labels each
  method's embeddings get a logistic-regression head fitted on the fit rows and are scored
  on the validation rows; without labels the choice follows identification (Arrow over a
  mixture, else the best single adapter).
* evaluate: every method and the baselines on the held-out rows.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import numpy as np

from marketplace.core.exceptions import ValidationFailed
from marketplace.submissions.choices import METHOD_ORDER
from specs.adapter_runtime import ADAPTER_BASE, head_proba
from specs.assembly import ArrowRouter, LoRAAdapter, lora_negate, lora_ties, lora_weighted_sum
from specs.evaluation import VERDICT_WORDS, paired_verdict, proportion_interval
from specs.logistic import SoftmaxRegression, fit_softmax_regression
from specs.serialization import arrays_to_bytes
from specs.transferability import combine_scores, score_layers
from workers.base import Report
from workers.pipelines import reuse_methods as methods
from workers.pipelines.reuse_context import ReuseContext
from workers.pipelines.reuse_members import Member
from workers.pipelines.reuse_results import (
    AdapterAssembleResult,
    AdapterEvaluateResult,
    AdapterRankResult,
    Json,
    RankSkipped,
)
from workers.pipelines.reuse_scratch import scratch_fit, scratch_models, scratch_predict
from workers.pipelines.reuse_shared import (
    RANK_MEANING,
    candidate_ids,
    context_members,
    identified_mmd2,
    max_modules,
    prior_weights,
    safe_scores,
)
from workers.pipelines.reuse_text import LayerCache, adapter_from_files, embedding

WEIGHTS = {"logme": 0.5, "knn": 0.5, "hscore": 0.0, "neg_mmd2": 0.5}
ADAPTER_METHODS = ("best_single", "lora_weighted_sum", "lora_ties", "arrow_routing")
TIES_DENSITY = 0.2
HEAD_C = 10.0  # unit-norm embeddings: a weaker penalty than sklearn's C=1 suits their small scale
METHOD_MEANING = {
    "best_single": "the one adapter whose embeddings a head separates best on your fit rows",
    "lora_weighted_sum": "one adapter: the weighted sum of the members' LoRA updates (negated adapters "
    "subtracted)",
    "lora_ties": "one adapter: TIES merge (trim to the largest 20 % per adapter, elect signs, average the "
    "agreeing)",
    "arrow_routing": "each token of each layer goes to the adapter whose top singular direction it aligns "
    "with most",
}


# --- adapters and their states ------------------------------------------------------------------
def layer_cache(ctx: ReuseContext) -> LayerCache:
    """The run's layer states: on the MiniLM, or on the published base whose space the run is in."""
    if ctx.cache.layers is None:
        ctx.cache.layers = LayerCache(ctx.base)
    return ctx.cache.layers


def pooling(ctx: ReuseContext) -> str:
    """How the run's base pools token states: the MiniLM's mean, or the published base's declared one."""
    base = layer_cache(ctx).base
    return base.pooling if base is not None else "mean"


def frozen_features(ctx: ReuseContext, texts: list[str]) -> tuple[np.ndarray, str]:
    """The from-scratch baseline's rows: the base's own embeddings of ``texts`` (no adapter), and its name."""
    base = layer_cache(ctx).base
    if base is None:
        assert ctx.labelled_table is not None
        return ctx.labelled_table.X, "frozen MiniLM"
    return embedding(layers(ctx, "base", None, texts)), f"frozen {base.name} v{base.version}"


def base_key(ctx: ReuseContext) -> str:
    """The registry key of the run's base model (the MiniLM's, or the published base's)."""
    base = layer_cache(ctx).base
    return base.key if base is not None else ADAPTER_BASE


def adapters(ctx: ReuseContext, members: list[Member]) -> list[LoRAAdapter]:
    _, cache = context_members(ctx, [m.version_id for m in members])
    store = ctx.cache.adapters
    for m in members:
        if m.version_id not in store:
            store[m.version_id] = adapter_from_files(
                cache.files(m), base_model_key=base_key(ctx), name=m.name
            )
    return [store[m.version_id] for m in members]


def layers(
    ctx: ReuseContext, key: str, model: LoRAAdapter | ArrowRouter | None, texts: list[str]
) -> list[np.ndarray]:
    return layer_cache(ctx).states(key, texts, model)


def labelled(ctx: ReuseContext) -> tuple[list[str], np.ndarray]:
    texts = ctx.labelled_texts
    assert texts is not None and texts.y is not None
    return texts.texts, texts.y.astype(str)


# --- rank ------------------------------------------------------------------------------------------
def rank(ctx: ReuseContext, report: Report) -> AdapterRankResult:
    """Layer-aggregated transferability of each candidate adapter on the labelled texts."""
    ids = candidate_ids(ctx)
    members, _ = context_members(ctx, ids)
    texts, y = labelled(ctx)
    mmd = identified_mmd2(ctx)
    rows = []
    for i, (member, adapter) in enumerate(zip(members, adapters(ctx, members), strict=True)):
        report("rank", i, len(members), f"hidden states of {member.name} v{member.number}")
        states = layers(ctx, f"v{member.version_id}", adapter, texts)
        scores = _layer_scores(states, y)
        rows.append(
            {
                **member.card(),
                "mmd2": mmd.get(member.version_id),
                "scores": scores,
                "layers": len(states),
                "aggregation": "mean",
                "pooling": pooling(ctx),
            }
        )
    table = {
        name: np.array([np.nan if r["scores"][name] is None else r["scores"][name] for r in rows])
        for name in ("logme", "hscore", "knn")
    }
    table["neg_mmd2"] = np.array([np.nan if r["mmd2"] is None else -r["mmd2"] for r in rows])
    combined = combine_scores(table, WEIGHTS)
    order = np.argsort(-np.nan_to_num(combined, nan=-1.0), kind="stable")
    for r, i in enumerate(order, start=1):
        rows[i]["combined"], rows[i]["rank"] = float(combined[i]), r
        rows[i]["scores"]["mmd2"] = rows[i]["mmd2"]
    return AdapterRankResult(
        skipped=False,
        kind="adapter",
        classes=sorted(set(y.tolist())),
        candidates=[rows[i] for i in order],
        weights=WEIGHTS,
        meaning=RANK_MEANING,
        explanation=f"each adapter's {rows[0]['layers'] if rows else 0} layers {pooling(ctx)}-pooled over "
        "tokens, "
        "averaged "
        f"over layers and scored; scores rank-normalised over the candidates, averaged with {WEIGHTS}",
    )


def _layer_scores(states: list[np.ndarray], y: np.ndarray) -> dict[str, float | None]:
    """Layer-mean score per estimator; None where it is undefined (JSON has no NaN)."""
    out = safe_scores(
        {name: functools.partial(_layer_score, states, y, name) for name in ("logme", "hscore", "knn")}
    )
    return {k: v if v is not None and np.isfinite(v) else None for k, v in out.items()}


def _layer_score(states: list[np.ndarray], y: np.ndarray, name: str) -> float:
    return score_layers(states, y, estimator=name, aggregation="mean").score


# --- assemble --------------------------------------------------------------------------------------
def _negated(ctx: ReuseContext) -> list[int]:
    """Version ids of the adapters ``requirements.negate`` names (learnware ids among the candidates)."""
    wanted = [int(i) for i in ctx.requirements.get("negate", [])]
    by_learnware = {s["learnware_id"]: s["version_id"] for s in ctx.identify_result.singles}
    missing = [i for i in wanted if i not in by_learnware]
    if missing:
        raise ValidationFailed(
            f"requirements.negate: learnwares {missing} are not adapter candidates for your data",
            code="submission:user:unknown-learnware",
            details={"requirements.negate": [f"not candidates: {missing}"]},
        )
    return [by_learnware[i] for i in wanted]


def build(method: str, library: list[LoRAAdapter], weights: np.ndarray, negated: list[LoRAAdapter]) -> Any:
    """A LoRAAdapter (single, sum, TIES) or an ArrowRouter over ``library``."""
    if method == "best_single":
        return library[0]
    if method == "arrow_routing":
        return ArrowRouter(top_k=1).fit(library)
    neg = [lora_negate(a) for a in negated]
    scale = float(np.mean(weights)) if len(weights) else 1.0
    full, w = library + neg, np.concatenate([weights, np.full(len(neg), scale)])
    if method == "lora_weighted_sum":
        return lora_weighted_sum(full, w)
    if method == "lora_ties":
        rank = sum(next(iter(a.factors.values()))[0].shape[0] for a in full)
        return lora_ties(full, w, density=TIES_DENSITY, rank=rank)
    raise ValueError(f"unknown adapter method {method!r}")


def fit_head(E: np.ndarray, y: np.ndarray) -> SoftmaxRegression:
    return fit_softmax_regression(E, y, C=HEAD_C, max_iter=2000)


def head_bytes(head: SoftmaxRegression) -> bytes:
    return arrays_to_bytes(
        {"format": "lwm-head", "version": 1, "classes": [str(c) for c in head.classes]},
        {"coef": head.coef.astype(np.float64), "intercept": head.intercept.astype(np.float64)},
    )


def member_ids(ctx: ReuseContext) -> list[int]:
    limit = max_modules(ctx)
    rank_result, mixture = ctx.rank_result, ctx.identify_result.mixture
    if not isinstance(rank_result, RankSkipped):
        return [c["version_id"] for c in rank_result.candidates][:limit]
    if mixture["proposed"]:
        return [c["version_id"] for c in mixture["components"]][:limit]
    return candidate_ids(ctx)[:limit]


def method_embeddings(ctx: ReuseContext, method: str, model: Any, texts: list[str]) -> np.ndarray:
    key = f"{method}:{hashlib.sha256(model.to_bytes()).hexdigest()}"
    return embedding(layers(ctx, key, model, texts))


def assemble(ctx: ReuseContext, report: Report) -> AdapterAssembleResult:
    """Fit every adapter method; choose by validation accuracy of a head, or by identification."""
    negated_ids = _negated(ctx)
    ids = [i for i in member_ids(ctx) if i not in negated_ids]
    if not ids:
        raise ValidationFailed(
            "requirements.negate: every candidate adapter is negated; nothing is left to add",
            code="submission:user:no-candidates",
            details={"requirements.negate": ["negates every candidate"]},
        )
    members, _ = context_members(ctx, ids + negated_ids)
    library, negated = adapters(ctx, members[: len(ids)]), adapters(ctx, members[len(ids) :])
    prior = prior_weights(ctx, ids)
    # With one member (or no mixture) the sum is that adapter scaled by 1: weights sum to 1 over members.
    weights = prior if ctx.identify_result.mixture["proposed"] else np.full(len(ids), 1.0 / len(ids))
    allowed = ctx.requirements.get("methods")
    names = [
        m
        for m in ADAPTER_METHODS
        if (len(library) >= 2 or m in ("best_single", "lora_weighted_sum")) and (not allowed or m in allowed)
    ] or ["best_single"]
    has_labels = ctx.labelled_texts is not None
    if has_labels:
        texts, y = labelled(ctx)
        fit, val = ctx.splits["fit"], ctx.splits["val"]
    rows = []
    for i, name in enumerate(names):
        report("assemble", i, len(names), f"building {name}")
        model = build(name, library, weights, negated)
        row: dict[str, Any] = {
            "method": name,
            "meaning": METHOD_MEANING[name],
            "validation": None,
            "artifact": ctx.work_save(f"adapter-{name}.lwa", model.to_bytes()),
            "parameters": {"weights": [round(float(w), 6) for w in weights], "negated": len(negated)},
        }
        if has_labels:
            E = method_embeddings(ctx, name, model, texts)
            head = fit_head(E[fit], y[fit])
            row["head"] = ctx.work_save(f"head-{name}.lwa", head_bytes(head))
            row["validation"] = {"accuracy": float(np.mean(head.predict(E[val]) == y[val]))}
        rows.append(row)
    chosen, reason = _choose(ctx, rows)
    return AdapterAssembleResult(
        kind="adapter",
        members=[{**m.card(), "prior_weight": float(p)} for m, p in zip(members, prior, strict=False)],
        negated=[m.card() for m in members[len(ids) :]],
        classes=sorted(set(y.tolist())) if has_labels else None,
        split={k: int(v.shape[0]) for k, v in ctx.splits.items()} if has_labels else None,
        methods=rows,
        chosen=chosen,
        reason=reason,
    )


def _choose(ctx: ReuseContext, rows: list[Json]) -> tuple[str, str]:
    names = [r["method"] for r in rows]
    if ctx.labelled_texts is None:
        if ctx.identify_result.mixture["proposed"] and "arrow_routing" in names:
            return (
                "arrow_routing",
                "no labels: a mixture was identified, so tokens are routed among its adapters (Arrow)",
            )
        return names[0], "no labels: the adapter(s) identified by MMD, without training"
    best = max(rows, key=lambda r: (r["validation"]["accuracy"], -METHOD_ORDER.index(r["method"])))
    return best["method"], (
        f"highest validation accuracy of a logistic head on its embeddings "
        f"({best['validation']['accuracy']:.4g} on {len(ctx.splits['val'])} texts); ties go to the simpler "
        "method"
    )


def load_model(method: str, raw: bytes) -> Any:
    """Inverse of ``to_bytes``: the Arrow router, or one LoRA adapter for every other method."""
    return ArrowRouter.from_bytes(raw) if method == "arrow_routing" else LoRAAdapter.from_bytes(raw)


# --- evaluate ----------------------------------------------------------------------------------------
def evaluate(ctx: ReuseContext, report: Report) -> AdapterEvaluateResult:
    """Every method's head on the held-out texts, beside the best single adapter and from-scratch heads."""
    assemble_result = ctx.assemble_result
    assert isinstance(assemble_result, AdapterAssembleResult) and assemble_result.classes is not None
    texts, y = labelled(ctx)
    classes = assemble_result.classes
    codes = np.array([classes.index(v) for v in y])
    test, train = ctx.splits["test"], np.sort(np.concatenate([ctx.splits["fit"], ctx.splits["val"]]))
    scores, embeddings, correct = {}, {}, {}
    for i, row in enumerate(assemble_result.methods):
        report("evaluate", i, len(assemble_result.methods) + 1, f"testing {row['method']}")
        E = embeddings[row["method"]] = method_embeddings(
            ctx, row["method"], load_model(row["method"], ctx.work_load(row["artifact"]["file"])), texts
        )
        proba = head_proba(ctx.work_load(row["head"]["file"]), E[test], classes)
        scores[row["method"]] = methods.score("classification", codes[test], proba)
        correct[row["method"]] = (proba.argmax(axis=1) == codes[test]).astype(np.float64)
    # The best single adapter: chosen on the rows the assembly could use, with its head refitted on them.
    members, _ = context_members(ctx, [m["version_id"] for m in assemble_result.members])
    singles = []
    for m, adapter in zip(members, adapters(ctx, members), strict=True):
        E = embedding(layers(ctx, f"v{m.version_id}", adapter, texts))
        head = fit_head(E[train], y[train])
        hits = (head.predict(E[test]) == y[test]).astype(np.float64)
        singles.append((float(np.mean(head.predict(E[train]) == y[train])), float(hits.mean()), m, hits))
    best = max(singles, key=lambda s: s[0])
    single = {**best[2].card(), "score": best[1]}
    X, features = frozen_features(ctx, texts)
    scratch, scratch_hits = {}, {}
    for name, template in scratch_models("classification", ctx.seed).items():
        proba = scratch_predict(
            scratch_fit(template, X[train], codes[train], "classification"),
            X[test],
            "classification",
            len(classes),
        )
        scratch[name] = methods.score("classification", codes[test], proba)
        scratch_hits[name] = (proba.argmax(axis=1) == codes[test]).astype(np.float64)
    scratch_name = max(scratch, key=lambda k: scratch[k]["accuracy"])
    chosen = assemble_result.chosen
    # One hold-out split: each comparison is a paired t test on the test texts' correctness.
    pairs = {"best_single": best[3], "from_scratch": scratch_hits[scratch_name]}
    verdicts = {k: paired_verdict(correct[chosen], v, 0.0)[0] for k, v in pairs.items()}
    n = int(test.shape[0])
    interval = {
        name: {"mean": float(v.mean()), "ci95": proportion_interval(int(v.sum()), n), "n": n}
        for name, v in {**correct, **pairs}.items()
    }
    statement = (
        f"On {n} held-out texts the assembled module ({chosen}) scored accuracy "
        f"{scores[chosen]['accuracy']:.4f}; "
        f"the best single adapter ({single['name']}) {single['score']:.4f}; the best head trained from "
        "scratch on "
        f"{features} embeddings ({scratch_name}) {scratch[scratch_name]['accuracy']:.4f}. It is "
        f"{VERDICT_WORDS[verdicts['best_single']]} the best single adapter and "
        f"{VERDICT_WORDS[verdicts['from_scratch']]} the model trained from scratch."
    )
    return AdapterEvaluateResult(
        labelled=True,
        metric="accuracy",
        n_test=n,
        n_train=int(train.shape[0]),
        methods=scores,
        chosen=chosen,
        chosen_score=scores[chosen]["accuracy"],
        winner={"kind": "assembly", "method": chosen, "name": chosen},
        scores=interval,
        verdicts=verdicts,
        baselines={
            "best_single": single,
            "from_scratch": {"best": scratch_name, "models": scratch, "features": f"{features} embeddings"},
        },
        verdict={
            "beats_best_single": verdicts["best_single"] == "better",
            "beats_from_scratch": verdicts["from_scratch"] == "better",
            "beats_both": verdicts["best_single"] == verdicts["from_scratch"] == "better",
        },
        statement=statement,
    )
