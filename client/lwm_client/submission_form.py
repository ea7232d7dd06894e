"""The request body of a submission: its fields, and the data or labelled sample it uploads."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from lwm_client import data as local
from lwm_client.errors import BadRequest, ConfigError
from lwm_client.models import FeatureSpace
from specs import RKMESpecification


def labelled_file(X: Any, y: Any, modality: str, *, with_texts: bool = False) -> tuple[str, bytes, str]:
    """The labelled sample as an NPZ upload: images as themselves, texts encoded here, tables as floats
    (with their column names when X is a DataFrame: the market matches them by name, and columns
    your data lack are then learned from these rows). ``with_texts`` (the texts themselves are
    uploaded as the data): labelled texts go as JSONL ``{"text", "label"}``, the one labelled format
    the market takes beside uploaded texts (it encodes them, and trains adapters on the texts)."""
    y = label_array(y)
    if len(y) != len(X):
        raise BadRequest(
            f"the labelled sample has {len(X)} rows and {len(y)} labels", code="data:user:labels-mismatch"
        )
    if modality == "text" and with_texts and len(X) and isinstance(X[0], str):
        lines = "".join(
            json.dumps({"text": str(t), "label": _label(v)}) + "\n" for t, v in zip(X, y, strict=True)
        )
        return ("labelled.jsonl", lines.encode(), "application/x-ndjson")
    if modality == "image":
        # The models take the images themselves: they travel as (n, C, H, W) in [0, 1], never encoded.
        npz = local.npz_bytes(images=local.read_images(np.asarray(X)), y=np.asarray(y))
    else:
        if modality == "text" and len(X) and isinstance(X[0], str):
            X = local.encode_texts(list(X))
        names = None
        if modality != "text":  # the market's checks here: words or NaN in a column are named before sending
            X, names, _ = local.read_table(X)
        named = {} if names is None else {"columns": np.asarray(names, dtype=str)}
        npz = local.npz_bytes(X=np.asarray(X, dtype=np.float64), y=np.asarray(y), **named)
    return ("labelled.npz", npz, "application/octet-stream")


def label_array(y: Any) -> np.ndarray:
    """Labels as an array the NPZ holds without pickle: a pandas Series of words with missing values (or a
    categorical one) is object-typed, so it becomes strings, a missing label (None, NaN) the empty string
    the market refuses by row (``submission:user:missing-labels``)."""
    values = np.asarray(y)
    if values.dtype.kind != "O":
        return values
    return np.asarray(
        ["" if v is None or (isinstance(v, float) and v != v) else str(_label(v)) for v in values.ravel()]
    )


def _label(value: Any) -> Any:
    """A label as JSON holds it: numpy scalars as Python numbers or strings."""
    return value.item() if isinstance(value, np.generic) else value


def submission_request(
    spec: RKMESpecification | tuple[RKMESpecification, FeatureSpace] | None,
    *,
    data: Any,
    labelled: tuple[Any, Any] | None,
    task: str,
    modality: str,
    requirements: dict[str, Any] | None,
    name: str,
    column_map: dict[str, str] | None,
) -> dict[str, Any]:
    """The keyword arguments of the ``POST submissions/`` call (``Client.submit`` documents the inputs):
    a JSON body when nothing is uploaded, else a multipart form with the files."""
    requirements = dict(requirements or {})
    if column_map:  # your column names -> the learnwares' (checked by the market, named in its errors)
        requirements["column_map"] = dict(column_map)
    if isinstance(spec, tuple):
        spec, space = spec
        requirements.setdefault("feature_space", space.key)
    if (spec is None) == (data is None):
        raise ConfigError(
            "submit needs exactly one of spec (an RKME computed here) and data (rows to upload)",
            code="submit:user:data",
        )
    fields: dict[str, Any] = {"task": task, "modality": modality, "requirements": requirements} | (
        {"name": name} if name else {}
    )
    files: dict[str, tuple[str, bytes, str]] = {}
    if data is not None:
        files["data"] = local.data_upload(data, modality)
    else:
        assert spec is not None
        fields["rkme"] = local.rkme_document(spec)
    if labelled is not None:
        files["labelled"] = labelled_file(*labelled, modality, with_texts=data is not None)
    if not files:
        return {"json": fields}
    # Multipart: the JSON fields travel as strings, which the server parses back.
    form = {**fields, "requirements": json.dumps(requirements)} | (
        {"rkme": json.dumps(fields["rkme"])} if "rkme" in fields else {}
    )
    return {"data": form, "files": files}
