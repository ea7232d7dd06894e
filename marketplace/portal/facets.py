"""Facet counts for the browse page, over the versions a search returned (no extra query per facet)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from django.http import QueryDict

from marketplace.learnwares.models import LearnwareVersion

FACETS = ("modality", "task", "license", "tags", "base_model", "owner")
FACET_TITLES = {
    "modality": "Modality",
    "task": "Task",
    "license": "Licence",
    "tags": "Tags",
    "base_model": "Base model",
    "owner": "Owner",
}


def facet_values(version: LearnwareVersion) -> dict[str, list[str]]:
    lw = version.learnware
    return {
        "modality": [lw.modality],
        "task": [lw.task],
        "license": [lw.license],
        "tags": [str(t) for t in (lw.tags or [])],
        "base_model": [lw.base_model.key] if lw.base_model is not None else [],
        "owner": [lw.owner.username],
    }


def facet_counts(versions: Iterable[LearnwareVersion], limit: int = 12) -> list[dict[str, Any]]:
    """[{name, title, values: [(value, count), ...]}] with the most frequent values first."""
    counters: dict[str, Counter[str]] = {name: Counter() for name in FACETS}
    for version in versions:
        for name, values in facet_values(version).items():
            counters[name].update(values)
    return [
        {"name": name, "title": FACET_TITLES[name], "values": counters[name].most_common(limit)}
        for name in FACETS
        if counters[name]
    ]


def with_links(
    facets: list[dict[str, Any]], query: QueryDict, filters: dict[str, Any]
) -> list[dict[str, Any]]:
    """Add to each facet value whether it is selected and the query string that toggles it."""
    out = []
    for facet in facets:
        name, values = facet["name"], []
        for value, count in facet["values"]:
            params = query.copy()
            params.pop("page", None)
            if name == "tags":
                tags = params.getlist("tags")
                on = value in (filters.get("tags") or [])
                params.setlist("tags", [t for t in tags if t != value] if on else [*tags, value])
            else:
                on = filters.get(name) == value
                params.pop(name, None)
                if not on:
                    params[name] = value
            values.append({"value": value, "count": count, "on": on, "href": "?" + params.urlencode()})
        out.append({**facet, "values": values})
    return out
