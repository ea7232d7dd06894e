"""Build and check learnware packages locally; convert scikit-learn, LightGBM, XGBoost and torch models to
ONNX packages."""

from lwm_client.packages.build import build_package, csv_sample, jsonl_sample, package_bytes, zip_files
from lwm_client.packages.check import CheckedPackage, package_check
from lwm_client.packages.convert import from_lightgbm, from_sklearn, from_xgboost
from lwm_client.packages.convert_torch import from_torch

__all__ = [
    "CheckedPackage",
    "build_package",
    "csv_sample",
    "from_lightgbm",
    "from_sklearn",
    "from_torch",
    "from_xgboost",
    "jsonl_sample",
    "package_bytes",
    "package_check",
    "zip_files",
]
