"""A published base model's encoder space on the client: name it and embed texts in it.

A text model (a head on sentence embeddings) may name the base model it was trained on
(``base_model: <key>`` in its manifest); its RKME then lives in that base's space ``text-<key>``:
the base's declared pooling (``mean``/``cls``) of its last hidden state, L2-normalised,
``hidden_size`` wide (``docs/package-format.md``). :func:`base_model_space` gives that space (the
server's row once something was published in it, else built from the base's manifest), and
:func:`embed_with_base` embeds texts with the base here, as the market's sandbox does
(``specs.adapter_bases.pooled_embeddings`` without an adapter), from the base's own package
(downloaded and verified, or given as ``base=``). The market's MiniLM keeps its own text space.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from lwm_client import data as local
from lwm_client.errors import ConfigError, NotFound
from lwm_client.models import FeatureSpace, Learnware
from lwm_client.spaces import ENCODER_SPACES
from specs import RKMESpecification
from specs.adapter_bases import encoder_space_key
from specs.packaging.choices import MINILM_NAMES

if TYPE_CHECKING:
    from lwm_client.client import Client


def base_learnware(client: Client, key: str) -> Learnware:
    """The ``kind: base_model`` learnware registered as ``key`` that has a published version.

    Raises
    ------
    NotFound
        ``space:user:unknown-base-model``: no such base visible to this user, or none published.
    """
    for hit in client.search(kind="base_model", base_model=key, limit=5).results:
        lw = client.learnware(hit.learnware_id)
        if lw.base_model == key and lw.latest_version is not None:
            return lw
    raise NotFound(
        f"no published base model {key!r} is visible to you", code="space:user:unknown-base-model", status=404
    )


def base_model_space(client: Client, key: str) -> FeatureSpace:
    """The encoder space of base model ``key``: the MiniLM text space for its names, else ``text-<key>``."""
    if key in MINILM_NAMES:
        return client.encoder_space("text")
    wanted = encoder_space_key(key)
    found = next((s for s in client.feature_spaces() if s.key == wanted), None)
    if found is not None:
        return found
    lw = base_learnware(client, key)
    manifest = client.version(lw.id, int(lw.latest_version or 0)).manifest
    pooling = str(manifest.get("pooling") or "mean")
    return FeatureSpace(
        key=wanted,
        kind="text",
        dim=int(manifest["output"]["dim"]),
        gamma=ENCODER_SPACES["text"].gamma,  # unit vectors: gamma 1, as the MiniLM space
        schema={"encoder": key, "pooling": pooling, "normalize": True},
        encoder_id=key,
    )


def _base_folder(client: Client, space: FeatureSpace, base: str | Path | None) -> Path:
    """A folder with the base's Hugging Face files: ``base`` (a folder or the base's package zip), else
    the base's newest package, downloaded (verified against its sha256) to a temporary folder."""
    from lwm_client.base_heads import unpack_base_package

    if base is not None and Path(base).is_dir():
        return Path(base)
    if base is None:
        lw = base_learnware(client, str(space.encoder_id or space.schema["encoder"]))
        base = client.download(lw.id, dest=Path(tempfile.mkdtemp(prefix="lwm-base-zip-"))).path
    return unpack_base_package(Path(base))


def embed_with_base(
    client: Client, texts: Sequence[str], space: FeatureSpace, *, base: str | Path | None = None
) -> np.ndarray:
    """(n, space.dim) float64 unit rows: ``texts`` embedded by the space's base model, here.

    The folder is checked and loaded by ``specs.base_models`` (safetensors only, no remote code,
    ``local_files_only``), as model-selection heads load theirs."""
    from specs.adapter_bases import pooled_embeddings
    from specs.base_models import inspect_model_folder, load_text_encoder

    folder = inspect_model_folder(_base_folder(client, space, base))
    E = pooled_embeddings(
        load_text_encoder(folder), list(texts), pooling=str(space.schema.get("pooling", "mean"))
    )
    if E.shape[1] != space.dim:
        raise ConfigError(
            f"the base model's folder embeds {E.shape[1]}-wide vectors; space {space.key} has {space.dim}",
            code="space:user:base-model-width",
        )
    return E


class EncoderSpacesMixin:
    """``Client``'s encoder spaces (image, MiniLM text, a published base's text space) and the RKMEs of
    images and texts in them, computed here (only the RKME leaves)."""

    feature_spaces: Callable[[], list[FeatureSpace]]

    def encoder_space(self, kind: str, *, base_model: str | None = None) -> FeatureSpace:
        """The server's default space for ``kind`` (image-conv-0 only if named), else its fixed parameters;
        ``base_model``: that published text base's space ``text-<key>`` (:mod:`lwm_client.base_spaces`)."""
        if base_model:
            return base_model_space(cast("Client", self), base_model)
        default = ENCODER_SPACES[kind].key
        found = next((s for s in self.feature_spaces() if s.key == default), None)
        return found or ENCODER_SPACES[kind]

    def spec_images(
        self, source: Any, *, space: FeatureSpace | None = None
    ) -> tuple[RKMESpecification, FeatureSpace]:
        """The RKME of images ((n, C, H, W) array, a folder or PNG/JPEG paths) in the default image space."""
        space = space or self.encoder_space("image")
        return local.spec_encoded(local.encode_images(local.read_images(source), space), space), space

    def spec_texts(
        self,
        source: Any,
        *,
        space: FeatureSpace | None = None,
        base_model: str | None = None,
        base: Any = None,
    ) -> tuple[RKMESpecification, FeatureSpace]:
        """The RKME of texts (list, JSONL with "text", or one per line) in the MiniLM text space, or in
        ``base_model``'s space, embedded here by that base (its package downloaded, or ``base=``)."""
        space = space or self.encoder_space("text", base_model=base_model)
        texts = local.read_texts(source)
        if space.key == ENCODER_SPACES["text"].key:
            return local.spec_encoded(local.encode_texts(texts), space), space
        return local.spec_encoded(
            embed_with_base(cast("Client", self), texts, space, base=base), space
        ), space
