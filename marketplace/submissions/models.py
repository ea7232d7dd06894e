"""A user's task handed to the market: data (or its RKME), an optional labelled sample,
requirements, and what the reuse pipeline made of it, stage by stage."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models

from marketplace.core.models import TimeStampedModel
from marketplace.learnwares.choices import Modality, Task
from marketplace.submissions.choices import STAGES, DataFormat


def submission_path(submission: Submission, filename: str) -> str:
    # Private prefix per submission; nothing under it is ever served without the owner check.
    return f"submissions/{submission.owner_id}/{submission.id}/{filename}"


class Submission(TimeStampedModel):
    """One reuse request. Its status, stage and progress are its job's (the single source of truth).

    ``results`` holds one entry per finished stage, ``{stage: {"key": <sha256 of the stage's
    inputs>, ...}}``; a stage whose stored key matches its inputs is not computed again, which
    makes a re-run after a worker died resume where it stopped and reproduce the same results.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="submissions")
    name = models.CharField(max_length=200, blank=True)
    job = models.OneToOneField(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="submission"
    )
    modality = models.CharField(max_length=10, choices=Modality.choices, default=Modality.TABLE)
    task = models.CharField(max_length=20, choices=Task.choices, default=Task.CLASSIFICATION)
    feature_space = models.ForeignKey(
        "learnwares.FeatureSpace", null=True, blank=True, on_delete=models.PROTECT, related_name="submissions"
    )
    requirements = models.JSONField(default=dict, blank=True)
    data_format = models.CharField(max_length=10, choices=DataFormat.choices)
    data_file = models.FileField(upload_to=submission_path, max_length=300, blank=True)
    data_sha256 = models.CharField(max_length=64, blank=True)
    data_size = models.PositiveBigIntegerField(default=0)
    labelled_format = models.CharField(max_length=10, choices=DataFormat.choices, blank=True)
    labelled_file = models.FileField(upload_to=submission_path, max_length=300, blank=True)
    labelled_sha256 = models.CharField(max_length=64, blank=True)
    labelled_size = models.PositiveBigIntegerField(default=0)
    results = models.JSONField(default=dict, blank=True)
    package = models.FileField(upload_to=submission_path, max_length=300, blank=True)
    package_sha256 = models.CharField(max_length=64, blank=True)
    package_size = models.PositiveBigIntegerField(default=0)
    data_deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "created_at"])]

    def __str__(self) -> str:
        return f"submission {self.id} of {self.owner_id}"

    @property
    def has_labels(self) -> bool:
        return bool(self.labelled_sha256)

    def stage_result(self, stage: str) -> dict[str, Any] | None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        value = self.results.get(stage)
        return value if isinstance(value, dict) else None
