"""Writes of the learnwares app (split by topic; import from here)."""

from marketplace.learnwares.services.audit import audit_record
from marketplace.learnwares.services.base_models import base_model_publish
from marketplace.learnwares.services.counters import learnware_downloaded, learnwares_reused
from marketplace.learnwares.services.governance import (
    learnware_purge,
    user_ban,
    version_approve,
    version_review_reject,
    version_yank,
)
from marketplace.learnwares.services.learnwares import learnware_delete, learnware_update, learnware_upload
from marketplace.learnwares.services.model_bases import published_text_base, version_pin_base
from marketplace.learnwares.services.spaces import (
    base_model_for,
    base_models_register,
    feature_space_for_manifest,
    feature_space_key,
    table_space_key,
)
from marketplace.learnwares.services.versions import (
    specification_store,
    version_check,
    version_complete,
    version_file_delete,
    version_reject,
    version_start,
)

__all__ = [
    "learnware_downloaded",
    "learnwares_reused",
    "audit_record",
    "base_model_for",
    "base_model_publish",
    "base_models_register",
    "feature_space_for_manifest",
    "feature_space_key",
    "learnware_delete",
    "learnware_purge",
    "learnware_update",
    "learnware_upload",
    "published_text_base",
    "version_pin_base",
    "specification_store",
    "table_space_key",
    "user_ban",
    "version_approve",
    "version_check",
    "version_complete",
    "version_file_delete",
    "version_reject",
    "version_review_reject",
    "version_start",
    "version_yank",
]
