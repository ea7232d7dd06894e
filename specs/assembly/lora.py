"""LoRA arithmetic on adapters of one base model: weighted sum, negation, TIES.

A LoRA adapter changes each target module's weight by ``dW = s B A`` with
``A`` (r, in), ``B`` (out, r) and ``s = lora_alpha / r``. Arithmetic is defined on dW
(Zhang et al., "Composing Parameter-Efficient Modules with Arithmetic Operations"):

* weighted sum ``sum_i w_i dW_i`` is exact as concatenated factors
  ``B = [w_1 s_1 B_1, ...]``, ``A = [A_1; ...]`` (rank = sum of ranks), or
  re-factorised by SVD to a target rank (PEFT's ``add_weighted_adapter`` "svd");
* negation ``-dW`` (unlearning) is the sum with weight -1;
* TIES (Yadav et al. 2023) trims each weighted dW to its largest-magnitude entries,
  elects a sign per entry from the sum, and averages the entries that agree with it.
  The result is dense, so it is returned by SVD factors (exact at full rank).

Keys follow PEFT's safetensors layout: ``<module>.lora_A.weight`` and
``<module>.lora_B.weight``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from specs.assembly._base import as_array
from specs.exceptions import (
    IncompatibleSpaceError,
    InvalidDataError,
    InvalidParameterError,
    SerializationError,
)
from specs.serialization import arrays_to_bytes, bytes_to_arrays

_A, _B = ".lora_A.weight", ".lora_B.weight"
FORMAT = "lwm-lora"
VERSION = 1


@dataclass(frozen=True)
class LoRAAdapter:
    """A LoRA adapter as factors per target module.

    Attributes
    ----------
    base_model : str
        Identifier of the base model the adapter was trained on.
    factors : dict of module name to (A (r, in), B (out, r))
    scaling : dict of module name to float
        ``lora_alpha / r`` of each module.
    """

    base_model: str
    factors: Mapping[str, tuple[np.ndarray, np.ndarray]]
    scaling: Mapping[str, float]

    @classmethod
    def from_state_dict(
        cls, state_dict: Mapping[str, Any], *, base_model: str, lora_alpha: float, r: int | None = None
    ) -> LoRAAdapter:
        """Build from PEFT keys; ``r`` defaults to each module's A rows (scaling alpha / r)."""
        modules = sorted({k[: -len(_A)] for k in state_dict if k.endswith(_A)})
        missing = [m for m in modules if m + _B not in state_dict]
        extra = [k for k in state_dict if k.endswith(_B) and k[: -len(_B)] not in modules]
        if not modules or missing or extra:
            raise InvalidDataError(f"state_dict needs lora_A/lora_B pairs; unpaired: {missing + extra}")
        factors, scaling = {}, {}
        for m in modules:
            A, B = as_array(state_dict[m + _A], m + _A), as_array(state_dict[m + _B], m + _B)
            if A.ndim != 2 or B.ndim != 2 or B.shape[1] != A.shape[0]:
                raise InvalidDataError(f"module {m!r}: A {A.shape} and B {B.shape} are not (r, in), (out, r)")
            factors[m] = (A, B)
            scaling[m] = float(lora_alpha) / float(r or A.shape[0])
        return cls(base_model, factors, scaling)

    def delta_weights(self) -> dict[str, np.ndarray]:
        """Dense ``dW = s B A`` per module, (out, in)."""
        return {m: self.scaling[m] * (B @ A) for m, (A, B) in self.factors.items()}

    def to_state_dict(self) -> dict[str, np.ndarray]:
        """PEFT keys with the scaling folded into B; load them with ``lora_alpha = r``."""
        out = {}
        for m, (A, B) in self.factors.items():
            out[m + _A], out[m + _B] = A, self.scaling[m] * B
        return out

    def to_bytes(self) -> bytes:
        """Serialise (JSON header + arrays, no pickle)."""
        header = {
            "format": FORMAT,
            "version": VERSION,
            "base_model": self.base_model,
            "scaling": dict(self.scaling),
        }
        return arrays_to_bytes(header, self.to_state_dict_raw())

    def to_state_dict_raw(self) -> dict[str, np.ndarray]:
        """PEFT keys with A and B as stored (scaling kept separately)."""
        out = {}
        for m, (A, B) in self.factors.items():
            out[m + _A], out[m + _B] = A, B
        return out

    @classmethod
    def from_bytes(cls, data: bytes) -> LoRAAdapter:
        """Inverse of :meth:`to_bytes`."""
        header, arrays = bytes_to_arrays(data)
        if header.get("format") != FORMAT or header.get("version") != VERSION:
            raise SerializationError(f"field 'format'/'version' must be {FORMAT!r}/{VERSION}")
        scaling = header.get("scaling")
        if not isinstance(scaling, dict) or not isinstance(header.get("base_model"), str):
            raise SerializationError("field 'scaling' or 'base_model' is missing")
        adapter = cls.from_state_dict(arrays, base_model=header["base_model"], lora_alpha=1.0)
        if set(scaling) != set(adapter.factors):
            raise SerializationError("field 'scaling' does not name the stored modules")
        return cls(adapter.base_model, adapter.factors, {m: float(v) for m, v in scaling.items()})


def check_compatible(adapters: Sequence[LoRAAdapter]) -> None:
    """Raise ``IncompatibleSpaceError`` unless all adapters share base model, modules, shapes."""
    if len(adapters) == 0:
        raise InvalidDataError("adapters must hold at least one adapter")
    first = adapters[0]
    for i, other in enumerate(adapters[1:], start=1):
        if other.base_model != first.base_model:
            raise IncompatibleSpaceError(
                f"adapters[{i}] is for base model {other.base_model!r}, adapters[0] for {first.base_model!r}"
            )
        if set(other.factors) != set(first.factors):
            diff = sorted(set(other.factors) ^ set(first.factors))
            raise IncompatibleSpaceError(f"adapters[{i}] targets other modules: {diff}")
        for m, (A, B) in other.factors.items():
            A0, B0 = first.factors[m]
            if A.shape[1] != A0.shape[1] or B.shape[0] != B0.shape[0]:
                raise IncompatibleSpaceError(
                    f"module {m!r}: adapters[{i}] maps {A.shape[1]}->{B.shape[0]}, "
                    f"adapters[0] {A0.shape[1]}->{B0.shape[0]}"
                )


def _weights(weights: Any, m: int) -> np.ndarray:
    w = np.ones(m) if weights is None else as_array(weights, "weights").reshape(-1)
    if w.shape[0] != m:
        raise InvalidParameterError(f"weights has {w.shape[0]} entries for {m} adapters")
    return w


def refactor(B: np.ndarray, A: np.ndarray, rank: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Best rank-``rank`` factors of ``B @ A`` (Eckart-Young) without forming it densely.

    QR of both factors reduces the SVD to a small (R, R) core, R = A's rows.
    ``rank=None`` keeps the numerical rank (exact). Returns ``(A' (r, in), B' (out, r))``.
    """
    Qb, Rb = np.linalg.qr(B)
    Qa, Ra = np.linalg.qr(A.T)
    U, S, Vt = np.linalg.svd(Rb @ Ra.T)
    tiny = S[0] * max(A.shape[1], B.shape[0]) * np.finfo(float).eps
    keep = int(np.count_nonzero(tiny < S)) if S[0] > 0 else 0
    r = max(1, keep if rank is None else min(rank, S.shape[0]))
    root = np.sqrt(S[:r])
    return (root[:, None] * (Vt[:r] @ Qa.T)), ((Qb @ U[:, :r]) * root)


def lora_weighted_sum(
    adapters: Sequence[LoRAAdapter], weights: Any = None, *, rank: int | None = None
) -> LoRAAdapter:
    """``sum_i w_i dW_i`` per module.

    Parameters
    ----------
    adapters : sequence of m LoRAAdapter on one base model
    weights : array-like of shape (m,), default all 1
    rank : int, optional
        None: concatenated factors, exact, rank = sum of ranks. An int: SVD to that rank.

    Returns
    -------
    LoRAAdapter with scaling 1.0 per module.
    """
    check_compatible(adapters)
    w = _weights(weights, len(adapters))
    factors = {}
    for m in adapters[0].factors:
        A = np.vstack([a.factors[m][0] for a in adapters])
        B = np.hstack([wi * a.scaling[m] * a.factors[m][1] for wi, a in zip(w, adapters, strict=True)])
        factors[m] = (A, B) if rank is None else refactor(B, A, rank)
    return LoRAAdapter(adapters[0].base_model, factors, dict.fromkeys(factors, 1.0))


def lora_negate(adapter: LoRAAdapter) -> LoRAAdapter:
    """``-dW`` per module (unlearning what the adapter taught)."""
    return LoRAAdapter(
        adapter.base_model, {m: (A, -B) for m, (A, B) in adapter.factors.items()}, dict(adapter.scaling)
    )


def ties_merge(
    deltas: Sequence[np.ndarray],
    weights: Any = None,
    *,
    density: float = 0.2,
) -> np.ndarray:
    """TIES on dense task vectors of one module.

    Parameters
    ----------
    deltas : sequence of m arrays of one shape
    weights : array-like of shape (m,), default all 1; applied before trimming
    density : float in (0, 1]
        Fraction of entries of each weighted delta kept (largest magnitudes).

    Returns
    -------
    ndarray of the deltas' shape: for each entry the mean of the kept, weighted values
    whose sign agrees with the sign of their sum (0 where none agrees).
    """
    if not 0.0 < density <= 1.0:
        raise InvalidParameterError(f"density must lie in (0, 1], got {density!r}")
    w = _weights(weights, len(deltas))
    stack = np.stack([wi * np.asarray(d, dtype=np.float64) for wi, d in zip(w, deltas, strict=True)])
    flat = stack.reshape(len(deltas), -1)
    keep = max(1, int(density * flat.shape[1]))
    if keep < flat.shape[1]:
        cut = np.argpartition(-np.abs(flat), keep - 1, axis=1)[:, keep:]
        np.put_along_axis(flat, cut, 0.0, axis=1)
    sign = np.sign(flat.sum(axis=0))
    agree = (np.sign(flat) == sign) & (flat != 0)
    count = agree.sum(axis=0)
    merged = np.divide((flat * agree).sum(axis=0), count, out=np.zeros(flat.shape[1]), where=count > 0)
    return merged.reshape(stack.shape[1:])


def lora_ties(
    adapters: Sequence[LoRAAdapter], weights: Any = None, *, density: float = 0.2, rank: int | None = None
) -> LoRAAdapter:
    """TIES merge of the adapters' dW per module, returned as SVD factors.

    ``rank=None`` keeps the numerical rank of the merged dW, so ``delta_weights`` of the
    result equals the dense TIES result to rounding; an int truncates to that rank.
    """
    check_compatible(adapters)
    deltas = [a.delta_weights() for a in adapters]
    factors = {}
    for m in adapters[0].factors:
        merged = ties_merge([d[m] for d in deltas], weights, density=density)
        U, S, Vt = np.linalg.svd(merged, full_matrices=False)
        tiny = S[0] * max(merged.shape) * np.finfo(float).eps
        nz = int(np.count_nonzero(tiny < S)) if S[0] > 0 else 1
        r = max(1, nz if rank is None else min(rank, S.shape[0]))
        root = np.sqrt(S[:r])
        factors[m] = (root[:, None] * Vt[:r], U[:, :r] * root)
    return LoRAAdapter(adapters[0].base_model, factors, dict.fromkeys(factors, 1.0))
