"""Shared plumbing of the assembly methods (private): member outputs and serialisation.

Assemblies operate on what learnwares *output*, never on the learnwares themselves, so
the library stays pure: callers pass arrays, or callables ``f(X) -> array`` that the
assembly invokes on the rows it needs.

Every fitted assembly serialises to the JSON-header + named-arrays format of
:mod:`specs.serialization` (safetensors layout, no pickle) with the header fields
``format = "lwm-assembly"``, ``version`` and ``kind``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import numpy as np

from specs.exceptions import (
    DimensionMismatchError,
    InvalidDataError,
    InvalidParameterError,
    NotFittedError,
    SerializationError,
)
from specs.serialization import arrays_to_bytes, bytes_to_arrays

FORMAT = "lwm-assembly"
VERSION = 1
TASKS = ("classification", "regression")

Member = np.ndarray | Callable[[np.ndarray], Any]
T = TypeVar("T", bound="Assembly")
_REGISTRY: dict[str, type[Assembly]] = {}


def as_array(value: Any, name: str) -> np.ndarray:
    """numpy float64 view of an array or tensor, rejecting NaN/inf."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise InvalidDataError(f"{name} contains NaN or infinite values")
    return arr


def collect_outputs(members: Sequence[Member], X: Any = None, rows: Any = None) -> list[np.ndarray]:
    """Evaluate members: arrays are taken as they are, callables are called on X.

    Parameters
    ----------
    members : sequence of m arrays (n, ...) or callables ``f(X) -> (n, ...)``
    X : array-like of shape (n, d), optional
        Needed when a member is callable.
    rows : index array, optional
        Only these rows (arrays are sliced, callables get ``X[rows]``).
    """
    if len(members) == 0:
        raise InvalidDataError("members must hold at least one learnware output")
    out = []
    for i, member in enumerate(members):
        if callable(member):
            if X is None:
                raise InvalidParameterError(f"members[{i}] is callable, so X is required")
            Xs = np.asarray(X) if rows is None else np.asarray(X)[rows]
            out.append(as_array(member(Xs), f"members[{i}](X)"))
        else:
            arr = as_array(member, f"members[{i}]")
            out.append(arr if rows is None else arr[rows])
    if len({o.shape[0] for o in out}) != 1:
        raise DimensionMismatchError(f"members give different numbers of rows: {[o.shape for o in out]}")
    return out


def as_probabilities(output: np.ndarray, n_classes: int, name: str) -> np.ndarray:
    """(n, C) probabilities, or (n,) integer labels turned into one-hot votes."""
    if output.ndim == 1:
        labels = output.astype(np.int64)
        if not np.array_equal(labels, output) or labels.min() < 0 or labels.max() >= n_classes:
            raise InvalidDataError(f"{name} must hold integer labels in [0, {n_classes})")
        probs = np.zeros((output.shape[0], n_classes))
        probs[np.arange(output.shape[0]), labels] = 1.0
        return probs
    if output.ndim != 2 or output.shape[1] != n_classes:
        raise DimensionMismatchError(f"{name} has shape {output.shape}, expected (n, {n_classes})")
    return output


def as_regression(output: np.ndarray, name: str) -> np.ndarray:
    """(n, t) regression outputs from (n,) or (n, t)."""
    if output.ndim == 1:
        return output[:, None]
    if output.ndim != 2:
        raise DimensionMismatchError(f"{name} must be (n,) or (n, t), got {output.shape}")
    return output


def check_task(task: str) -> str:
    if task not in TASKS:
        raise InvalidParameterError(f"task must be one of {TASKS}, got {task!r}")
    return task


class Assembly:
    """Base of fitted assemblies: no-pickle ``to_bytes`` / ``from_bytes`` / ``save`` / ``load``.

    Subclasses set ``kind`` and implement ``_state`` (header fields, named arrays) and
    ``_from_state``; ``_fitted_attribute`` names the attribute that ``fit`` sets.
    """

    kind: ClassVar[str] = ""
    _fitted_attribute: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _REGISTRY[cls.kind] = cls

    def _check_fitted(self) -> None:
        if not hasattr(self, self._fitted_attribute):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit first")

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        raise NotImplementedError

    @classmethod
    def _from_state(cls, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> Self:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Serialise the fitted object (JSON header + arrays, safetensors layout)."""
        self._check_fitted()
        header, arrays = self._state()
        return arrays_to_bytes({"format": FORMAT, "version": VERSION, "kind": self.kind, **header}, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Inverse of :meth:`to_bytes`; on the base class it dispatches on ``kind``."""
        header, arrays = bytes_to_arrays(data)
        if header.get("format") != FORMAT or header.get("version") != VERSION:
            raise SerializationError(
                f"field 'format'/'version' must be {FORMAT!r}/{VERSION}, got "
                f"{header.get('format')!r}/{header.get('version')!r}"
            )
        kind = header.get("kind")
        target = _REGISTRY.get(kind) if isinstance(kind, str) else None
        if target is None or (cls is not Assembly and target is not cls):
            raise SerializationError(f"field 'kind' is {kind!r}, cannot load it as {cls.__name__}")
        try:
            return target._from_state(header, arrays)  # type: ignore[return-value]
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, SerializationError):
                raise
            raise SerializationError(f"{kind} payload is malformed: {exc!r}") from exc

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_bytes` to ``path`` (via a temporary file and an atomic rename)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(self.to_bytes())
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read an object written by :meth:`save`."""
        return cls.from_bytes(Path(path).read_bytes())
