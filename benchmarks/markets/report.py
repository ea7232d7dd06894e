"""Issue 20's table for one market: every figure with its 95 % interval over tasks, the target
beside it and PASS/FAIL (a target is judged on the point estimate; the interval says how sure)."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.markets.stats import Interval, mean_interval, proportion_interval


def _line(label: str, value: Interval, target: str, ok: bool | None, anchor: str = "") -> str:
    verdict = "n/a" if ok is None or value.n == 0 else ("PASS" if ok else "FAIL")
    return f"  {label:<58}{value.text():<30}{target:<26}{verdict:<6}{anchor}"


def _prop(flags: list[bool]) -> Interval:
    return proportion_interval(int(sum(flags)), len(flags))


def _anchor_prop(tasks: list[dict[str, Any]], fn: Any) -> str:
    vals = [fn(t) for t in tasks if "anchor_order" in t]
    return f"anchor {_prop(vals).text()}" if vals else ""


def market_table(name: str, tasks: list[dict[str, Any]]) -> list[str]:
    twins = "raw + other units" if any(t["units"] is not None for t in tasks) else "no units twin"
    out = [
        f"\n== {name}: {len({t['user'] for t in tasks})} users, {len(tasks)} tasks ({twins}), "
        f"each submitted without and with 50 labels =="
    ]
    out.append(f"  {'figure':<58}{'value [95% CI] (n)':<30}{'target':<26}{'':<6}anchor (learnware package)")
    singles = [t for t in tasks if t["kind"] == "single" and "free_order" in t]
    for units in (False, True):
        group = [t for t in singles if (t["units"] is not None) == units]
        if not group:
            continue
        top1 = _prop([t["free_order"][0] == next(iter(t["mix"])) for t in group])
        tag = "other units" if units else "raw units"
        out.append(
            _line(
                f"single-domain top-1 ({tag})",
                top1,
                ">= 0.95",
                top1.value >= 0.95,
                _anchor_prop(group, lambda t: t["anchor_order"][0] == next(iter(t["mix"]))),
            )
        )
    pairs = _paired(singles)
    if pairs:
        same = _prop([a["free_order"] == b["free_order"] for a, b in pairs])
        out.append(_line("single-domain ranking identical at other units", same, "= 1.00", same.value == 1.0))
    spurious = _prop([bool(t["free_mixture"]) for t in singles])
    out.append(
        _line(
            "spurious mixtures (single-domain users)",
            spurious,
            "<= 0.05",
            spurious.value <= 0.05,
            _anchor_prop(singles, lambda t: len(t.get("anchor_mixture", ())) > 1),
        )
    )
    mixes = [t for t in tasks if t["kind"] == "mixture" and "free_mixture" in t]
    for dist, tag in ((True, "distinguishable"), (False, "not distinguishable")):
        group = [t for t in mixes if t["distinguishable"] == dist]
        if not group:
            out.append(f"  mixture users ({tag}): none")
            continue
        found = [d in t["free_mixture"] for t in group for d in t["mix"]]
        proposed = [d in t["mix"] for t in group for d in t["free_mixture"]]
        recall, precision = _prop(found), _prop(proposed)
        a_found = [d in t["anchor_mixture"] for t in group if "anchor_mixture" in t for d in t["mix"]]
        a_prop = [d in t["mix"] for t in group if "anchor_mixture" in t for d in t["anchor_mixture"]]
        target = dist
        out.append(
            _line(
                f"mixture recall ({tag}, {len(group)} users)",
                recall,
                ">= 0.90" if target else "(reported)",
                recall.value >= 0.9 if target else None,
                f"anchor {_prop(a_found).text()}" if a_found else "",
            )
        )
        out.append(
            _line(
                f"mixture precision ({tag})",
                precision,
                ">= 0.90" if target else "(reported)",
                precision.value >= 0.9 if target else None,
                f"anchor {_prop(a_prop).text()}" if a_prop else "",
            )
        )
    # --- accuracy without labels -----------------------------------------------------------------
    free_s = [t for t in singles if "free_acc" in t]
    if free_s:
        gap = mean_interval([t["free_acc"] - t["own_acc"] for t in free_s])
        out.append(_line("no labels, single: package - own learnware", gap, ">= -0.01", gap.value >= -0.01))
    free_m = [t for t in mixes if "free_acc" in t]
    if free_m:
        acc = mean_interval([t["free_acc"] for t in free_m], bounds=(0, 1))
        out.append(_line("no labels, two-domain: package accuracy", acc, "", None))
        for key, label in (("best_member", "best member"), ("average_acc", "average of the true pair")):
            ref = mean_interval([t[key] for t in free_m], bounds=(0, 1))
            out.append(_line(f"  {label} (oracle)", ref, "", None))
        gap = mean_interval([t["free_acc"] - max(t["best_member"], t["average_acc"]) for t in free_m])
        label_free = ("anchor_acc_job_selector", "anchor_acc_averaging")  # FeatureAugment needs the labels
        anchor_best = [
            t["free_acc"] - max(t[k] for k in label_free if k in t)
            for t in free_m
            if any(k in t for k in label_free)
        ]
        out.append(
            _line("no labels, two-domain: package - max(best, average)", gap, ">= -0.01", gap.value >= -0.01)
        )
        if anchor_best:
            g = mean_interval(anchor_best)
            out.append(
                _line("no labels, two-domain: package - anchor's best reuser", g, ">= 0.00", g.value >= 0.0)
            )
            for reuser in ("job_selector", "averaging", "feature_augment"):
                vals = [t[f"anchor_acc_{reuser}"] for t in free_m if f"anchor_acc_{reuser}" in t]
                if vals:
                    out.append(
                        _line(f"  anchor {reuser} accuracy", mean_interval(vals, bounds=(0, 1)), "", None)
                    )
    # --- with 50 labels --------------------------------------------------------------------------
    both = [t for t in tasks if "lab_acc" in t and "free_acc" in t]
    if both:
        for kind in ("single", "mixture"):
            group = [t for t in both if t["kind"] == kind]
            if not group:
                continue
            d = mean_interval([t["lab_acc"] - t["free_acc"] for t in group])
            # the target: >= label-free minus its interval (per task: the interval of the label-free
            # package's accuracy on 200 rows, the binomial half-width)
            hurt = [
                t["lab_acc"]
                < t["free_acc"] - 1.96 * np.sqrt(max(t["free_acc"] * (1 - t["free_acc"]), 1e-9) / len(t["y"]))
                for t in group
            ]
            out.append(
                _line(
                    f"50 labels - label-free ({kind})",
                    d,
                    "hurt in 0 tasks",
                    not any(hurt),
                    f"hurt beyond the interval in {sum(hurt)}/{len(group)}",
                )
            )
        s = [t for t in both if "scratch_acc" in t]
        d = mean_interval([t["lab_acc"] - t["scratch_acc"] for t in s])
        out.append(_line("50 labels - from scratch (all users)", d, ">= 0.00", d.value >= 0.0))
        fa = [t for t in s if any(k.startswith("anchor_acc_feature_augment") for k in t)]
        if fa:
            out.append(
                _line(
                    "  anchor FeatureAugment - from scratch",
                    mean_interval([t["anchor_acc_feature_augment"] - t["scratch_acc"] for t in fa]),
                    "",
                    None,
                )
            )
        claims = [
            (t["evaluate"].get("verdicts", {}).get("from_scratch"), t["lab_acc"] - t["scratch_acc"])
            for t in s
        ]
        decided = [(v, d) for v, d in claims if v in ("better", "worse")]
        agree = _prop([(v == "better" and d > 0) or (v == "worse" and d < 0) for v, d in decided])
        out.append(
            _line(
                f"verdict vs scratch agrees with the 200 rows ({len(decided)}/{len(claims)} claim)",
                agree,
                ">= 0.90",
                agree.value >= 0.9 if decided else None,
            )
        )
        kinds: dict[str, int] = {}
        for t in both:
            k = (t["evaluate"].get("winner") or {}).get("kind", "?")
            kinds[k] = kinds.get(k, 0) + 1
        out.append(f"  delivered with labels: {kinds}")
    # --- units, crashes ---------------------------------------------------------------------------
    pairs_all = _paired([t for t in tasks])
    gaps = [abs(a[k] - b[k]) for a, b in pairs_all for k in ("free_acc", "lab_acc") if k in a and k in b]
    if gaps:
        g = mean_interval(gaps)
        out.append(
            _line(
                "other units: mean |accuracy gap| to raw units",
                g,
                "<= 0.01",
                g.value <= 0.01,
                f"max {max(gaps):.3f}",
            )
        )
    crashes = [t[k] for t in tasks for k in ("free_crash", "lab_crash") if k in t]
    refusals = [t[k] for t in tasks for k in ("free_refused", "lab_refused") if k in t]
    unnamed = [r for r in refusals if ":user:" not in r]
    out.append(
        f"  crashes {len(crashes)}/{2 * len(tasks)} (target 0)  refusals {len(refusals)} "
        f"(not a named user error: {len(unnamed)})  {'PASS' if not crashes and not unnamed else 'FAIL'}"
    )
    for text in sorted(set(crashes + refusals))[:6]:
        out.append(f"    {text[:200]}")
    return out


def _paired(tasks: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(raw-units task, other-units task) of the same user."""
    by_user: dict[int, dict[bool, dict[str, Any]]] = {}
    for t in tasks:
        by_user.setdefault(t["user"], {})[t["units"] is not None] = t
    return [(p[False], p[True]) for p in by_user.values() if len(p) == 2]
