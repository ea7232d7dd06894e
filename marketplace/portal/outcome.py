"""What a task's results page recommends: the winner on held-out rows, and each score with its interval.

The evaluate stage reports (newer reports) ``winner`` {kind, method, name}, ``scores``
{name: {mean, ci95: [low, high], n}} and ``verdicts`` {best_single|from_scratch: better|
no_difference|worse}. Older reports have only each method's score and the two baselines'; then
the winner is the highest score among the chosen method and the baselines, shown without an
interval. The page's primary action downloads that winner: the submission's package for an
assembly or a from-scratch model, the learnware's own package for the best single learnware.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

WINNER_KINDS = ("assembly", "best_single", "from_scratch")
VERDICT_WORDS = {
    "better": "better, beyond sampling noise",
    "no_difference": "within noise: the held-out rows cannot tell them apart",
    "worse": "worse, beyond sampling noise",
}
KIND_WORDS = {
    "assembly": "the assembly",
    "best_single": "the best single learnware",
    "from_scratch": "a model trained from scratch",
}


@dataclass(frozen=True)
class ScoreRow:
    name: str
    mean: float | None
    low: float | None = None
    high: float | None = None
    n: int | None = None
    winner: bool = False

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None


@dataclass(frozen=True)
class Outcome:
    kind: str  # one of WINNER_KINDS
    method: str
    name: str
    metric: str
    scores: list[ScoreRow] = field(default_factory=list)
    verdicts: dict[str, str] = field(default_factory=dict)  # baseline -> plain words
    intervals: bool = False  # True when the report carries confidence intervals
    best_single: dict[str, Any] = field(default_factory=dict)  # the best single learnware's card

    @property
    def headline(self) -> str:
        return f"Use {KIND_WORDS[self.kind]}: {self.name}"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _reported(evaluation: dict[str, Any], winner: dict[str, Any]) -> Outcome:
    rows = []
    for name, s in (evaluation.get("scores") or {}).items():
        ci = s.get("ci95") or [None, None]
        rows.append(
            ScoreRow(
                str(name),
                s.get("mean") if _finite(s.get("mean")) else None,
                ci[0] if _finite(ci[0]) else None,
                ci[1] if _finite(ci[1]) else None,
                s.get("n"),
                winner=str(name) == str(winner.get("name")),
            )
        )
    verdicts = {k: VERDICT_WORDS.get(str(v), str(v)) for k, v in (evaluation.get("verdicts") or {}).items()}
    kind = str(winner["kind"]) if winner.get("kind") in WINNER_KINDS else "assembly"
    return Outcome(
        kind=kind,
        method=str(winner.get("method", "")),
        name=str(winner.get("name", "")),
        metric=str(evaluation.get("metric", "")),
        scores=rows,
        verdicts=verdicts,
        intervals=any(r.has_interval for r in rows),
        best_single=(evaluation.get("baselines") or {}).get("best_single") or {},
    )


def _legacy(evaluation: dict[str, Any]) -> Outcome:
    metric, chosen = evaluation.get("metric", ""), evaluation.get("chosen", "")
    single = (evaluation.get("baselines") or {}).get("best_single") or {}
    scratch = (evaluation.get("baselines") or {}).get("from_scratch") or {}
    scratch_best = scratch.get("best", "")
    candidates = [
        ("assembly", chosen, chosen, ((evaluation.get("methods") or {}).get(chosen) or {}).get(metric)),
        ("best_single", "best_single", single.get("name", "best single"), single.get("score")),
        (
            "from_scratch",
            scratch_best,
            scratch_best,
            ((scratch.get("models") or {}).get(scratch_best) or {}).get(metric),
        ),
    ]
    scored: list[tuple[str, Any, Any, Any]] = [c for c in candidates if c[1] and _finite(c[3])]
    # Higher is better for every metric the pipeline reports (accuracy, R²); ties keep the assembly.
    kind, method, name, _ = max(scored, key=lambda c: c[3]) if scored else candidates[0]
    rows = [ScoreRow(str(n), float(s), winner=(k == kind)) for k, _, n, s in scored]
    return Outcome(
        kind=kind, method=str(method), name=str(name), metric=str(metric), scores=rows, best_single=single
    )


def task_outcome(evaluation: dict[str, Any] | None) -> Outcome | None:
    """The recommendation of a labelled evaluation, or None when nothing was evaluated."""
    if not evaluation or not evaluation.get("labelled"):
        return None
    winner = evaluation.get("winner")
    if isinstance(winner, dict) and winner.get("kind"):
        return _reported(evaluation, winner)
    return _legacy(evaluation)
