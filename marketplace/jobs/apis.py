from __future__ import annotations

import uuid

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.core.exceptions import NotFound
from marketplace.jobs.models import Job
from marketplace.jobs.selectors import job_get_visible
from marketplace.jobs.services import job_cancel


class JobOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "status",
            "stage",
            "progress",
            "message",
            "log",
            "error",
            "result",
            "attempts",
            "heartbeat_at",
            "created_at",
            "started_at",
            "finished_at",
            "cancel_requested",
        ]


class JobDetailApi(APIView):
    """A job's status, stage, progress and outcome (owner or staff only)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=JobOutputSerializer)
    def get(self, request: Request, job_id: uuid.UUID) -> Response:
        job = job_get_visible(job_id=job_id, user=request.user)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        return Response(JobOutputSerializer(job).data)


class JobCancelApi(APIView):
    """Ask a job to stop."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses=JobOutputSerializer)
    def post(self, request: Request, job_id: uuid.UUID) -> Response:
        job = job_cancel(job_id=job_id, user=request.user)
        return Response(JobOutputSerializer(job).data)
