"""specs.assembly.prune: the pruned assembly predicts exactly as the original on the kept members."""

from __future__ import annotations

import numpy as np
import pytest

from specs.assembly import BestSingle, RKMEJobSelector, RKMESoftSelector, WeightedEnsemble
from specs.assembly.prune import prune


def _outputs(rng: np.random.Generator, m: int, n: int = 30, c: int = 3) -> list[np.ndarray]:
    out = []
    for _ in range(m):
        p = rng.random((n, c))
        out.append(p / p.sum(axis=1, keepdims=True))
    return out


def test_a_best_single_keeps_only_its_member(rng):
    outs = _outputs(rng, 3)
    model = BestSingle(n_classes=3).fit(outs, scores=np.array([0.1, 0.9, 0.3]))
    kept, pruned = prune(model, 3)
    assert kept == [1]
    assert np.array_equal(pruned.predict_proba([outs[1]]), model.predict_proba(outs))


def test_a_weighted_ensemble_drops_members_of_weight_zero(rng):
    outs = _outputs(rng, 4)
    model = WeightedEnsemble(n_classes=3).fit(outs, weights=np.array([0.5, 0.0, 0.3, 0.0]))
    kept, pruned = prune(model, 4)
    assert kept == [0, 2]
    assert pruned.predict_proba([outs[0], outs[2]]) == pytest.approx(model.predict_proba(outs), abs=1e-12)


@pytest.mark.parametrize("router", [RKMEJobSelector, RKMESoftSelector])
def test_a_router_drops_members_it_never_routes_to(rng, router):
    outs = _outputs(rng, 3)
    Zs = [rng.normal(size=(5, 2)) + c for c in (0.0, 3.0, -3.0)]
    betas = [np.full(5, 0.2)] * 3
    model = router(n_classes=3).fit(Zs, betas, 0.5, np.array([1.0, 0.0, 1.0]))
    X = rng.normal(size=(30, 2)) * 3
    kept, pruned = prune(model, 3)
    assert kept == [0, 2] and type(pruned) is router and pruned.kind == model.kind
    assert pruned.predict_proba([outs[0], outs[2]], X) == pytest.approx(
        model.predict_proba(outs, X), abs=1e-12
    )
