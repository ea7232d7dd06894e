"""Build and check learnware packages locally."""

from lwm_client.packages.build import build_package, csv_sample, jsonl_sample, package_bytes, zip_files
from lwm_client.packages.check import CheckedPackage, package_check

__all__ = ["CheckedPackage", "build_package", "csv_sample", "jsonl_sample", "package_bytes", "package_check", "zip_files"]
