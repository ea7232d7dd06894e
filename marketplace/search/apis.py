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
from marketplace.learnwares.choices import Kind, Modality, Task
from marketplace.learnwares.selectors import feature_space_list
from marketplace.search.data import parse_rkme, rkme_unit_rms
from marketplace.search.file_search import file_search
from marketplace.search.results import data_result_dict, text_result_dict
from marketplace.search.selectors import MIN_SIMILARITY, search_by_data, search_text
from marketplace.search.services import search_job_create


class FiltersSerializer(serializers.Serializer):
    # Plain strings checked by hand: a second ChoiceField named "task" collides in the schema's enum names.
    modality = serializers.CharField(
        required=False, max_length=10, help_text=f"one of {', '.join(Modality.values)}"
    )
    task = serializers.CharField(required=False, max_length=20, help_text=f"one of {', '.join(Task.values)}")
    kind = serializers.CharField(required=False, max_length=10, help_text=f"one of {', '.join(Kind.values)}")
    license = serializers.CharField(required=False, max_length=64)
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=20)
    base_model = serializers.CharField(required=False, max_length=120)
    owner = serializers.CharField(required=False, max_length=150)

    def validate_modality(self, value: str) -> str:
        if value not in Modality.values:
            raise serializers.ValidationError(f"must be one of {Modality.values}")
        return value

    def validate_kind(self, value: str) -> str:
        if value not in Kind.values:
            raise serializers.ValidationError(f"must be one of {Kind.values}")
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
    units = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="table spaces: the comparison that ranked it ('same units' or 'unit-free'), both MMD², "
        "and the columns whose units differ from this learnware's (factor = your units per its unit)",
    )


class SearchMixtureComponentSerializer(serializers.Serializer):
    learnware_id = serializers.IntegerField()
    version_id = serializers.IntegerField()
    version = serializers.IntegerField()
    name = serializers.CharField()
    weight = serializers.FloatField()
    confidence = serializers.FloatField(
        help_text="share of the mixture's MMD² gain this component carries (leave-one-out)"
    )


class SearchMixtureSuggestionSerializer(serializers.Serializer):
    components = SearchMixtureComponentSerializer(many=True)
    mmd2 = serializers.FloatField()
    gain = serializers.FloatField()
    p_value = serializers.FloatField()
    explanation = serializers.CharField()


class SearchMixtureSerializer(serializers.Serializer):
    proposed = serializers.BooleanField()
    mmd2 = serializers.FloatField()
    best_single_mmd2 = serializers.FloatField()
    best_single_version_id = serializers.IntegerField()
    noise_mmd2 = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(
        allow_null=True, help_text="bootstrap p-value of the MMD² gain over the best single"
    )
    alpha = serializers.FloatField(help_text="level of the test: a mixture is proposed when p_value <= alpha")
    gain_quantile = serializers.FloatField(
        allow_null=True, help_text="MMD² gain noise alone reaches with probability alpha"
    )
    components = SearchMixtureComponentSerializer(many=True)
    suggestion = SearchMixtureSuggestionSerializer(
        allow_null=True, help_text="plausible but not significant mixture"
    )
    explanation = serializers.CharField()


class SearchByDataApi(APIView):
    """Find learnwares whose specification explains the user's data: exact MMD², sketch distance, mixture."""

    parser_classes = [JSONParser, MultiPartParser]

    class InputSerializer(FiltersSerializer):
        feature_space = serializers.SlugField(max_length=120)
        rkme = serializers.JSONField(
            required=False, help_text="specs.serialization RKME JSON (object or text)"
        )
        file = serializers.FileField(required=False, help_text="CSV or NPZ rows in the space's columns")
        k = serializers.IntegerField(min_value=1, max_value=100, default=10)
        mixture = serializers.BooleanField(default=True)
        max_components = serializers.IntegerField(min_value=2, max_value=5, default=3)
        cross_space = serializers.BooleanField(
            default=True,
            help_text="with a CSV header: also rank learnwares of other "
            "table spaces on the columns they share with yours (coverage counted)",
        )
        min_shared_columns = serializers.IntegerField(min_value=1, max_value=100, default=2)
        column_map = serializers.DictField(
            child=serializers.CharField(max_length=200),
            required=False,
            help_text='renames your CSV columns to the space\'s: {"departure_delay": "dep_delay"}',
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if ("rkme" in attrs) == ("file" in attrs):
                raise serializers.ValidationError({"rkme": "send exactly one of 'rkme' and 'file'"})
            if attrs.get("column_map") and "file" not in attrs:
                raise serializers.ValidationError({"column_map": "renames a file's columns: send a 'file'"})
            return attrs

    class OutputSerializer(serializers.Serializer):
        feature_space = serializers.CharField()
        generation = serializers.IntegerField()
        results = SearchDataResultSerializer(many=True)
        mixture = SearchMixtureSerializer(allow_null=True)
        cross_space = serializers.JSONField(
            required=False,
            allow_null=True,
            help_text="learnwares of spaces sharing columns with the file: compared and missing "
            "columns, coverage, MMD², its sampling noise (noise), "
            "score = coverage x exp(-max(MMD² - noise, 0) / noise)",
        )
        columns = serializers.JSONField(
            required=False,
            allow_null=True,
            help_text="how the file's columns met the space's: matched, missing, extra (ignored), coverage",
        )
        units = serializers.JSONField(
            required=False,
            allow_null=True,
            help_text="the same-units prior (table spaces): whether your rows fit a learnware in its own "
            "units (then ranked by MMD² in each learnware's units) or not (ranked unit-free)",
        )

    @extend_schema(
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            202: OpenApiResponse(inline_serializer("SearchJobAccepted", {"job_id": serializers.UUIDField()})),
        },
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        filters = {f: v[f] for f in FiltersSerializer().fields if v.get(f)}
        params = {
            "k": v["k"],
            "mixture": v["mixture"],
            "max_components": v["max_components"],
            "filters": filters,
        }
        if "file" in v and v["file"].size > settings.LWM_SEARCH_INLINE_MAX_BYTES:
            job = search_job_create(
                user=request.user,
                feature_space=v["feature_space"],
                name=v["file"].name,
                content=v["file"].read(),
                params={
                    **params,
                    "column_map": v.get("column_map") or {},
                    "cross_space": v["cross_space"],
                    "min_shared_columns": v["min_shared_columns"],
                },
            )
            return Response({"job_id": str(job.id)}, status=202)
        if "file" in v:
            space = (
                feature_space_list(user=request.user).filter(key=v["feature_space"]).first()
            )  # private spaces stay unseen
            if space is None:
                raise ValidationFailed(
                    f"feature_space {v['feature_space']!r} does not exist", code="search:user:unknown-space"
                )
            content = v["file"].read()
            body, _ = file_search(
                user=request.user,
                space=space,
                name=v["file"].name,
                content=content,
                column_map=v.get("column_map"),
                cross_space=v["cross_space"],
                min_shared=v["min_shared_columns"],
                params=params,
            )
            return Response(self.OutputSerializer(body).data)
        spec = parse_rkme(v["rkme"])
        result = search_by_data(
            user=request.user,
            feature_space=v["feature_space"],
            Z=spec.Z_,
            beta=spec.beta_,
            n_samples=spec.n_samples_,
            user_rms=rkme_unit_rms(v["rkme"], spec.Z_.shape[1]),
            **params,
        )
        return Response(self.OutputSerializer(data_result_dict(result)).data)


class SearchTextResultSerializer(CardSerializer):
    similarity = serializers.FloatField(allow_null=True)
    text_rank = serializers.FloatField(allow_null=True)


class SearchApi(APIView):
    """Search cards by text (MiniLM embeddings, plus full text on PostgreSQL) and structured filters."""

    permission_classes = [AllowAny]

    class FilterSerializer(FiltersSerializer):
        q = serializers.CharField(required=False, allow_blank=True, max_length=500)
        # The query string sends tags comma-separated (split in the view), unlike the JSON body's list.
        tags = serializers.CharField(required=False, help_text="comma-separated; all must match")  # type: ignore[assignment]
        limit = serializers.IntegerField(min_value=1, max_value=100, default=20)
        min_similarity = serializers.FloatField(
            min_value=0.0,
            max_value=1.0,
            default=MIN_SIMILARITY,
            help_text="relevance cut-off: cards below this cosine match only by their words (0 keeps all)",
        )

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
        # keys(), not the mapping: the DRF stub types iteration as Field, at run time both give the names.
        filters = {f: v[f] for f in FiltersSerializer().fields.keys() if v.get(f)}  # noqa: SIM118
        result = search_text(
            user=request.user,
            q=v.get("q", ""),
            filters=filters,
            k=v["limit"],
            min_similarity=v["min_similarity"],
        )
        return Response(self.OutputSerializer(text_result_dict(result)).data)
