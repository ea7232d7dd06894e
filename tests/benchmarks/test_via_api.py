"""The benchmark's ``--via api`` plumbing on a tiny two-domain table market: a live market started
as ``make demo`` starts one (web server + Celery worker on the embedded defaults), developers
publishing and a user submitting through ``lwm_client``, the delivered packages downloaded and run
by the client; and the comparison with the in-process path, on records whose gaps are known."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.markets import developers, via_api
from benchmarks.markets import tasks as user_tasks
from benchmarks.markets.base import MarketData, split_domain

COLUMNS = ["width_cm", "weight_g", "price_eur"]


def tiny_market() -> MarketData:
    """Two domains far apart in every column; each labels by its own rule (the class names overlap,
    so the wrong learnware is wrong on about half the rows)."""
    rng = np.random.default_rng(7)
    domains = {}
    for i, (name, centre, rule) in enumerate((("shop", 0.0, 0), ("warehouse", 8.0, 1))):
        X = rng.normal(centre, 1.0, (1300, 3)) * np.array([1.0, 100.0, 10.0])
        y = np.where(X[:, rule] > np.median(X[:, rule]), "high", "low")
        domains[name] = split_domain(name, X, y, classes=["low", "high"], n_dev=300, n_user=1000, seed=i)
    return MarketData("tiny", "table", domains, COLUMNS, "a tiny two-domain table market")


@pytest.mark.integration  # a web server and a Celery worker process: ~50 s alone, ~2 min on a busy machine
def test_a_user_task_runs_through_the_live_api_and_client(tmp_path: Path, monkeypatch: Any) -> None:
    from benchmarks.markets.live_market import LiveMarket

    monkeypatch.setattr(developers, "CACHE", tmp_path / "cache")  # never the benchmark's model cache
    monkeypatch.setenv("LWM_CONFIG", str(tmp_path / "lwm" / "config.json"))
    market = tiny_market()
    task = user_tasks.make_tasks(market, quick=False)[0]  # the first single-domain user, raw units
    assert task["kind"] == "single" and task["units"] is None
    with LiveMarket(tmp_path / "live") as live:
        by_learnware, models = via_api.publish(market, live.developer)
        assert sorted(by_learnware.values()) == ["shop", "warehouse"]
        user_tasks.oracle(market, models, task)
        via_api.run(market, task, live.user, by_learnware, tmp_path / "downloads")
    own = next(iter(task["mix"]))
    assert not [k for k in task if k.endswith(("_crash", "_refused"))], task
    # Every public path identifies the user's own learnware first and proposes no mixture.
    for key in ("free", "lab", "rkme", "search"):
        assert task[f"{key}_order"][0] == own, key
        assert task[f"{key}_mixture"] == set(), key
    # The label-free package of a single-domain user is the own learnware: the accuracy the client's
    # predictor reached on the 200 rows equals the developer's model's own, computed here independently.
    assert task["own_acc"] > 0.8
    assert task["free_acc"] == pytest.approx(task["own_acc"], abs=0.01)
    assert task["rkme_acc"] == pytest.approx(task["own_acc"], abs=0.01)
    assert 0.5 <= task["lab_acc"] <= 1.0 and task["evaluate"].get("verdicts")


def _record(**fields: Any) -> dict[str, Any]:
    base = {"kind": "single", "mix": {"a": 1.0}, "units": None, "user": 0, "y": np.zeros(200)}
    for key in ("free", "lab"):
        base |= {
            f"{key}_order": ["a", "b"],
            f"{key}_mixture": set(),
            f"{key}_acc": 0.9,
            f"{key}_method": "single",
        }
    return base | {"evaluate": {"verdicts": {"from_scratch": "better"}}} | fields


def test_compare_reports_every_gap_between_the_api_and_the_in_process_path() -> None:
    api = [
        _record(
            rkme_order=["a", "b"], rkme_acc=0.9, search_order=["a"], search_mixture=set(), rkme_mixture=set()
        ),
        _record(user=1, free_acc=0.7, lab_order=["b", "a"], rkme_order=["b"], rkme_acc=0.5),
    ]
    crashed = _record(user=1, lab_crash="InvalidDataError: y must hold 2 classes")
    local = [_record(), {k: v for k, v in crashed.items() if k not in ("lab_order", "lab_acc", "lab_method")}]
    text = "\n".join(via_api.compare("m", api, local))
    assert "free  ranking identical 2/2  top-1 identical 2/2  mixture identical 2/2" in text
    # free accuracy: gaps 0.0 and 0.7 - 0.9 = -0.2
    assert "mean -0.100, max |gap| 0.200 (n=2)" in text
    # lab: the second in-process task crashed, so one pair is compared; the crash is named
    assert "lab   ranking identical 1/1" in text and "(n=1)" in text
    assert "refusal/crash differs: API None / in-process 'InvalidDataError" in text
    assert "verdicts identical 2/2" in text
    # RKME-only vs rows: top-1 agrees on the first user only; accuracy gaps 0.0 and 0.5 - 0.7
    assert "top-1 identical 1/2" in text and "mean -0.100, max |gap| 0.200" in text
    assert "search_by_data (same client RKME) top-1 = RKME submission's top-1 1/1" in text
