"""What a caller passes to ``Predictor.predict`` shaped into what a package takes: raw texts as a list
(one string is one text; a DataFrame gives its one text column), table rows as finite float64, and the row
width a package declares. Each refusal is named (``predict:user:*``), never a traceback deep inside."""

from __future__ import annotations

from typing import Any

import numpy as np

from lwm_client.errors import ConfigError
from specs.encoders import TEXT_DIM
from specs.packaging.choices import MINILM_NAMES


def texts_of(X: Any) -> list[str] | None:
    """Raw texts as a list (one string is one text, never its characters; a DataFrame's single column
    of strings is its texts); None when X holds no strings (rows already embedded). A text that is not a
    string, or no text at all, is refused by name."""
    if _is_frame(X):
        return _frame_texts(X)
    items = listed(X)
    if not any(isinstance(t, str) for t in items):
        if items and all(isinstance(t, (list, tuple, np.ndarray)) for t in items):
            return None  # embedded rows
        if not items:
            raise ConfigError("no texts to predict", code="predict:user:empty")
    bad = [i for i, t in enumerate(items) if not isinstance(t, str)]
    if bad:
        raise ConfigError(
            f"texts must be strings: item {bad[0]} is {type(items[bad[0]]).__name__}",
            code="predict:user:not-text",
            details={"items": bad[:10]},
        )
    return items


def _is_frame(X: Any) -> bool:
    return hasattr(X, "columns") and hasattr(X, "to_numpy") and not isinstance(X, np.ndarray)


def _frame_texts(X: Any) -> list[str]:
    """A DataFrame's texts: its one column, when every value in it is a string. Iterating a DataFrame
    yields its column names, which were once embedded and predicted as if they were the texts; any other
    frame is refused by name, since which column holds the texts cannot be known."""
    columns = [str(c) for c in X.columns]
    if len(columns) == 1:
        values = list(X.iloc[:, 0])
        if values and all(isinstance(v, str) for v in values):
            return values
    raise ConfigError(
        f"a DataFrame with columns {columns[:10]}: pass the texts themselves (a list of strings, or "
        "df[<the text column>])",
        code="predict:user:not-text",
        details={"columns": columns[:10]},
    )


def listed(X: Any) -> list[Any]:
    """One text given as a string is one text, not its characters."""
    return [X] if isinstance(X, str) else list(X)


def numbers(X: Any) -> np.ndarray:
    """Rows as float64; words are refused by name (``predict:user:not-numeric``)."""
    try:
        if hasattr(X, "to_numpy"):
            return np.asarray(X.to_numpy(dtype=np.float64))
        return np.asarray(X, dtype=np.float64)
    except (ValueError, TypeError):
        raise ConfigError(
            "the rows must be numbers (convert or drop the columns of words)", code="predict:user:not-numeric"
        ) from None


def finite_rows(X: np.ndarray) -> np.ndarray:
    """Rows without NaN or infinities: a model's output on them is meaningless (an assembly refuses them
    deep inside), so they are refused here, naming the first bad rows."""
    if X.size and not np.isfinite(X).all():
        rows = np.flatnonzero(~np.isfinite(X.reshape(X.shape[0], -1)).all(axis=1)) if X.ndim > 1 else [0]
        raise ConfigError(
            f"NaN or infinite values in rows {[int(r) for r in rows[:5]]}: fill or drop them",
            code="predict:user:nan",
        )
    return X


def row_width(recipe: dict[str, Any] | None, manifest: dict[str, Any]) -> int | None:
    """How many values each row holds, when the package says (an assembly of a table's columns
    checks its own ``input``); a model would fail deep inside on another width."""
    recipe = recipe or {}
    if recipe.get("input"):
        return None  # specs.recipe.space_rows names the columns
    rms = (recipe.get("transform") or {}).get("rms")
    if rms:
        return len(rms)
    columns = (manifest.get("input") or {}).get("columns")
    if columns:
        return len(columns)
    base = str(manifest.get("base_model") or "")
    if manifest.get("modality") == "text" and not recipe and (not base or base in MINILM_NAMES):
        return TEXT_DIM
    return None
