"""Demo learnwares trained the way tabular developers train them — scikit-learn and LightGBM —
and published as ONNX through the client's converters (``lwm_client.packages.from_sklearn`` /
``from_lightgbm``), as any developer would.

* ``flights-sklearn``: a scikit-learn pipeline (StandardScaler + HistGradientBoostingClassifier)
  per origin airport, on the same rows and columns as the TorchScript flight learnwares;
* ``diamonds-lightgbm``: a LightGBM gradient-boosted price regressor per cut.

They share the feature spaces of their data sets, so searches and submissions on flights or
diamonds rows meet them next to the torch models.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from demo.datasets import Domain

FAMILIES = ("flights-sklearn", "diamonds-lightgbm")
FLIGHT_ORIGINS = ("ewr", "jfk", "lga")
DIAMOND_CUTS = ("good", "premium", "ideal")
PROBE_ROWS = 400


def domains(flights: list[Domain], diamonds: list[Domain]) -> list[list[Domain]]:
    """The converted families, built on the rows of the torch families (no second load)."""
    sklearn = [
        replace(
            d,
            name=f"{d.name}-sklearn-hgb",
            family="flights-sklearn",
            description=d.description.replace(
                "Predicts",
                "A scikit-learn pipeline (StandardScaler + "
                "HistGradientBoostingClassifier), published as ONNX, that predicts",
                1,
            ),
            tags=[*d.tags, "scikit-learn", "onnx"],
        )
        for d in flights
        if d.name.rsplit("-", 1)[-1] in FLIGHT_ORIGINS and "-origin-" in d.name
    ]
    lightgbm = [
        replace(
            d,
            name=f"{d.name}-lightgbm",
            family="diamonds-lightgbm",
            description=d.description.replace(
                "Estimates", "A LightGBM gradient-boosted regressor, published as ONNX, that estimates", 1
            ),
            tags=[*d.tags, "lightgbm", "onnx"],
        )
        for d in diamonds
        if d.name.removeprefix("diamond-price-") in DIAMOND_CUTS
    ]
    return [sklearn, lightgbm]


def fit(d: Domain) -> Any:
    """The domain's fitted model (single-threaded: the demo shares a small machine)."""
    if d.family == "flights-sklearn":
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(
            StandardScaler(), HistGradientBoostingClassifier(max_iter=80, random_state=0)
        ).fit(d.X_dev, d.y_dev)
    import lightgbm

    return lightgbm.LGBMRegressor(
        n_estimators=120, num_leaves=15, learning_rate=0.1, random_state=0, n_jobs=1, verbose=-1
    ).fit(d.X_dev, d.y_dev)


def package(lwm: Any, d: Domain, spec: dict[str, Any]) -> bytes:
    """The package of ``d`` built by the client's converter; ``spec`` is the seeder's ``{"sample"}`` or
    ``{"rkme"}``
    (with a sample the converter ships the rows as sample.csv; either way they are its probe batch)."""
    convert = lwm.packages.from_sklearn if d.family == "flights-sklearn" else lwm.packages.from_lightgbm
    extra = {"classes": d.classes} if d.task == "classification" else {}
    return convert(
        fit(d),
        columns=d.columns,
        sample=d.X_dev[:PROBE_ROWS],
        rkme=spec.get("rkme"),
        name=d.name,
        description=d.description,
        license=d.license,
        tags=d.tags,
        version="1.0",
        **extra,
    )
