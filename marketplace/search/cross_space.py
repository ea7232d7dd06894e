"""Search by data across table spaces that share columns with the user's table.

The per-space FAISS indexes answer "which learnwares of *this* space explain my rows"; a user
whose table holds only some of a space's columns, or columns of several spaces, is served here:

1. **Spaces**: every table space sharing at least ``min_shared`` column names with the user
   (after ``column_map``).
2. **Prune** (all learnwares of those spaces at once, vectorised): each learnware's RKME is
   summarised by its weighted per-coordinate mean and standard deviation (computed once per
   index generation); the user's shared columns, in the space's units (``specs.marginal.
   to_space_units``), by theirs. The proxy ``coverage * exp(-gamma * sum_j (dmean_j^2 +
   dstd_j^2))`` (gamma of the shared columns, ``specs.marginal.restricted_gamma``) is the
   similarity two Gaussians with these moments would have under the product kernel (to first
   order); the ``prune`` best go on.
3. **Exact**: for each survivor, the MMD and similarity between the user's rows (a seeded
   subsample of at most ``USER_POINTS``, uniformly weighted: the empirical embedding; their self
   term once per space) and the
   learnware's RKME restricted to the shared coordinates, under ``gamma = 1/(2|S|)``, ranked by
   ``specs.marginal.match_score``: coverage, discounted only for an MMD² beyond the user's
   sampling noise on those columns; the explanation names the compared and the missing columns.

Cost (benchmarks/hetero_search.py, docs/search.md): stage 2 is O(N * |S|) for N learnwares in
the sharing spaces, stage 3 O(prune * (USER_POINTS + K) * K * |S|) plus O(USER_POINTS^2 * |S|)
per space among the survivors.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from specs.columns import column_names
from specs.marginal import (
    MarginalMatch,
    embedding_terms,
    restricted_gamma,
    rkme_sample_size,
    sampling_noise,
    to_space_units,
    uniform_self_term,
)
from specs.units import unit_rms

MIN_SHARED = 2
PRUNE = 48
# The user's rows compared with each survivor: the sampling noise of the MMD² falls as 1/n, and at
# 128 rows it hid the differences between real marginals (nycflights13: top-1 0.69 at >= 60 % of
# the columns with 128 rows, 0.96 with 500; benchmarks/heterogeneous.py). The cross term is
# O(n K |S|) per survivor; the user's self term, O(n^2 |S|), once per space among the survivors.
USER_POINTS = 512


@dataclass
class SpaceTable:
    """One table space's learnwares, as the cross-space stage needs them."""

    key: str
    columns: list[str]
    gamma: float
    mean: np.ndarray  # the space standardiser's (d,)
    scale: np.ndarray  # (d,)
    unit_free: bool
    version_ids: np.ndarray  # (n,)
    Z: np.ndarray  # (n, K, d) float32, RKME points (K padded with zero-weight points)
    beta: np.ndarray  # (n, K)
    n_samples: np.ndarray | None = None  # (n,) the developers' sample sizes, 0 where unknown
    moment_mean: np.ndarray = field(init=False)  # (n, d)
    moment_std: np.ndarray = field(init=False)  # (n, d)

    def __post_init__(self) -> None:
        w = np.clip(self.beta, 0.0, None)
        w = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
        Z = self.Z.astype(np.float64)
        self.moment_mean = np.einsum("nk,nkd->nd", w, Z)
        second = np.einsum("nk,nkd->nd", w, Z * Z)
        self.moment_std = np.sqrt(np.maximum(second - self.moment_mean**2, 0.0))


@dataclass(frozen=True)
class CrossSpaceHit:
    space: str
    version_id: int
    match: MarginalMatch

    def to_dict(self) -> dict[str, Any]:
        return {"feature_space": self.space, "version_id": self.version_id, **self.match.to_dict()}


def _user_points(X: np.ndarray, seed: int) -> np.ndarray:
    if X.shape[0] <= USER_POINTS:
        return X
    return X[np.sort(np.random.default_rng(seed).choice(X.shape[0], USER_POINTS, replace=False))]


def cross_space_search(
    tables: Sequence[SpaceTable],
    names: Sequence[str],
    X: np.ndarray,
    *,
    k: int = 10,
    min_shared: int = MIN_SHARED,
    prune: int = PRUNE,
    seed: int = 0,
    exclude_spaces: Sequence[str] = (),
) -> list[CrossSpaceHit]:
    """The ``k`` learnwares of the spaces sharing >= ``min_shared`` columns with ``names`` that best
    explain rows ``X`` (raw units, columns ``names``) on the shared columns, coverage counted."""
    names = column_names(names)
    X = np.asarray(X, dtype=np.float64)
    rms = unit_rms(X)
    position = {c: i for i, c in enumerate(names)}
    pending: list[
        tuple[SpaceTable, np.ndarray, np.ndarray, np.ndarray]
    ] = []  # table, user idx, space idx, proxy
    for table in tables:
        if table.key in exclude_spaces or table.version_ids.size == 0:
            continue
        sidx = np.asarray([j for j, c in enumerate(table.columns) if c in position], dtype=np.int64)
        if sidx.size < min_shared:
            continue
        uidx = np.asarray([position[table.columns[j]] for j in sidx], dtype=np.int64)
        U = to_space_units(
            X[:, uidx],
            mean=table.mean[sidx],
            scale=table.scale[sidx],
            rms=rms[uidx] if table.unit_free else None,
        )
        dm = table.moment_mean[:, sidx] - U.mean(axis=0)
        ds = table.moment_std[:, sidx] - U.std(axis=0)
        coverage = sidx.size / len(table.columns)
        proxy = coverage * np.exp(-restricted_gamma(sidx.size) * np.sum(dm * dm + ds * ds, axis=1))
        pending.append((table, uidx, sidx, proxy))
    if not pending:
        return []
    flat = np.concatenate([p[3] for p in pending])
    owner = np.concatenate([np.full(p[3].shape[0], i) for i, p in enumerate(pending)])
    row = np.concatenate([np.arange(p[3].shape[0]) for p in pending])
    keep = np.argsort(-flat, kind="stable")[:prune]
    points: dict[int, tuple[np.ndarray, float]] = {}  # per space: the user's points and self term
    hits = []
    for t in keep:
        table, uidx, sidx, _ = pending[int(owner[t])]
        i = int(row[t])
        gamma = restricted_gamma(sidx.size)
        if int(owner[t]) not in points:
            U = to_space_units(
                X[:, uidx],
                mean=table.mean[sidx],
                scale=table.scale[sidx],
                rms=rms[uidx] if table.unit_free else None,
            )
            P = _user_points(U, seed)
            points[int(owner[t])] = (P, uniform_self_term(P, gamma))
        P, self_user = points[int(owner[t])]
        live = table.beta[i] != 0
        terms = embedding_terms(
            P,
            np.full(P.shape[0], 1.0 / P.shape[0]),
            table.Z[i][live][:, sidx].astype(np.float64),
            table.beta[i][live],
            gamma,
            self_a=self_user,
        )
        compared = [table.columns[j] for j in sidx]
        missing = [c for c in table.columns if c not in position]
        hits.append(
            CrossSpaceHit(
                table.key,
                int(table.version_ids[i]),
                MarginalMatch(
                    compared,
                    missing,
                    len(compared) / len(table.columns),
                    terms.mmd2,
                    terms.similarity,
                    sampling_noise(
                        terms.self_a,
                        P.shape[0],
                        rkme_sample_size(
                            table.beta[i], int(table.n_samples[i]) if table.n_samples is not None else None
                        ),
                    ),
                ),
            )
        )
    hits.sort(key=lambda h: (-h.match.score, h.match.mmd2 - h.match.noise, h.version_id))
    return hits[:k]


# --- the market's spaces, cached per index generation ------------------------------------------
_CACHE: dict[str, tuple[tuple[int, str], SpaceTable]] = {}
_LOCK = threading.Lock()


def _load(space: Any, version_ids: list[int], rkmes: list[dict[str, Any]]) -> SpaceTable:
    std = space.standardization or {}
    d = space.dim
    K = max((len(r["beta"]) for r in rkmes), default=1)
    Z = np.zeros((len(rkmes), K, d), dtype=np.float32)
    beta = np.zeros((len(rkmes), K))
    n_samples = np.asarray([int(r.get("n_samples") or 0) for r in rkmes], dtype=np.int64)
    for n, r in enumerate(rkmes):
        z, b = np.asarray(r["Z"], dtype=np.float32), np.asarray(r["beta"], dtype=np.float64)
        Z[n, : z.shape[0]], beta[n, : b.shape[0]] = z, b
    return SpaceTable(
        space.key,
        column_names(space.schema["columns"]),
        float(space.gamma),
        np.asarray(std.get("mean", [0.0] * d), dtype=np.float64),
        np.asarray(std.get("scale", [1.0] * d), dtype=np.float64),
        bool(std.get("scale_invariant")),
        np.asarray(version_ids, dtype=np.int64),
        Z,
        beta,
        n_samples,
    )


def market_tables(*, user: Any, filters: dict[str, Any] | None = None) -> list[SpaceTable]:
    """The table spaces' learnwares the user may see (published, filters applied), cached per
    (index generation, epoch) of each space, so a publish or a yank shows on the next search."""
    from marketplace.learnwares.models import FeatureSpace, Specification
    from marketplace.search.models import IndexState
    from marketplace.search.selectors import eligible_versions

    eligible = set(eligible_versions(user=user, filters=filters).values_list("id", flat=True))
    states = {s.key: (s.generation, str(s.epoch)) for s in IndexState.objects.all()}
    tables = []
    for space in FeatureSpace.objects.filter(kind="table"):
        if not (space.schema or {}).get("columns"):
            continue
        stamp = states.get(space.key, (-1, ""))
        with _LOCK:
            cached = _CACHE.get(space.key)
        if cached is None or cached[0] != stamp or stamp[0] < 0:
            rows = list(
                Specification.objects.filter(feature_space=space, version__status="published").values_list(
                    "version_id", "rkme"
                )
            )
            table = _load(space, [v for v, _ in rows], [r for _, r in rows])
            with _LOCK:
                _CACHE[space.key] = (stamp, table)
        else:
            table = cached[1]
        mask = np.isin(table.version_ids, list(eligible))
        if mask.all():
            tables.append(table)
        elif mask.any():
            tables.append(
                SpaceTable(
                    table.key,
                    table.columns,
                    table.gamma,
                    table.mean,
                    table.scale,
                    table.unit_free,
                    table.version_ids[mask],
                    table.Z[mask],
                    table.beta[mask],
                    None if table.n_samples is None else table.n_samples[mask],
                )
            )
    return tables


def cross_space_for_file(
    *,
    user: Any,
    name: str,
    content: bytes,
    column_map: dict[str, str] | None = None,
    filters: dict[str, Any] | None = None,
    k: int = 10,
    min_shared: int = MIN_SHARED,
    exclude_spaces: Sequence[str] = (),
) -> list[dict[str, Any]] | None:
    """Cross-space hits for a search upload with a CSV header (None without one), with each
    learnware's name and version: what the API and the portal show beside the per-space results."""
    from marketplace.core.exceptions import ValidationFailed
    from marketplace.learnwares.models import LearnwareVersion
    from marketplace.search.data import read_table
    from marketplace.search.detect import csv_header
    from specs.columns import ColumnError, apply_column_map

    header = csv_header(content) if not name.lower().endswith(".npz") else None
    if header is None:
        return None
    try:
        names = apply_column_map(header, column_map)
    except ColumnError as exc:
        raise ValidationFailed(
            f"column_map: {exc}",
            code=f"search:user:column-map-{exc.code.split(':')[-1]}",
            details={"columns": exc.columns},
        ) from exc
    X = read_table(name, content)
    hits = cross_space_search(
        market_tables(user=user, filters=filters),
        names,
        X,
        k=k,
        min_shared=min_shared,
        exclude_spaces=exclude_spaces,
    )
    versions = LearnwareVersion.objects.select_related("learnware").in_bulk([h.version_id for h in hits])
    return [
        {
            **h.to_dict(),
            "learnware_id": versions[h.version_id].learnware_id,
            "name": versions[h.version_id].learnware.name,
            "version": versions[h.version_id].number,
        }
        for h in hits
        if h.version_id in versions
    ]
