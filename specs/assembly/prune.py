"""Drop the members a fitted assembly never uses, so a package ships only what predicts.

A best single uses one member, a weighted ensemble the members of positive weight, the
RKME job and soft selectors the members they may route to (weight > 0). The pruned assembly predicts
exactly as the original on the kept members' outputs. Methods that read every member's
outputs as features (trained job selector, stitching head) keep all of them.
"""

from __future__ import annotations

import numpy as np

from specs.assembly._base import Assembly
from specs.assembly.ensemble import BestSingle, WeightedEnsemble
from specs.assembly.selector import RKMEJobSelector


def prune(assembly: Assembly, n_members: int) -> tuple[list[int], Assembly]:
    """(indices of the members kept, in order; the assembly over those members only)."""
    placeholders = [np.zeros(0)]  # fit(weights=/scores=) only counts the members
    if isinstance(assembly, BestSingle):
        kept = [int(assembly.best_)]
        return kept, BestSingle(task=assembly.task, n_classes=assembly.n_classes).fit(
            placeholders, scores=np.ones(1)
        )
    if isinstance(assembly, WeightedEnsemble):
        kept = [int(i) for i in np.flatnonzero(assembly.weights_ > 0)]
        model = WeightedEnsemble(task=assembly.task, n_classes=assembly.n_classes)
        return kept, model.fit(placeholders * len(kept), weights=assembly.weights_[kept])
    if isinstance(assembly, RKMEJobSelector):  # and its soft subclass: the same kind comes back
        kept = [int(i) for i in np.flatnonzero(assembly.weights_ > 0)]
        Zs = [assembly.Z_[assembly.owner_ == i] for i in kept]
        betas = [assembly.beta_[assembly.owner_ == i] for i in kept]
        selector = type(assembly)(task=assembly.task, n_classes=assembly.n_classes)
        return kept, selector.fit(Zs, betas, assembly.gamma_, assembly.weights_[kept])
    return list(range(n_members)), assembly
