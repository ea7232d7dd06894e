"""The demo's example tasks: chosen from measured figures by demo/tasks.py's rule, drawn as the
benchmark (benchmarks/demo_tasks.py) drew its users, and the committed demo/tasks.json holds what the
rule and the seeder need."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy import stats

from demo import datasets, tasks
from demo.datasets import Domain
from demo.seed import task_title


def candidate(cid, domains, labels, gain, delivered=0.9, mixture=None):
    low, high = gain
    c = {
        "id": cid,
        "domains": domains,
        "labels": labels,
        "rows": 200,
        "upload": "rows",
        "delivered": {"value": delivered, "low": delivered - 0.02, "high": delivered + 0.02, "n": 8},
        "scratch": {"value": 0.8, "low": 0.78, "high": 0.82, "n": 8},
        "gain": {"value": (low + high) / 2, "low": low, "high": high, "n": 8},
        "verdict": tasks.verdict(low, high),
    }
    if mixture is not None:
        c["mixture_found"] = {"value": mixture, "low": 0.0, "high": 1.0}
    return c


def synthetic():
    return {
        "candidates": [
            candidate("a-0", ["a"], 0, (0.05, 0.15)),
            candidate("a-30", ["a"], 30, (0.08, 0.10)),
            candidate("a-300", ["a"], 300, (-0.01, 0.01)),
            candidate("b-300", ["b"], 300, (-0.03, -0.01)),
            candidate("b-50", ["b"], 50, (-0.01, 0.20)),  # a large mean, but not measurably better
            candidate("ab-0", ["a", "b"], 0, (0.01, 0.03), mixture=0.5),
            candidate("ab-50", ["a", "b"], 50, (0.00, 0.02), mixture=0.75),
            candidate("c-500", ["c"], 500, (0.01, 0.04)),  # many labels but better: never the honest one
        ]
    }


def picks(doc):
    return {c.slot: c.candidate["id"] for c in tasks.choose(doc)}


def test_the_rule_picks_by_the_measured_figures():
    assert picks(synthetic()) == {
        "no labels": "a-0",
        "few labels": "a-30",
        "mixture": "ab-50",
        "honest": "b-300",
    }
    assert [c.slot for c in tasks.choose(synthetic())] == list(tasks.SLOTS)
    chosen = {c.slot: c for c in tasks.choose(synthetic())}
    assert "+0.09 [+0.08, +0.10] over 8 users: better" in chosen["few labels"].why
    assert "from scratch 0.80" in chosen["few labels"].why
    assert "vs the most frequent class 0.80" in chosen["no labels"].why
    assert "75%" in chosen["mixture"].why and chosen["honest"].why.endswith("over 8 users: worse")


def test_changing_a_figure_changes_the_pick():
    doc = synthetic()
    doc["candidates"][4]["gain"]["low"] = 0.09  # b-50's lower bound now beats a-30's
    assert picks(doc)["few labels"] == "b-50"
    doc = synthetic()
    doc["candidates"][5]["gain"]["low"] = 0.2  # ab-0 now beats a-0 without labels
    assert picks(doc)["no labels"] == "ab-0"
    doc = synthetic()
    doc["candidates"][5]["mixture_found"]["value"] = 0.9
    assert picks(doc)["mixture"] == "ab-0"
    doc = synthetic()
    doc["candidates"][3]["gain"]["high"] = 0.02  # b-300 no longer has the smallest upper bound
    assert picks(doc)["honest"] == "a-300"


def test_a_slot_stays_empty_when_nothing_qualifies():
    doc = synthetic()
    for c in doc["candidates"]:
        c["gain"].update(low=-0.01, high=0.01)
        c["verdict"] = tasks.verdict(-0.01, 0.01)
        c.pop("mixture_found", None)
    chosen = picks(doc)
    assert (
        "point" not in chosen and "mixture" not in chosen and chosen["honest"] in {"a-300", "b-300", "c-500"}
    )


def test_a_candidate_fills_one_slot_only():
    doc = {"candidates": [candidate("ab-30", ["a", "b"], 30, (0.05, 0.1), mixture=1.0)]}
    assert picks(doc) == {"few labels": "ab-30"}


def test_verdict_is_three_way():
    assert [tasks.verdict(*g) for g in ((0.01, 0.2), (-0.1, 0.1), (-0.2, -0.01))] == list(tasks.VERDICTS)


def domain(name, n_user, offset):
    X_user = np.arange(n_user, dtype=float)[:, None] + offset
    return Domain(
        name=name,
        family="t",
        modality="table",
        task="classification",
        description="",
        tags=[],
        license="MIT",
        X_dev=-np.ones((5, 1)),
        y_dev=np.zeros(5, int),
        X_user=X_user,
        y_user=(np.arange(n_user) % 2).astype(np.int64),
        classes=["no", "yes"],
    )


def test_draw_user_is_seeded_disjoint_and_from_user_rows_in_equal_shares():
    a, b = domain("a", 400, 0), domain("b", 400, 1000)
    X, y, X_l, y_l = tasks.draw_user([a, b], 31, seed=3, n_rows=200)
    assert X.shape == (200, 1) and X_l.shape == (31, 1) and set(y) | set(y_l) <= {"no", "yes"}
    assert np.sum(X[:, 0] >= 1000) == 100 and np.sum(X_l[:, 0] >= 1000) == 15  # 16 + 15 labelled
    rows = np.concatenate([X[:, 0], X_l[:, 0]])
    assert len(set(rows)) == len(rows) and rows.min() >= 0  # no developer row (-1), none twice
    # each label is the row's own: y_user = row index % 2
    assert all(("yes" if int(v) % 1000 % 2 else "no") == lab for v, lab in zip(rows, [*y, *y_l], strict=True))
    again = tasks.draw_user([a, b], 31, seed=3, n_rows=200)
    assert all(np.array_equal(p, q) for p, q in zip((X, y, X_l, y_l), again, strict=True))
    assert not np.array_equal(X, tasks.draw_user([a, b], 31, seed=4, n_rows=200)[0])
    assert tasks.draw_user([a], 0, seed=0)[2].shape == (0, 1)


def test_task_title_names_the_sources_and_labels():
    assert (
        task_title({"domains": ["flights-delay-carrier-ua", "flights-delay-origin-jfk"], "labels": 30})
        == "flights of carrier UA + origin JFK, 30 labels"
    )
    assert (
        task_title({"domains": ["flights-delay-carrier-mq"], "labels": 0})
        == "flights of carrier MQ, no labels"
    )


@pytest.fixture(scope="module")
def committed():
    return tasks.load()


def test_committed_file_schema_and_intervals(committed):
    assert committed["command"].startswith("nice -n 10 .venv/bin/python benchmarks/demo_tasks.py")
    assert committed["candidates"]
    for c in committed["candidates"]:
        assert {"id", "domains", "labels", "rows", "delivered", "scratch", "gain", "verdict", "users"} <= set(
            c
        )
        users = [u for u in c["users"] if u["delivered"] is not None]
        gains = np.array([u["delivered"] - u["scratch"] for u in users])
        assert c["gain"]["n"] == len(users) == committed["users_per_candidate"] - c["failures"]
        # independently: the paired mean and its Student-t 95 % interval over users
        low, high = stats.t.interval(0.95, len(gains) - 1, loc=gains.mean(), scale=stats.sem(gains))
        if gains.std() == 0:
            low = high = gains.mean()
        assert c["gain"]["value"] == pytest.approx(gains.mean(), abs=1e-4)
        assert (c["gain"]["low"], c["gain"]["high"]) == pytest.approx((low, high), abs=1e-4)
        assert c["verdict"] == tasks.verdict(c["gain"]["low"], c["gain"]["high"])
        if len(c["domains"]) == 2:
            found = sum(set(c["domains"]) <= set(u["mixture"]) for u in users) / len(users)
            assert c["mixture_found"]["value"] == pytest.approx(found)


def test_committed_picks_exist_in_the_catalogue(committed):
    names = {d.name for d in datasets.flights()}
    chosen = tasks.choose(committed)
    assert {c.slot for c in chosen} >= {"no labels", "few labels", "honest"}
    for choice in chosen:
        assert set(choice.candidate["domains"]) <= names
    honest = next(c for c in chosen if c.slot == "honest").candidate
    assert honest["labels"] >= tasks.MANY_LABELS and honest["verdict"] != "better"
    few = next(c for c in chosen if c.slot == "few labels").candidate
    assert 0 < few["labels"] <= tasks.FEW_LABELS and few["gain"]["low"] > 0
    assert next(c for c in chosen if c.slot == "no labels").candidate["labels"] == 0


def test_changing_the_committed_figures_changes_the_pick(committed):
    doc = copy.deepcopy(committed)
    few = next(c for c in tasks.choose(doc) if c.slot == "few labels").candidate["id"]
    for c in doc["candidates"]:
        if c["id"] == few:
            c["gain"]["low"] = -1.0
    assert next((c.candidate["id"] for c in tasks.choose(doc) if c.slot == "few labels"), None) != few
