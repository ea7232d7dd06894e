"""Search by a data file: the per-space search (columns matched by name) and the cross-space stage.

One function for the API (inline), the worker task (large files) and the portal, so a file is
searched the same way wherever it arrives.
"""

from __future__ import annotations

from typing import Any

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.models import FeatureSpace
from marketplace.search.column_suggest import column_suggestions
from marketplace.search.cross_space import MIN_SHARED, cross_space_for_file
from marketplace.search.data import spec_from_file
from marketplace.search.detect import csv_header
from marketplace.search.results import data_result_dict
from marketplace.search.selectors import search_by_data
from specs import RKMESpecification
from specs.columns import align, apply_column_map


def file_search(
    *,
    user: Any,
    space: FeatureSpace,
    name: str,
    content: bytes,
    column_map: dict[str, str] | None = None,
    cross_space: bool = True,
    min_shared: int = MIN_SHARED,
    params: dict[str, Any],
) -> tuple[dict[str, Any], RKMESpecification | None]:
    """The API's search-by-data body for a file: ``results``/``mixture`` in ``space`` (empty when the
    file lacks some of its columns and ``cross_space`` is on), ``columns`` (matched, missing, extra),
    and ``cross_space`` (learnwares of spaces sharing >= ``min_shared`` columns, coverage counted);
    with the file's spec in ``space`` (None when it lacks columns of ``space``)."""
    spec: RKMESpecification | None
    try:
        spec = spec_from_file(space=space, name=name, content=content, column_map=column_map)
    except ValidationFailed as exc:
        if exc.code != "search:user:missing-columns" or not cross_space:
            raise
        from marketplace.search.models import IndexState

        header = apply_column_map(csv_header(content) or [], column_map)
        generation = (
            IndexState.objects.filter(key=space.key).values_list("generation", flat=True).first() or 0
        )
        spec = None
        report = align(header, space.schema["columns"]).report()
        report["suggestions"] = column_suggestions(
            extra=report["extra"], missing=report["missing"], schema=space.schema
        )
        body: dict[str, Any] = {
            "feature_space": space.key,
            "generation": generation,
            "results": [],
            "mixture": None,
            "columns": report,
        }
    else:
        result = search_by_data(
            user=user,
            feature_space=space.key,
            Z=spec.Z_,
            beta=spec.beta_,
            n_samples=spec.n_samples_,
            user_rms=getattr(spec, "unit_rms_", None),
            **params,
        )
        body = data_result_dict(result) | {"columns": getattr(spec, "columns_report_", None)}
    if cross_space and space.kind == "table":
        body["cross_space"] = cross_space_for_file(
            user=user,
            name=name,
            content=content,
            column_map=column_map,
            filters=params.get("filters"),
            k=params.get("k", 10),
            min_shared=min_shared,
            exclude_spaces=[space.key] if body["results"] else [],
        )
    return body, spec
