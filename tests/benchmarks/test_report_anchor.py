"""The comparison table (benchmarks/markets/report.py) on records that carry the anchor's figures
(the `learnware` package's, benchmarks/anchors/learnware_run.py), in memory and after the JSON-lines
round trip of ``reuse_markets.py --report``: each anchor column against a count made here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.markets.report import market_table
from benchmarks.markets.stats import mean_interval, proportion_interval


def _records() -> list[dict[str, Any]]:
    base = {"units": None, "y": [0] * 200, "evaluate": {"verdicts": {"from_scratch": "better"}}}
    singles = [
        # the anchor ranks the own learnware first in 2 of 3 single users and proposes one mixture
        {"user": 0, "kind": "single", "mix": {"a"}, "anchor_order": ["a", "b"], "anchor_mixture": set()},
        {"user": 1, "kind": "single", "mix": {"b"}, "anchor_order": ["a", "b"], "anchor_mixture": {"a", "b"}},
        {"user": 2, "kind": "single", "mix": {"c"}, "anchor_order": ["c", "a"], "anchor_mixture": set()},
    ]
    for t, order in zip(singles, (["a", "b"], ["b", "a"], ["c", "a"]), strict=True):
        t.update(base, free_order=order, free_mixture=set(), free_acc=0.9, own_acc=0.9)
        t.update(lab_acc=0.92, scratch_acc=0.8, anchor_acc_feature_augment=0.85)
    mixes = []
    for user, (free, job, avg) in enumerate(((0.80, 0.70, 0.75), (0.70, 0.72, 0.60)), start=3):
        mixes.append(
            dict(
                base,
                user=user,
                kind="mixture",
                mix={"a", "b"},
                distinguishable=True,
                free_order=["a", "b"],
                free_mixture={"a", "b"},
                anchor_order=["a", "c"],
                anchor_mixture={"a", "c"},  # one of its two proposed members is right
                free_acc=free,
                best_member=0.6,
                average_acc=0.65,
                anchor_acc_job_selector=job,
                anchor_acc_averaging=avg,
                anchor_acc_feature_augment=0.9,
                lab_acc=0.85,
                scratch_acc=0.8,
            )
        )
    return singles + mixes


def _row(table: list[str], label: str) -> str:
    rows = [line for line in table if line.strip().startswith(label)]
    assert len(rows) == 1, (label, table)
    return rows[0]


def _check(table: list[str], tasks: list[dict[str, Any]]) -> None:
    singles = [t for t in tasks if t["kind"] == "single"]
    mixes = [t for t in tasks if t["kind"] == "mixture"]
    top1 = sum(t["anchor_order"][0] == next(iter(t["mix"])) for t in singles)
    assert _row(table, "single-domain top-1 (raw units)").endswith(
        "anchor " + proportion_interval(top1, len(singles)).text()
    )
    spurious = sum(len(t["anchor_mixture"]) > 1 for t in singles)
    assert _row(table, "spurious mixtures").endswith("anchor " + proportion_interval(spurious, 3).text())
    found = sum(d in t["anchor_mixture"] for t in mixes for d in t["mix"])
    assert _row(table, "mixture recall (distinguishable").endswith(
        "anchor " + proportion_interval(found, 4).text()
    )
    # the package minus the better of the anchor's two label-free reusers, task by task
    gaps = [t["free_acc"] - max(t["anchor_acc_job_selector"], t["anchor_acc_averaging"]) for t in mixes]
    assert gaps == pytest.approx([0.05, -0.02])
    row = _row(table, "no labels, two-domain: package - anchor's best reuser")
    assert mean_interval(gaps).text() in row and "PASS" in row
    job = mean_interval([t["anchor_acc_job_selector"] for t in mixes], bounds=(0, 1))
    assert job.text() in _row(table, "anchor job_selector accuracy")
    fa = mean_interval([t["anchor_acc_feature_augment"] - t["scratch_acc"] for t in tasks])
    assert fa.text() in _row(table, "anchor FeatureAugment - from scratch")


def test_the_table_reports_the_anchors_figures() -> None:
    tasks = _records()
    _check(market_table("toy", tasks), tasks)


def test_saved_records_with_anchor_figures_give_the_same_table(
    tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    import benchmarks.reuse_markets as rm

    tasks = _records()
    monkeypatch.setattr(rm, "RESULTS", tmp_path)
    rm.save_records("toy", tasks)
    saved = [json.loads(line) for line in (tmp_path / "toy.jsonl").read_text().splitlines()]
    assert saved[1]["anchor_mixture"] == ["a", "b"]  # a set is written as a sorted list
    rm.report_saved([str(tmp_path / "toy.jsonl")])
    printed = capsys.readouterr().out.splitlines()
    _check(printed, tasks)
    assert printed == "\n".join(market_table("toy", tasks)).splitlines()
