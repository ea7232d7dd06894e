"""Submission API: create (multipart or JSON with an RKME), list, detail, cancel, package download."""

from __future__ import annotations

import json
import uuid
from pathlib import PurePath
from typing import Any

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from marketplace.core.exceptions import Conflict, NotFound, ValidationFailed
from marketplace.jobs.apis import JobOutputSerializer
from marketplace.jobs.idempotency import idempotent
from marketplace.learnwares.choices import Modality, Task
from marketplace.submissions.choices import AssemblyMethod, DataFormat
from marketplace.submissions.model_selection import check_model_selection
from marketplace.submissions.models import Submission
from marketplace.submissions.selectors import submission_get, submission_list
from marketplace.submissions.services import submission_cancel, submission_create

_EXTENSIONS = {
    ".csv": DataFormat.CSV,
    ".npz": DataFormat.NPZ,
    ".jsonl": DataFormat.JSONL,
    ".json": DataFormat.RKME,
    ".zip": DataFormat.IMAGES,
}
LABELLED_FORMATS = [(v, label) for v, label in DataFormat.choices if v != DataFormat.RKME]
# What each modality's files may be; an RKME fits every modality.
# (Text rows may also come encoded, as MiniLM embeddings in a table file: the client sends its labelled sample
# so.)
MODALITY_FORMATS = {
    Modality.TABLE: (DataFormat.CSV, DataFormat.NPZ),
    Modality.IMAGE: (DataFormat.IMAGES, DataFormat.NPZ),
    Modality.TEXT: (DataFormat.JSONL, DataFormat.NPZ, DataFormat.CSV),
}


class SubmissionThrottle(UserRateThrottle):
    scope = "submission"


@extend_schema_field(OpenApiTypes.OBJECT)
class JsonObjectField(serializers.Field):
    """A JSON object given as an object (JSON body) or as a string (multipart form field)."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, (str, bytes)):
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise serializers.ValidationError(f"is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise serializers.ValidationError("must be a JSON object")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


# Bounds that keep every number inside what the database and the numerical libraries take, so a
# huge value is a 400 naming the field, not a crash of the job (ids are BigAutoField, seeds go
# to scikit-learn's 32-bit random_state, sizes are compared with 64-bit columns).
MAX_ID = 2**63 - 1
MAX_SEED = 2**32 - 1
MAX_IDS = 1000


def _ids(help_text: str = "") -> serializers.ListField:
    return serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        max_length=MAX_IDS,
        required=False,
        help_text=help_text,
    )


class RequirementsSerializer(serializers.Serializer):
    """What the user asks of the result; every field is optional."""

    feature_space = serializers.SlugField(
        required=False, help_text="key of the feature space; inferred from the columns if absent"
    )
    licenses = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, help_text="SPDX allow-list"
    )
    tags = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, help_text="every tag required"
    )
    learnwares = _ids("only these learnware ids")
    exclude = _ids()
    max_model_size = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, help_text="bytes per learnware artifact"
    )
    max_modules = serializers.IntegerField(min_value=1, max_value=10, required=False)
    methods = serializers.ListField(
        child=serializers.ChoiceField(choices=AssemblyMethod.choices), required=False
    )
    kind = serializers.ChoiceField(
        choices=["model", "adapter", "base_model"],
        required=False,
        help_text="text: 'adapter' ranks and merges/routes LoRA adapters on MiniLM instead of models; "
        "'base_model' ranks the published base models for the labelled texts or images "
        "(docs/model-selection.md)",
    )
    time_budget_s = serializers.FloatField(
        min_value=0.1,
        max_value=3600,
        required=False,
        help_text="kind 'base_model': base models not started within this many seconds are skipped",
    )
    aggregation = serializers.ChoiceField(
        choices=["mean", "best"],
        required=False,
        help_text="kind 'base_model': rank on the layer mean (default) or each model's best layer",
    )
    adapter = serializers.BooleanField(
        required=False,
        help_text="kind 'base_model', texts: also train a LoRA adapter and a head on the chosen base model "
        "(in the sandbox) and deliver it when it beats the frozen head (docs/model-selection.md)",
    )
    negate = _ids("adapter learnware ids whose LoRA update is subtracted (LoRA negation)")
    label_column = serializers.CharField(max_length=200, required=False)
    holdout_fraction = serializers.FloatField(min_value=0.1, max_value=0.5, required=False)
    seed = serializers.IntegerField(min_value=0, max_value=MAX_SEED, required=False)
    column_map = serializers.DictField(
        child=serializers.CharField(max_length=200),
        required=False,
        help_text='renames your data\'s columns to the learnwares\' ({"departure_delay": "dep_delay"}); '
        "columns are matched by name, in any order, extra ones ignored",
    )

    impute_missing = serializers.BooleanField(
        required=False,
        help_text="when your table lacks some of a space's columns (you hold at least half of them), "
        "fill them from the best-matching learnware's RKME (default true); false refuses instead",
    )

    def validate_column_map(self, value: dict[str, str]) -> dict[str, str]:
        """Two columns renamed to one name are refused here; a key the data lacks, when the data are read."""
        targets = list(value.values())
        doubled = sorted({t for t in targets if targets.count(t) > 1})
        if doubled:
            raise serializers.ValidationError(f"two columns are renamed to {doubled[0]!r} (duplicate target)")
        return value


class SubmissionOutputSerializer(serializers.ModelSerializer):
    status = serializers.CharField(source="job.status", default="pending", read_only=True)
    stage = serializers.CharField(source="job.stage", default="", read_only=True)
    progress = serializers.IntegerField(source="job.progress", default=0, read_only=True)
    message = serializers.CharField(source="job.message", default="", read_only=True)
    error = serializers.JSONField(source="job.error", default=None, read_only=True)
    job = serializers.UUIDField(source="job_id", read_only=True)
    feature_space = serializers.CharField(source="feature_space.key", default=None, read_only=True)
    has_labels = serializers.BooleanField(read_only=True)
    results = serializers.JSONField(
        read_only=True,
        help_text="per stage: spec, identify, rank, assemble, evaluate, package (see docs/submissions.md)",
    )
    package_url = serializers.SerializerMethodField()

    class Meta:
        model = Submission
        fields = [
            "id",
            "name",
            "status",
            "stage",
            "progress",
            "message",
            "error",
            "job",
            "modality",
            "task",
            "feature_space",
            "requirements",
            "data_format",
            "data_size",
            "has_labels",
            "labelled_size",
            "results",
            "package_url",
            "package_sha256",
            "package_size",
            "created_at",
            "updated_at",
            "data_deleted_at",
        ]

    @extend_schema_field(OpenApiTypes.STR)
    def get_package_url(self, obj: Submission) -> str | None:
        return f"/api/v1/submissions/{obj.id}/package" if obj.package else None


def _check_modality_formats(attrs: dict[str, Any]) -> None:
    """Refuse files that cannot hold the modality's data (e.g. a CSV for an image task) before storing
    them."""
    allowed = MODALITY_FORMATS.get(attrs["modality"], ())
    for field in ("data", "labelled"):
        fmt = attrs.get(f"{field}_format") if field in attrs else None
        if fmt and fmt != DataFormat.RKME and fmt not in allowed:
            raise serializers.ValidationError(
                {
                    f"{field}_format": [
                        f"{fmt!r} files cannot hold {attrs['modality']} data (use "
                        f"{', '.join(map(str, allowed))})"
                    ]
                }
            )


def _refuse_adapter_outside_model_selection(requirements: dict[str, Any]) -> None:
    """``requirements.adapter`` trains an adapter on the base model that model selection chose: with
    another kind no stage reads it, so asking for it is refused rather than silently ignored."""
    kind = requirements.get("kind", "model")
    if requirements.get("adapter") and kind != "base_model":
        raise ValidationFailed(
            f"requirements.adapter: training an adapter is part of choosing a base model; it needs "
            f"requirements.kind 'base_model', not {kind!r}",
            code="submission:user:adapter-needs-base-model",
            details={"requirements": [f"adapter: only with kind 'base_model' (kind is {kind!r})"]},
        )


def _read_upload(upload: Any) -> bytes:
    upload.seek(0)
    raw = bytes(upload.read())
    upload.seek(0)
    return raw


def _infer_format(upload: Any, given: str, field: str) -> str:
    if given:
        return given
    suffix = PurePath(getattr(upload, "name", "") or "").suffix.lower()
    if suffix not in _EXTENSIONS:
        raise serializers.ValidationError(
            {f"{field}_format": [f"cannot infer the format of {upload.name!r}; give {field}_format"]}
        )
    return _EXTENSIONS[suffix]


class SubmissionListCreateApi(ListAPIView):
    """Your submissions (GET), or hand the market a task (POST, 202 with the submission and its job)."""

    permission_classes = [IsAuthenticated]
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    serializer_class = SubmissionOutputSerializer

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False, default="")
        # A field named like Serializer.data: the serializer's metaclass moves it into the declared fields.
        data = serializers.FileField(
            required=False,
            help_text="unlabelled data: CSV (header row), NPZ (array X; for images "  # type: ignore[assignment]
            "array images (n, C, H, W)), JSONL, or a zip of PNG/JPEG images",
        )
        data_format = serializers.ChoiceField(choices=DataFormat.choices, required=False)
        rkme = JsonObjectField(
            required=False,
            help_text="an RKME computed client-side (specs.serialization JSON), instead of data",
        )
        labelled = serializers.FileField(
            required=False,
            help_text="optional labelled sample: CSV with a label column, NPZ with X "
            "(or images) and y, JSONL with text and label, or a zip of images with labels.csv (file, label)",
        )
        labelled_format = serializers.ChoiceField(choices=LABELLED_FORMATS, required=False)
        requirements = JsonObjectField(required=False)
        modality = serializers.ChoiceField(choices=Modality.choices, default=Modality.TABLE)
        task = serializers.ChoiceField(
            choices=[Task.CLASSIFICATION, Task.REGRESSION], default=Task.CLASSIFICATION
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if (attrs.get("requirements") or {}).get("kind") == "base_model" and not (
                "data" in attrs or "rkme" in attrs
            ):
                # Choosing a base model needs the labelled texts only: they are the task's data too.
                if "labelled" not in attrs:
                    raise ValidationFailed(
                        "labelled: choosing a base model needs a labelled sample "
                        "(JSONL with 'text' and 'label')",
                        code="submission:user:model-selection-no-labels",
                        details={"labelled": ["required with requirements.kind 'base_model'"]},
                    )
                attrs["data"] = attrs["labelled"]
            if "rkme" in attrs:
                attrs["data_format"] = DataFormat.RKME
            elif "data" in attrs:
                attrs["data_format"] = _infer_format(attrs["data"], attrs.get("data_format", ""), "data")
            else:
                raise serializers.ValidationError({"data": ["give a data file or an rkme"]})
            if attrs["data_format"] == DataFormat.JSONL:
                attrs["modality"] = (
                    Modality.TEXT
                )  # JSONL holds texts: the text space is the only one they fit
            elif attrs["data_format"] == DataFormat.IMAGES:
                attrs["modality"] = Modality.IMAGE  # likewise a zip of images
            if "labelled" in attrs:
                attrs["labelled_format"] = _infer_format(
                    attrs["labelled"], attrs.get("labelled_format", ""), "labelled"
                )
                if attrs["labelled_format"] == DataFormat.IMAGES and attrs["data_format"] == DataFormat.RKME:
                    attrs["modality"] = Modality.IMAGE
            _check_modality_formats(attrs)
            requirements = RequirementsSerializer(data=attrs.get("requirements", {}))
            if not requirements.is_valid():
                raise serializers.ValidationError({"requirements": requirements.errors})
            attrs["requirements"] = requirements.validated_data
            _refuse_adapter_outside_model_selection(attrs["requirements"])
            return attrs

    class CreatedSerializer(serializers.Serializer):
        submission = SubmissionOutputSerializer()
        job = JobOutputSerializer()

    def get_queryset(self) -> Any:
        return submission_list(user=self.request.user)

    def get_throttles(self) -> list[Any]:
        return [SubmissionThrottle()] if self.request.method == "POST" else []

    @extend_schema(
        request={"multipart/form-data": InputSerializer, "application/json": InputSerializer},
        responses={202: CreatedSerializer},
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data

        if v["requirements"].get("kind") == "base_model":  # refused now, with its code, not in the worker
            upload = v.get("labelled")
            check_model_selection(
                user=request.user,
                labelled=_read_upload(upload) if upload is not None else None,
                labelled_format=v.get("labelled_format", ""),
                label_key=v["requirements"].get("label_column", "label"),
                modality=v["modality"],
                adapter=bool(v["requirements"].get("adapter")),
            )

        def create() -> Response:
            submission = submission_create(
                owner=request.user,
                data_format=v["data_format"],
                data=v.get("data"),
                rkme_json=json.dumps(v["rkme"]) if "rkme" in v else None,
                labelled=v.get("labelled"),
                labelled_format=v.get("labelled_format", ""),
                requirements=v["requirements"],
                modality=v["modality"],
                task=v["task"],
                name=v["name"],
            )
            submission = Submission.objects.select_related("job", "feature_space").get(id=submission.id)
            body = {
                "submission": SubmissionOutputSerializer(submission).data,
                "job": JobOutputSerializer(submission.job).data,
            }
            return Response(body, status=status.HTTP_202_ACCEPTED)

        # A retried POST with the same Idempotency-Key replays the first answer: never a second submission.
        return idempotent(request, scope="submission", create=create)


def _get_or_404(submission_id: uuid.UUID, user: Any) -> Submission:
    submission = submission_get(submission_id=submission_id, user=user)
    if submission is None:
        raise NotFound(f"submission {submission_id} not found", code="submission:user:not-found")
    return submission


class SubmissionDetailApi(APIView):
    """A submission's status, stage, progress and the results of each finished stage."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=SubmissionOutputSerializer)
    def get(self, request: Request, submission_id: uuid.UUID) -> Response:
        return Response(SubmissionOutputSerializer(_get_or_404(submission_id, request.user)).data)


class SubmissionCancelApi(APIView):
    """Stop a submission's work."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses=SubmissionOutputSerializer)
    def post(self, request: Request, submission_id: uuid.UUID) -> Response:
        submission = submission_cancel(submission=_get_or_404(submission_id, request.user), user=request.user)
        return Response(SubmissionOutputSerializer(submission).data)


class SubmissionPackageApi(APIView):
    """Download the assembled package (a zip in the learnware package format)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY})
    def get(self, request: Request, submission_id: uuid.UUID) -> FileResponse:
        submission = _get_or_404(submission_id, request.user)
        if submission.data_deleted_at is not None:
            raise NotFound(
                f"submission {submission_id}: its package was deleted after the retention period",
                code="submission:user:expired",
            )
        if not submission.package:
            raise Conflict(
                f"submission {submission_id} has no package yet", code="submission:user:package-not-ready"
            )
        response = FileResponse(
            submission.package.open("rb"),
            content_type="application/zip",
            as_attachment=True,
            filename=f"submission-{submission.id}.zip",
        )
        response["X-Checksum-Sha256"] = submission.package_sha256
        return response
