"""Arrow routing over a library of LoRA adapters (Ostapenko et al., "Towards Modular
LLMs by Building and Reusing a Library of LoRAs", 2024).

For each target module, adapter i's prototype is the top right-singular vector v_i of
its dW_i: the input direction dW_i amplifies most. A token's hidden state h (the input
of that module) is routed to the top-k adapters by ``|<v_i, h>|`` (absolute, because a
singular vector's sign is arbitrary), with softmax weights over those k scores divided
by a temperature; the layer's adapter output is ``sum_i w_i(h) dW_i h``. No training and
no labels: only the adapters themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from specs.assembly._base import Assembly, as_array
from specs.assembly.lora import LoRAAdapter, check_compatible
from specs.exceptions import DimensionMismatchError, InvalidParameterError


def top_right_singular_vector(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Unit top right-singular vector (in,) of ``B @ A``, sign fixed (largest entry > 0).

    QR of B (out, r) leaves the small (r, in) matrix ``R A`` with the same right
    singular vectors, so dW is never formed. The scaling s > 0 does not change them.
    """
    _, R = np.linalg.qr(B)
    v = np.linalg.svd(R @ A, full_matrices=False)[2][0]
    return v if v[np.argmax(np.abs(v))] > 0 else -v


def arrow_prototypes(adapters: Sequence[LoRAAdapter]) -> dict[str, np.ndarray]:
    """Prototypes per module, (m, in): row i is adapter i's top right-singular vector."""
    check_compatible(adapters)
    return {
        module: np.stack([top_right_singular_vector(*a.factors[module]) for a in adapters])
        for module in adapters[0].factors
    }


def arrow_routing_weights(
    prototypes: np.ndarray, hidden: Any, *, top_k: int = 1, temperature: float = 1.0
) -> np.ndarray:
    """Routing weights of tokens over adapters.

    Parameters
    ----------
    prototypes : ndarray of shape (m, h)
    hidden : array-like of shape (..., h)
        Token hidden states at the module's input.
    top_k : int, default=1
    temperature : float, default=1.0

    Returns
    -------
    ndarray of shape (..., m)
        Softmax of ``|<v_i, h>| / temperature`` over each token's top-k adapters, 0 elsewhere;
        ties in the score go to the lower adapter index.
    """
    m = prototypes.shape[0]
    if not 1 <= top_k <= m:
        raise InvalidParameterError(f"top_k must lie in [1, {m}], got {top_k!r}")
    if not temperature > 0:
        raise InvalidParameterError(f"temperature must be > 0, got {temperature!r}")
    H = as_array(hidden, "hidden")
    if H.shape[-1] != prototypes.shape[1]:
        raise DimensionMismatchError(f"hidden has width {H.shape[-1]}, prototypes {prototypes.shape[1]}")
    scores = np.abs(H @ prototypes.T) / temperature
    order = np.argsort(-scores, axis=-1, kind="stable")[..., :top_k]
    chosen = np.take_along_axis(scores, order, axis=-1)
    e = np.exp(chosen - chosen[..., :1])  # the first is the maximum
    weights = np.zeros_like(scores)
    np.put_along_axis(weights, order, e / e.sum(axis=-1, keepdims=True), axis=-1)
    return weights


class ArrowRouter(Assembly):
    """A fitted Arrow router over a LoRA library.

    Parameters
    ----------
    top_k : int, default=1
    temperature : float, default=1.0

    Attributes
    ----------
    prototypes_ : dict of module to ndarray (m, in)
    adapters_ : list of LoRAAdapter
    """

    kind = "arrow_router"
    _fitted_attribute = "prototypes_"

    def __init__(self, *, top_k: int = 1, temperature: float = 1.0) -> None:
        if top_k < 1 or not temperature > 0:
            raise InvalidParameterError(f"need top_k >= 1 and temperature > 0, got {top_k}, {temperature}")
        self.top_k, self.temperature = int(top_k), float(temperature)

    def fit(self, adapters: Sequence[LoRAAdapter]) -> ArrowRouter:
        """Compute the prototypes of adapters on one base model (no data needed)."""
        self.prototypes_ = arrow_prototypes(adapters)
        if self.top_k > len(adapters):
            raise InvalidParameterError(f"top_k={self.top_k} exceeds the {len(adapters)} adapters")
        self.adapters_ = list(adapters)
        return self

    def _module(self, module: str) -> np.ndarray:
        self._check_fitted()
        if module not in self.prototypes_:
            raise InvalidParameterError(f"module {module!r} is not a target of the library")
        return self.prototypes_[module]

    def routing_weights(self, module: str, hidden: Any) -> np.ndarray:
        """Weights (..., m) of tokens ``hidden`` (..., in) at ``module``."""
        return arrow_routing_weights(
            self._module(module), hidden, top_k=self.top_k, temperature=self.temperature
        )

    def forward(self, module: str, hidden: Any) -> np.ndarray:
        """Routed adapter output ``sum_i w_i(h) s_i B_i A_i h``, shape (..., out).

        Add it to the frozen base layer's output ``W h``.
        """
        W = self.routing_weights(module, hidden)
        H = as_array(hidden, "hidden")
        out = 0.0
        for i, adapter in enumerate(self.adapters_):
            A, B = adapter.factors[module]
            out = out + W[..., i : i + 1] * (adapter.scaling[module] * ((H @ A.T) @ B.T))
        return np.asarray(out)

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        header = {
            "top_k": self.top_k,
            "temperature": self.temperature,
            "base_model": self.adapters_[0].base_model,
            "scaling": [dict(a.scaling) for a in self.adapters_],
        }
        arrays = {
            f"{i}/{key}": value
            for i, a in enumerate(self.adapters_)
            for key, value in a.to_state_dict_raw().items()
        }
        return header, arrays

    @classmethod
    def _from_state(cls, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> ArrowRouter:
        adapters = []
        for i, scaling in enumerate(header["scaling"]):
            prefix = f"{i}/"
            sd = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            a = LoRAAdapter.from_state_dict(sd, base_model=header["base_model"], lora_alpha=1.0)
            adapters.append(LoRAAdapter(a.base_model, a.factors, {m: float(s) for m, s in scaling.items()}))
        return cls(top_k=header["top_k"], temperature=header["temperature"]).fit(adapters)
