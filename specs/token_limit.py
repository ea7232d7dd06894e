"""The one token limit of every text forward pass on a base model: the sandboxed probe and layer calls,
model selection's ranking and training, the adapters' hook runtime and the client's package runtime.

One constant, because the embedding cache's keys hold it (``specs.base_models.embedding_cache``):
two copies that drifted apart would serve entries computed at one limit to a caller at the other.
"""

MAX_TOKENS = 128
