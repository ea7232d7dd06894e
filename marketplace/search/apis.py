"""Search API: by data (RKME JSON or a small data file) and by text with structured filters."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.core.exceptions import ValidationFailed
from marketplace.learnwares.choices import Modality, Task
from marketplace.learnwares.selectors import feature_space_list
from marketplace.search.data import parse_rkme, spec_from_file
from marketplace.search.results import data_result_dict, text_result_dict
from marketplace.search.selectors import MIN_SIMILARITY, search_by_data, search_text
from marketplace.search.services import search_job_create

# Files up to this size are specced inside the request; larger ones go to a worker.
INLINE_MAX_BYTES = getattr(settings, "LWM_SEARCH_INLINE_MAX_BYTES", 256 * 1024)


class FiltersSerializer(serializers.Serializer):
    # Plain strings checked by hand: a second ChoiceField named "task" collides in the schema's enum names.
    modality = serializers.CharField(required=False, max_length=10, help_text=f"one of {', '.join(Modality.values)}")
    task = serializers.CharField(required=False, max_length=20, help_text=f"one of {', '.join(Task.values)}")
    license = serializers.CharField(required=False, max_length=64)
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=20)
    base_model = serializers.CharField(required=False, max_length=120)
    owner = serializers.CharField(required=False, max_length=150)

    def validate_modality(self, value: str) -> str:
        if value not in Modality.values:
            raise serializers.ValidationError(f"must be one of {Modality.values}")
        return value

    def validate_task(self, value: str) -> str:
        if value not in Task.values:
            raise serializers.ValidationError(f"must be one of {Task.values}")
        return value


class CardSerializer(serializers.Serializer):
    learnware_id = serializers.IntegerField()
    version_id = serializers.IntegerField()
    version = serializers.IntegerField()
    name = serializers.CharField()
    slug = serializers.CharField()
    owner = serializers.CharField()
    kind = serializers.CharField()
    modality = serializers.CharField()
    task = serializers.CharField()
    license = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    explanation = serializers.CharField()


class SearchDataResultSerializer(CardSerializer):
    mmd2 = serializers.FloatField()
    sketch_distance = serializers.FloatField()
    mixture_weight = serializers.FloatField(allow_null=True)

class SearchMixtureComponentSerializer(serializers.Serializer):
    version_id = serializers.IntegerField()
    weight = serializers.FloatField()

class SearchMixtureSerializer(serializers.Serializer):
    proposed = serializers.BooleanField()
    mmd2 = serializers.FloatField()
    best_single_mmd2 = serializers.FloatField()
    best_single_version_id = serializers.IntegerField()
    noise_mmd2 = serializers.FloatField(allow_null=True)
    components = SearchMixtureComponentSerializer(many=True)
    explanation = serializers.CharField()


class SearchByDataApi(APIView):
    """Find learnwares whose specification explains the user's data: exact MMD², sketch distance, mixture."""

    parser_classes = [JSONParser, MultiPartParser]

    class InputSerializer(FiltersSerializer):
        feature_space = serializers.SlugField(max_length=120)
        rkme = serializers.JSONField(required=False, help_text="specs.serialization RKME JSON (object or text)")
        file = serializers.FileField(required=False, help_text="CSV or NPZ rows in the space's columns")
        k = serializers.IntegerField(min_value=1, max_value=100, default=10)
        mixture = serializers.BooleanField(default=True)
        max_components = serializers.IntegerField(min_value=2, max_value=5, default=3)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if ("rkme" in attrs) == ("file" in attrs):
                raise serializers.ValidationError({"rkme": "send exactly one of 'rkme' and 'file'"})
            return attrs

    class OutputSerializer(serializers.Serializer):
        feature_space = serializers.CharField()
        generation = serializers.IntegerField()
        results = SearchDataResultSerializer(many=True)
        mixture = SearchMixtureSerializer(allow_null=True)

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, 202: OpenApiResponse(inline_serializer("SearchJobAccepted", {"job_id": serializers.UUIDField()}))},
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        filters = {f: v[f] for f in FiltersSerializer().fields if v.get(f)}
        params = {"k": v["k"], "mixture": v["mixture"], "max_components": v["max_components"], "filters": filters}
        if "file" in v and v["file"].size > INLINE_MAX_BYTES:
            job = search_job_create(user=request.user, feature_space=v["feature_space"], name=v["file"].name,
                                    content=v["file"].read(), params=params)
            return Response({"job_id": str(job.id)}, status=202)
        if "file" in v:
            space = feature_space_list(user=request.user).filter(key=v["feature_space"]).first()  # private spaces stay unseen
            if space is None:
                raise ValidationFailed(f"feature_space {v['feature_space']!r} does not exist", code="search:user:unknown-space")
            spec = spec_from_file(space=space, name=v["file"].name, content=v["file"].read())
        else:
            spec = parse_rkme(v["rkme"])
        result = search_by_data(user=request.user, feature_space=v["feature_space"], Z=spec.Z_, beta=spec.beta_,
                                n_samples=spec.n_samples_, **params)
        return Response(self.OutputSerializer(data_result_dict(result)).data)


class SearchTextResultSerializer(CardSerializer):
    similarity = serializers.FloatField(allow_null=True)
    text_rank = serializers.FloatField(allow_null=True)


class SearchApi(APIView):
    """Search cards by text (MiniLM embeddings, plus full text on PostgreSQL) and structured filters."""

    permission_classes = [AllowAny]

    class FilterSerializer(FiltersSerializer):
        q = serializers.CharField(required=False, allow_blank=True, max_length=500)
        tags = serializers.CharField(required=False, help_text="comma-separated; all must match")
        limit = serializers.IntegerField(min_value=1, max_value=100, default=20)
        min_similarity = serializers.FloatField(
            min_value=0.0, max_value=1.0, default=MIN_SIMILARITY,
            help_text="relevance cut-off: cards below this cosine match only by their words (0 keeps all)")

    class OutputSerializer(serializers.Serializer):
        generation = serializers.IntegerField()
        results = SearchTextResultSerializer(many=True)

    @extend_schema(parameters=[FilterSerializer], responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        data = self.FilterSerializer(data=request.query_params)
        data.is_valid(raise_exception=True)
        v = dict(data.validated_data)
        if v.get("tags"):
            v["tags"] = [t.strip() for t in v["tags"].split(",") if t.strip()]
        filters = {f: v[f] for f in FiltersSerializer().fields if v.get(f)}
        result = search_text(user=request.user, q=v.get("q", ""), filters=filters, k=v["limit"],
                             min_similarity=v["min_similarity"])
        return Response(self.OutputSerializer(text_result_dict(result)).data)
