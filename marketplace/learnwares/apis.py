"""Learnware API: upload packages, list and read learnwares and versions, download, edit, delete."""

from __future__ import annotations

import hashlib
from typing import Any

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticatedOrReadOnly
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.core.exceptions import ApplicationError, ValidationFailed
from marketplace.core.pagination import LimitOffsetPagination
from marketplace.jobs.idempotency import idempotent
from marketplace.learnwares import selectors, services
from marketplace.learnwares.choices import Kind, Modality, Task, Visibility
from marketplace.learnwares.conf import zip_limits
from marketplace.learnwares.models import Learnware, LearnwareVersion


class LearnwareOutputSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username")
    feature_space = serializers.CharField(source="feature_space.key", allow_null=True, default=None)
    base_model = serializers.CharField(source="base_model.key", allow_null=True, default=None)
    latest_version = serializers.SerializerMethodField()
    # A plain string: a second "task" ChoiceField (submissions has one) collides in the schema's enum names.
    task = serializers.CharField(help_text=f"one of {', '.join(Task.values)}")

    class Meta:
        model = Learnware
        fields = [
            "id",
            "name",
            "slug",
            "owner",
            "description",
            "kind",
            "modality",
            "task",
            "license",
            "tags",
            "visibility",
            "feature_space",
            "base_model",
            "reuse_count",
            "download_count",
            "latest_version",
            "created_at",
            "updated_at",
        ]

    def get_latest_version(self, obj: Learnware) -> int | None:
        latest = obj.latest_published()
        return latest.number if latest else None


class VersionOutputSerializer(serializers.ModelSerializer):
    # A field named like Field.label: the serializer's metaclass moves it into the declared fields.
    label = serializers.SerializerMethodField()  # type: ignore[assignment]
    job = serializers.UUIDField(source="job_id", allow_null=True)

    class Meta:
        model = LearnwareVersion
        fields = [
            "number",
            "label",
            "status",
            "artifact_sha256",
            "artifact_size",
            "artifact_format",
            "manifest",
            "checks",
            "rejection_reasons",
            "job",
            "created_at",
            "published_at",
            "yanked_at",
            "yank_reason",
            "base_pin",
        ]

    def get_label(self, obj: LearnwareVersion) -> str:
        return str(obj.manifest.get("version") or "")


class UploadInputSerializer(serializers.Serializer):
    package = serializers.FileField(help_text="The package zip (see docs/package-format.md)")


class UploadOutputSerializer(serializers.Serializer):
    learnware = serializers.IntegerField()
    version = serializers.IntegerField()
    job = serializers.UUIDField()
    status = serializers.CharField()


def _read_upload(request: Request) -> bytes:
    form = UploadInputSerializer(data=request.data)
    form.is_valid(raise_exception=True)
    upload = form.validated_data["package"]
    limit = zip_limits()["max_bytes"]
    if upload.size > limit:
        raise ValidationFailed(
            f"package: {upload.size} bytes exceeds the limit of {limit}",
            code="upload:user:too-large",
            details={"package": "too large"},
        )
    return upload.read()


def _accepted(lw: Learnware, version: LearnwareVersion, job: Any) -> Response:
    body = UploadOutputSerializer(
        {"learnware": lw.id, "version": version.number, "job": job.id, "status": version.status}
    ).data
    return Response(body, status=status.HTTP_202_ACCEPTED)


class LearnwareListUploadApi(APIView):
    """GET: learnwares you may see. POST: upload a package (a known name of yours makes a new version)."""

    parser_classes = [MultiPartParser, FormParser]
    permission_classes = [IsAuthenticatedOrReadOnly]

    class FilterSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=Kind.choices, required=False)
        modality = serializers.ChoiceField(choices=Modality.choices, required=False)
        task = serializers.CharField(
            required=False, max_length=20, help_text=f"one of {', '.join(Task.values)}"
        )
        owner = serializers.CharField(required=False)

    @extend_schema(parameters=[FilterSerializer], responses=LearnwareOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        qs = selectors.learnware_list(user=request.user, filters=filters.validated_data)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(LearnwareOutputSerializer(page, many=True).data)

    @extend_schema(request=UploadInputSerializer, responses={202: UploadOutputSerializer})
    def post(self, request: Request) -> Response:
        data = _read_upload(request)
        return idempotent(
            request,
            scope="upload",
            fingerprint=hashlib.sha256(data).hexdigest(),
            create=lambda: _accepted(*services.learnware_upload(user=request.user, data=data)),
        )


class LearnwareDetailApi(APIView):
    """GET a learnware; PATCH its card; DELETE it (soft)."""

    permission_classes = [IsAuthenticatedOrReadOnly]

    class InputSerializer(serializers.Serializer):
        description = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
        tags = serializers.ListField(
            child=serializers.CharField(max_length=200), required=False, max_length=30
        )
        license = serializers.CharField(required=False, max_length=64)
        visibility = serializers.ChoiceField(choices=[Visibility.PUBLIC, Visibility.PRIVATE], required=False)

    @extend_schema(responses=LearnwareOutputSerializer)
    def get(self, request: Request, learnware_id: int) -> Response:
        return Response(
            LearnwareOutputSerializer(
                selectors.learnware_get(user=request.user, learnware_id=learnware_id)
            ).data
        )

    @extend_schema(request=InputSerializer, responses=LearnwareOutputSerializer)
    def patch(self, request: Request, learnware_id: int) -> Response:
        data = self.InputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        if "license" in data.validated_data:
            from specs.packaging.manifest import KNOWN_LICENSES

            if data.validated_data["license"] not in KNOWN_LICENSES:
                raise ValidationFailed(
                    "license: not a known SPDX identifier",
                    code="learnware:user:license",
                    details={"license": "unknown"},
                )
        lw = selectors.learnware_get(user=request.user, learnware_id=learnware_id)
        lw = services.learnware_update(learnware=lw, user=request.user, data=data.validated_data)
        return Response(LearnwareOutputSerializer(lw).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, learnware_id: int) -> Response:
        lw = selectors.learnware_get(user=request.user, learnware_id=learnware_id)
        services.learnware_delete(learnware=lw, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class VersionListUploadApi(APIView):
    """GET the versions of a learnware; POST a package as its next version."""

    parser_classes = [MultiPartParser, FormParser]
    permission_classes = [IsAuthenticatedOrReadOnly]

    @extend_schema(responses=VersionOutputSerializer(many=True))
    def get(self, request: Request, learnware_id: int) -> Response:
        lw = selectors.learnware_get(user=request.user, learnware_id=learnware_id)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(
            selectors.version_list(user=request.user, learnware=lw), request, view=self
        )
        return paginator.get_paginated_response(VersionOutputSerializer(page, many=True).data)

    @extend_schema(request=UploadInputSerializer, responses={202: UploadOutputSerializer})
    def post(self, request: Request, learnware_id: int) -> Response:
        lw = selectors.learnware_get(user=request.user, learnware_id=learnware_id)
        data = _read_upload(request)
        return idempotent(
            request,
            scope=f"upload:{learnware_id}",
            fingerprint=hashlib.sha256(data).hexdigest(),
            create=lambda: _accepted(*services.learnware_upload(user=request.user, data=data, learnware=lw)),
        )


class VersionDetailApi(APIView):
    """One version with its checks log."""

    @extend_schema(responses=VersionOutputSerializer)
    def get(self, request: Request, learnware_id: int, number: int) -> Response:
        lw = selectors.learnware_get(user=request.user, learnware_id=learnware_id)
        return Response(
            VersionOutputSerializer(
                selectors.version_get(user=request.user, learnware=lw, number=number)
            ).data
        )


class VersionDownloadApi(APIView):
    """The version's package bytes; ``X-Checksum-SHA256`` carries the sha256 checked before sending."""

    @extend_schema(responses={(200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY)})
    def get(self, request: Request, learnware_id: int, number: int) -> FileResponse:
        lw = selectors.learnware_get(user=request.user, learnware_id=learnware_id)
        version = selectors.version_downloadable(user=request.user, learnware=lw, number=number)
        digest = hashlib.sha256()
        with version.package.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != version.artifact_sha256:
            raise ApplicationError(
                "the stored package does not match its sha256",
                code="download:app:checksum-mismatch",
                http_status=500,
            )
        response = FileResponse(
            version.package.open("rb"),
            content_type="application/zip",
            as_attachment=True,
            filename=f"{lw.slug}-v{version.number}.zip",
        )
        response["X-Checksum-SHA256"] = version.artifact_sha256
        response["Content-Length"] = str(version.artifact_size)
        services.learnware_downloaded(learnware_id=lw.id)
        return response


class FeatureSpaceOutputSerializer(serializers.Serializer):
    key = serializers.CharField()
    kind = serializers.CharField()
    schema = serializers.JSONField()
    dim = serializers.IntegerField()
    gamma = serializers.FloatField()
    standardization = serializers.JSONField()
    encoder_id = serializers.CharField()
    sketch_seed = serializers.IntegerField()
    sketch_dim = serializers.IntegerField()


class FeatureSpaceListApi(APIView):
    """Feature spaces you may see: what a client needs to compute an RKME in the right coordinates."""

    @extend_schema(responses=FeatureSpaceOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(
            FeatureSpaceOutputSerializer(selectors.feature_space_list(user=request.user), many=True).data
        )


class FeatureSpaceDetailApi(APIView):
    """One feature space by key."""

    @extend_schema(responses=FeatureSpaceOutputSerializer)
    def get(self, request: Request, key: str) -> Response:
        return Response(
            FeatureSpaceOutputSerializer(selectors.feature_space_get(user=request.user, key=key)).data
        )
