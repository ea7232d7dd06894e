"""What a search sends (its filters) and what the client adds to a search-by-data answer (component names)."""

from __future__ import annotations

from typing import Any

from lwm_client.models import SearchResult

FILTERS = ("modality", "task", "kind", "license", "tags", "base_model", "owner")


def card_search_params(q: str, limit: int, filters: dict[str, Any]) -> dict[str, Any]:
    """Query parameters of a card search: lists of filter values travel comma-joined."""
    params: dict[str, Any] = {"q": q, "limit": limit}
    for key in FILTERS:
        value = filters.get(key)
        if value:
            params[key] = ",".join(value) if isinstance(value, (list, tuple)) else value
    return params


def data_search_filters(filters: dict[str, Any]) -> dict[str, Any]:
    """The known, non-empty filters of a search by data (sent in its JSON body)."""
    return {key: v for key, v in filters.items() if key in FILTERS and v}


def named_components(result: SearchResult) -> SearchResult:
    """A search-by-data mixture names its components by version id: add each one's learnware id,
    name and version number from the hits (components the hits do not hold keep what they have)."""
    if result.mixture is None:
        return result
    hits = {h.version_id: h for h in result.results}
    for component in result.mixture.components:
        hit = hits.get(component.get("version_id", -1))
        if hit is not None:
            component.setdefault("learnware_id", hit.learnware_id)
            component.setdefault("name", hit.name)
            component.setdefault("version", hit.version)
    return result


def file_search_form(
    feature_space: str, *, k: int, mixture: bool, cross_space: bool, renames: dict[str, str] | None
) -> dict[str, str]:
    """The multipart fields of a search with a file (``Client.search_by_file``); DRF reads a dict field of
    a multipart form from ``name.key`` fields, so ``column_map`` goes as ``column_map.<your name>``."""
    form = {
        "feature_space": feature_space,
        "k": str(k),
        "mixture": str(mixture).lower(),
        "cross_space": str(cross_space).lower(),
    }
    return form | {f"column_map.{yours}": theirs for yours, theirs in (renames or {}).items()}
