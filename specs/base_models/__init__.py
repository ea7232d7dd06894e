"""Base models (Hugging Face text and image encoders) and choosing one for a labelled task.

:func:`inspect_model_folder` checks a folder without running its code; :class:`LayerEmbedder`
embeds texts (``images.ImageLayerEmbedder``: images) at every layer with a per-(model, item)
cache; :func:`rank_base_models` orders candidates by layer-wise LogME / H-score / kNN as
TransformerRanker does.
"""

from specs.base_models.embedding import CachedLayerEmbedder, LayerEmbedder, LayerEmbeddings, text_key
from specs.base_models.embedding_cache import EmbeddingCache, cache_namespace, cached_rows
from specs.base_models.errors import (
    BaseModelFolderError,
    RemoteCodeError,
    UnknownArchitectureError,
    UnsafeWeightsError,
    WeightsMismatchError,
)
from specs.base_models.folder import (
    ALLOWED_MODEL_TYPES,
    BaseModelLimits,
    ModelFolder,
    files_digest,
    folder_digest,
    inspect_model_folder,
    load_text_encoder,
)
from specs.base_models.ranking import CandidateScores, LayerwiseScore, ModelRanking, rank_base_models

__all__ = [
    "ALLOWED_MODEL_TYPES",
    "BaseModelFolderError",
    "BaseModelLimits",
    "CachedLayerEmbedder",
    "CandidateScores",
    "EmbeddingCache",
    "LayerEmbedder",
    "LayerEmbeddings",
    "LayerwiseScore",
    "ModelFolder",
    "ModelRanking",
    "RemoteCodeError",
    "UnknownArchitectureError",
    "UnsafeWeightsError",
    "WeightsMismatchError",
    "cache_namespace",
    "cached_rows",
    "files_digest",
    "folder_digest",
    "inspect_model_folder",
    "load_text_encoder",
    "rank_base_models",
    "text_key",
]
