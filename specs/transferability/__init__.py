"""Transferability estimators: how well features F predict labels y without fine-tuning."""

from specs.transferability.combine import (
    DEFAULT_WEIGHTS,
    combine_scores,
    normalise_scores,
)
from specs.transferability.direct import (
    accuracy,
    direct_scores,
    macro_f1,
    r2_score,
    rmse,
)
from specs.transferability.hscore import (
    hscore,
    ledoit_wolf_shrinkage,
    regularized_hscore,
)
from specs.transferability.knn import knn_accuracy, knn_neighbours
from specs.transferability.layers import LayerScore, pool_hidden_states, score_layers
from specs.transferability.logme import LogME, logme

__all__ = [
    "DEFAULT_WEIGHTS",
    "LayerScore",
    "LogME",
    "accuracy",
    "combine_scores",
    "direct_scores",
    "hscore",
    "knn_accuracy",
    "knn_neighbours",
    "ledoit_wolf_shrinkage",
    "logme",
    "macro_f1",
    "normalise_scores",
    "pool_hidden_states",
    "r2_score",
    "regularized_hscore",
    "rmse",
    "score_layers",
]
