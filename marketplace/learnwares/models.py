"""Learnwares, their immutable versions, specifications, feature spaces and base models."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from marketplace.core.models import TimeStampedModel
from marketplace.learnwares.choices import ArtifactFormat, Kind, Modality, Task, VersionStatus, Visibility


class FeatureSpace(TimeStampedModel):
    """Where statistical specs live: two specs are comparable only inside one space.

    ``dim`` is the dimension of the encoded vectors the RKME is computed on (a table's
    column count, the image/text encoder's output size); ``gamma`` and ``standardization``
    are fixed per space so every spec in it is measured with the same kernel.
    """

    key = models.SlugField(max_length=120, unique=True)
    kind = models.CharField(max_length=10, choices=Modality.choices)
    schema = models.JSONField(
        default=dict, help_text="table: {'columns': [...]}, image: {'shape': [c, h, w]}, text: {}"
    )
    dim = models.PositiveIntegerField()
    gamma = models.FloatField()
    standardization = models.JSONField(
        default=dict, blank=True, help_text="e.g. {'mean': [...], 'scale': [...]}"
    )
    encoder_id = models.CharField(max_length=100, blank=True)
    sketch_seed = models.PositiveIntegerField(default=0)
    sketch_dim = models.PositiveIntegerField(default=512)

    def __str__(self) -> str:
        return self.key


class BaseModel(TimeStampedModel):
    """A registered base model: the offline MiniLM (adapters target it), or a published ``base_model``
    learnware's encoder (its layers and width, filled when its version is published)."""

    key = models.SlugField(max_length=120, unique=True)
    name = models.CharField(max_length=200)
    modality = models.CharField(max_length=10, choices=Modality.choices)
    hidden_size = models.PositiveIntegerField()
    num_layers = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    # Names accepted in an adapter's adapter_config.json base_model_name_or_path.
    aliases = models.JSONField(default=list, blank=True)
    # The published learnware (kind base_model) this row describes; None for the offline MiniLM,
    # which is registered by a data migration.
    learnware = models.OneToOneField(
        "Learnware", null=True, blank=True, on_delete=models.SET_NULL, related_name="registered_base_model"
    )

    def __str__(self) -> str:
        return self.key


class LearnwareQuerySet(models.QuerySet["Learnware"]):
    def alive(self) -> LearnwareQuerySet:
        return self.filter(deleted_at__isnull=True)

    def visible_to(self, user: Any) -> LearnwareQuerySet:
        """Public ones, plus the user's own and their organisations' (staff see all)."""
        qs = self.alive()
        if user is not None and user.is_authenticated and user.is_staff:
            return qs
        rule = Q(visibility=Visibility.PUBLIC)
        if user is not None and user.is_authenticated:
            rule |= Q(owner=user) | Q(visibility=Visibility.ORGANIZATION, organization__members=user)
        return qs.filter(rule).distinct()


class Learnware(TimeStampedModel):
    """A published, reusable module with a card; its content lives in immutable versions."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="learnwares")
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=140)
    description = models.TextField(blank=True, help_text="Markdown card")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    modality = models.CharField(max_length=10, choices=Modality.choices)
    task = models.CharField(max_length=20, choices=Task.choices)
    feature_space = models.ForeignKey(
        FeatureSpace, null=True, blank=True, on_delete=models.PROTECT, related_name="learnwares"
    )
    base_model = models.ForeignKey(
        BaseModel, null=True, blank=True, on_delete=models.PROTECT, related_name="adapters"
    )
    license = models.CharField(max_length=64)
    tags = models.JSONField(default=list, blank=True)
    visibility = models.CharField(max_length=15, choices=Visibility.choices, default=Visibility.PUBLIC)
    organization = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.SET_NULL
    )
    reuse_count = models.PositiveIntegerField(default=0)  # tasks whose assembled package included it
    download_count = models.PositiveIntegerField(default=0)  # downloads of its packages
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = LearnwareQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "slug"], name="unique_learnware_slug_per_owner")
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def latest_published(self) -> LearnwareVersion | None:
        return self.versions.filter(status=VersionStatus.PUBLISHED).order_by("-number").first()


def artifact_path(version: LearnwareVersion, filename: str) -> str:
    # Content-addressed: a re-upload of the same bytes never overwrites another version's file.
    return f"learnwares/{version.learnware_id}/v{version.number}/{version.artifact_sha256[:16]}-{filename}"


class LearnwareVersion(TimeStampedModel):
    """One immutable upload of a learnware: the package, its checks and its status."""

    learnware = models.ForeignKey(Learnware, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    manifest = models.JSONField(default=dict)
    package = models.FileField(upload_to=artifact_path, max_length=300, blank=True)
    artifact_sha256 = models.CharField(max_length=64, db_index=True)
    # sha256 of the bytes as uploaded; differs from artifact_sha256 once a data sample was stripped.
    upload_sha256 = models.CharField(max_length=64, blank=True)
    artifact_size = models.PositiveBigIntegerField(default=0)
    artifact_format = models.CharField(max_length=20, choices=ArtifactFormat.choices, blank=True)
    status = models.CharField(
        max_length=20, choices=VersionStatus.choices, default=VersionStatus.UPLOADED, db_index=True
    )
    checks = models.JSONField(
        default=list, blank=True, help_text="[{'check', 'ok', 'message'}] shown to owner and reviewers"
    )
    rejection_reasons = models.JSONField(default=list, blank=True)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    published_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    review_note = models.TextField(blank=True)
    yanked_at = models.DateTimeField(null=True, blank=True)
    yank_reason = models.TextField(blank=True)
    # A text model on a published base model: the base version it was checked and specified against at
    # publish (key, name, learnware_id, version, version_id, package_sha256, folder_digest, pooling, dim:
    # an adapter submission recipe's ``base``); empty for every other version and those published before.
    base_pin = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["learnware", "number"], name="unique_version_number")]
        ordering = ["learnware", "-number"]

    def __str__(self) -> str:
        return f"{self.learnware.name} v{self.number}"


class Specification(TimeStampedModel):
    """A version's statistical spec (RKME) and fingerprints, in its feature space.

    Arrays are stored as bytes in the specs library's no-pickle formats; ``sketch``
    is the float32 RFF vector the FAISS index holds, ``self_term`` = betaᵀK_ZZbeta.
    """

    version = models.OneToOneField(LearnwareVersion, on_delete=models.CASCADE, related_name="specification")
    feature_space = models.ForeignKey(FeatureSpace, on_delete=models.PROTECT, related_name="specifications")
    rkme = models.JSONField(help_text="specs.serialization RKME JSON (Z, beta, gamma)")
    k = models.PositiveIntegerField()
    self_term = models.FloatField()
    sketch = models.BinaryField()
    probe_fingerprint = models.BinaryField(null=True, blank=True)
    card_embedding = models.BinaryField(null=True, blank=True)
    arrow_prototypes = models.BinaryField(null=True, blank=True)
    computed_from = models.CharField(
        max_length=20, default="client", help_text="client (rkme.json) or sample"
    )

    def __str__(self) -> str:
        return f"spec of {self.version}"


class AuditLog(models.Model):
    """Every state change of a learnware or version, with who did it and why."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=50)
    learnware = models.ForeignKey(
        Learnware, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit"
    )
    version = models.ForeignKey(
        LearnwareVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit"
    )
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action}"
