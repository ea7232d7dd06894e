"""Re-key table spaces by their column *set* (migration 0007) and merge spaces that differ only in order.

Before, a table space was keyed by its ordered column list, so the same columns in two orders
made two spaces. Now the key hashes the sorted names (``specs.columns.table_space_key``). Each
space keeps its stored order; spaces whose keys collide are merged into the oldest one:

* every RKME point z of the absorbed space is first taken back to the unit-free units
  (``u = z * scale_A + mean_A``, in A's order), permuted by name into the survivor's order and
  standardised there (``(u - mean_S) / scale_S``): an exact, per-coordinate affine image of the
  points, with the weights unchanged; its stored ``unit_rms`` is permuted the same way;
* its ``self_term`` and RFF sketch are recomputed in the survivor's space (same d, same gamma);
* learnwares, specifications and submissions point to the survivor.

The FAISS indexes are derived from the database: the index rows (``IndexState``/``IndexChange``)
of every re-keyed or merged space are deleted, so each process rebuilds the index of the new
key from the specifications on first use (``search.store.get_index``); old snapshot files are
left in storage, unused.

The functions take the model classes (a migration passes its historical ones).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from specs import RFFSketch
from specs.columns import align_complete, column_names, table_space_key
from specs.kernels import rbf_kernel


def _std(space: Any) -> tuple[np.ndarray, np.ndarray]:
    std = space.standardization or {}
    d = space.dim
    return np.asarray(std.get("mean", [0.0] * d), dtype=np.float64), np.asarray(
        std.get("scale", [1.0] * d), dtype=np.float64
    )


def _move_spec(spec: Any, source: Any, target: Any) -> None:
    """Rewrite one specification of ``source`` in ``target``'s coordinates (module docstring)."""
    order = align_complete(column_names(source.schema["columns"]), target.schema["columns"])
    mean_a, scale_a = _std(source)
    mean_s, scale_s = _std(target)
    rkme = dict(spec.rkme)
    Z = np.asarray(rkme["Z"], dtype=np.float64)
    beta = np.asarray(rkme["beta"], dtype=np.float64)
    Z = (order.apply(Z * scale_a + mean_a) - mean_s) / scale_s
    rkme["Z"] = Z.tolist()
    if rkme.get("unit_rms") is not None:
        rkme["unit_rms"] = order.apply(np.asarray(rkme["unit_rms"], dtype=np.float64)[None, :])[0].tolist()
    gamma = float(target.gamma)
    spec.rkme = rkme
    spec.self_term = float(beta @ rbf_kernel(Z, Z, gamma) @ beta)
    sketch = RFFSketch(target.dim, gamma, target.sketch_dim, random_state=target.sketch_seed).transform(
        Z, beta
    )
    spec.sketch = sketch.astype("<f4").tobytes()
    spec.feature_space_id = target.id
    spec.save(update_fields=["rkme", "self_term", "sketch", "feature_space"])


def rekey_table_spaces(
    *,
    FeatureSpace: Any,
    Specification: Any,
    Learnware: Any,
    Submission: Any,
    IndexState: Any,
    IndexChange: Any,
) -> dict[str, Any]:
    """Give every table space its order-free key, merging collisions; returns what changed."""
    groups: dict[str, list[Any]] = {}
    for space in FeatureSpace.objects.filter(kind="table").order_by("created_at", "id"):
        columns = (space.schema or {}).get("columns")
        if columns:
            groups.setdefault(table_space_key(columns), []).append(space)
    rekeyed, merged = [], []
    for key, spaces in groups.items():
        survivor, absorbed = spaces[0], spaces[1:]
        stale = {s.key for s in spaces}
        for other in absorbed:
            for spec in Specification.objects.filter(feature_space_id=other.id):
                _move_spec(spec, other, survivor)
            Learnware.objects.filter(feature_space_id=other.id).update(feature_space_id=survivor.id)
            Submission.objects.filter(feature_space_id=other.id).update(feature_space_id=survivor.id)
            merged.append({"from": other.key, "into": key})
            other.delete()
        if survivor.key != key:
            rekeyed.append({"from": survivor.key, "to": key})
            survivor.key = key
            survivor.save(update_fields=["key"])
        if absorbed or stale != {key}:
            IndexChange.objects.filter(key__in=stale | {key}).delete()
            IndexState.objects.filter(key__in=stale | {key}).delete()
    return {"rekeyed": rekeyed, "merged": merged}
