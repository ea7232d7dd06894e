"""The portal's view of a model-selection result: a table and per-layer bar charts (inline SVG).

Scores of one estimator are on one scale across models (LogME is a log-evidence, H-score a
variance ratio, kNN an accuracy), so each estimator gets its own chart, bars scaled from that
estimator's lowest to highest layer score over every model.
"""

from __future__ import annotations

from typing import Any

BAR_W, GAP, HEIGHT = 14, 4, 60
MIN_BAR = 2  # the lowest layer still shows a sliver: a missing bar reads as a missing layer


def _bars(values: list[float], low: float, high: float, best: int) -> list[dict[str, Any]]:
    span = high - low
    out = []
    for i, v in enumerate(values):
        h = MIN_BAR + (HEIGHT - MIN_BAR) * ((v - low) / span if span > 0 else 1.0)
        out.append(
            {
                "x": i * (BAR_W + GAP),
                "y": round(HEIGHT - h, 2),
                "h": round(h, 2),
                "layer": i,
                "value": v,
                "best": i == best,
            }
        )
    return out


def ranking_view(rank: dict[str, Any]) -> dict[str, Any]:
    """Rows of the ranking table, and per estimator one chart per model (``bars``: x, y, h, value)."""
    estimators: list[str] = list(rank.get("estimators") or [])
    candidates: list[dict[str, Any]] = list(rank.get("candidates") or [])
    charts = []
    for e in estimators:
        values = [v for c in candidates for v in c["scores"][e]["layers"]]
        low, high = (min(values), max(values)) if values else (0.0, 0.0)
        models = []
        for c in candidates:
            s = c["scores"][e]
            bars = _bars(list(s["layers"]), low, high, int(s["best_layer"]))
            models.append({"name": c["name"], "bars": bars, "width": len(bars) * (BAR_W + GAP)})
        charts.append({"estimator": e, "low": low, "high": high, "models": models})
    rows = [
        {
            "rank": c["rank"],
            "name": c["name"],
            "learnware_id": c["learnware_id"],
            "version": c["version"],
            "combined": c["combined"],
            "scores": [{"estimator": e, **c["scores"][e]} for e in estimators],
            "seconds": c["seconds"],
        }
        for c in candidates
    ]
    return {"estimators": estimators, "rows": rows, "charts": charts, "height": HEIGHT, "bar_width": BAR_W}
