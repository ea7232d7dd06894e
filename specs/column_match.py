"""Suggested matches between a user's unmatched columns and a learnware's missing ones.

Two signals, combined into one confidence in [0, 1]:

* **names**: both names normalised (lower case, camelCase and separators split into words,
  common abbreviations expanded: ``dep`` -> ``departure``, ``dist`` -> ``distance``, …); the
  similarity is the best of the token Jaccard index and the character-trigram Dice coefficient;
* **meaning**: cosine of sentence embeddings (all-MiniLM-L6-v2) of "name: description (unit)"
  when an encoder is given (the market passes its offline MiniLM; descriptions come from a
  manifest's ``input.columns`` entries ``{name, description, unit}``).

``confidence = max(names, MEANING_WEIGHT * meaning)`` when both are known, else ``names`` (a
meaning alone caps at 0.85 and needs a cosine of 0.59 to reach the 0.5 bar: unrelated MiniLM
pairs sit around 0.2-0.5); pairs
are assigned greedily by confidence (each column used once) above ``min_confidence``. A
suggestion is never applied: the user confirms it through ``column_map``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ABBREVIATIONS = {
    "dep": "departure",
    "arr": "arrival",
    "dist": "distance",
    "sched": "scheduled",
    "temp": "temperature",
    "qty": "quantity",
    "amt": "amount",
    "num": "number",
    "no": "number",
    "nb": "number",
    "pct": "percent",
    "avg": "average",
    "std": "deviation",
    "min": "minimum",
    "max": "maximum",
    "lat": "latitude",
    "lon": "longitude",
    "lng": "longitude",
    "dt": "date",
    "ts": "timestamp",
    "hr": "hour",
    "mo": "month",
    "yr": "year",
    "wt": "weight",
    "ht": "height",
    "len": "length",
    "cnt": "count",
    "id": "identifier",
    "px": "pixel",
    "val": "value",
}
MIN_CONFIDENCE = 0.5
MEANING_WEIGHT = 0.85


def name_tokens(name: str) -> list[str]:
    """``"DepartureDelay"``, ``"departure_delay"``, ``"dep-delay"`` -> ``["departure", "delay"]``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    words = [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]
    return [ABBREVIATIONS.get(w, w) for w in words]


def _trigrams(text: str) -> set[str]:
    padded = f"  {text} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def name_similarity(a: str, b: str) -> float:
    ta, tb = name_tokens(a), name_tokens(b)
    if not ta or not tb:
        return 0.0
    jaccard = len(set(ta) & set(tb)) / len(set(ta) | set(tb))
    ga, gb = _trigrams(" ".join(ta)), _trigrams(" ".join(tb))
    dice = 2 * len(ga & gb) / (len(ga) + len(gb))
    return float(max(jaccard, dice))


@dataclass(frozen=True)
class Suggestion:
    yours: str
    theirs: str
    confidence: float
    names: float
    meaning: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "yours": self.yours,
            "theirs": self.theirs,
            "confidence": round(self.confidence, 3),
            "names": round(self.names, 3),
            "meaning": None if self.meaning is None else round(self.meaning, 3),
        }


def _describe(name: str, info: Mapping[str, Any] | None) -> str:
    info = info or {}
    text = " ".join(name_tokens(name))
    if info.get("description"):
        text += f": {info['description']}"
    if info.get("unit"):
        text += f" ({info['unit']})"
    return text


def suggest_matches(
    yours: Sequence[str],
    theirs: Sequence[Any],
    *,
    encode: Callable[[list[str]], np.ndarray] | None = None,
    min_confidence: float = MIN_CONFIDENCE,
) -> list[Suggestion]:
    """Proposed renames of ``yours`` (the user's unmatched columns) to ``theirs`` (the learnware's
    missing ones: names or ``{name, description, unit}``), best first, each column used once."""
    their_names = [str(t["name"]) if isinstance(t, Mapping) else str(t) for t in theirs]
    info = {str(t["name"]): t for t in theirs if isinstance(t, Mapping)}
    if not yours or not their_names:
        return []
    N = np.array([[name_similarity(a, b) for b in their_names] for a in yours])
    M = None
    if encode is not None:
        E = np.asarray(
            encode([_describe(a, None) for a in yours] + [_describe(b, info.get(b)) for b in their_names]),
            dtype=np.float64,
        )
        E = E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
        M = np.clip(E[: len(yours)] @ E[len(yours) :].T, 0.0, 1.0)
    C = N if M is None else np.maximum(N, MEANING_WEIGHT * M)
    out, used_a, used_b = [], set(), set()
    for flat in np.argsort(-C, axis=None, kind="stable"):
        i, j = divmod(int(flat), len(their_names))
        if C[i, j] < min_confidence:
            break
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        out.append(
            Suggestion(
                yours[i],
                their_names[j],
                float(C[i, j]),
                float(N[i, j]),
                None if M is None else float(M[i, j]),
            )
        )
    return out
