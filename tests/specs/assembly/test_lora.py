"""LoRA arithmetic against dense dW computations and PEFT's own merge."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from specs.assembly import LoRAAdapter, lora_negate, lora_ties, lora_weighted_sum, ties_merge
from specs.exceptions import IncompatibleSpaceError, SerializationError

MODULES = {"base_model.model.layer.0.q": (6, 5), "base_model.model.layer.0.v": (4, 5)}  # -> (out, in)
Q, V = list(MODULES)


def _adapter(rng: np.random.Generator, r: int, alpha: float = 8.0, base: str = "mini") -> LoRAAdapter:
    sd = {}
    for m, (out, inp) in MODULES.items():
        sd[f"{m}.lora_A.weight"] = rng.normal(size=(r, inp))
        sd[f"{m}.lora_B.weight"] = rng.normal(size=(out, r))
    return LoRAAdapter.from_state_dict(sd, base_model=base, lora_alpha=alpha)


def test_weighted_sum_concatenation_is_exact(rng: np.random.Generator) -> None:
    adapters = [_adapter(rng, 2), _adapter(rng, 3, alpha=3.0)]
    merged = lora_weighted_sum(adapters, [0.7, -1.3])
    for m, dW in merged.delta_weights().items():
        dense = 0.7 * adapters[0].delta_weights()[m] - 1.3 * adapters[1].delta_weights()[m]
        assert_allclose(dW, dense, rtol=1e-12, atol=1e-12)
        assert merged.factors[m][0].shape[0] == 5  # rank = 2 + 3


def test_svd_refactorisation_is_the_best_rank_r_approximation(rng: np.random.Generator) -> None:
    adapters = [_adapter(rng, 2), _adapter(rng, 2)]
    merged = lora_weighted_sum(adapters, [1.0, 0.5], rank=2)
    for m, dW in merged.delta_weights().items():
        dense = adapters[0].delta_weights()[m] + 0.5 * adapters[1].delta_weights()[m]
        U, S, Vt = np.linalg.svd(dense)
        assert_allclose(dW, (U[:, :2] * S[:2]) @ Vt[:2], atol=1e-10)


def test_negation_cancels(rng: np.random.Generator) -> None:
    a = _adapter(rng, 4)
    cancelled = lora_weighted_sum([a, lora_negate(a)])
    for dW in cancelled.delta_weights().values():
        assert np.abs(dW).max() < 1e-12


def brute_ties(deltas: list[np.ndarray], weights: list[float], density: float) -> np.ndarray:
    trimmed = []
    for w, d in zip(weights, deltas, strict=True):
        v = (w * d).ravel().copy()
        keep = max(1, int(density * v.size))
        order = sorted(range(v.size), key=lambda j: -abs(v[j]))
        for j in order[keep:]:
            v[j] = 0.0
        trimmed.append(v)
    out = np.zeros(trimmed[0].size)
    for j in range(out.size):
        sign = np.sign(sum(t[j] for t in trimmed))
        agree = [t[j] for t in trimmed if t[j] != 0 and np.sign(t[j]) == sign]
        out[j] = sum(agree) / len(agree) if agree else 0.0
    return out.reshape(deltas[0].shape)


@pytest.mark.parametrize("density", [0.2, 0.5, 1.0])
def test_ties_equals_brute_force(rng: np.random.Generator, density: float) -> None:
    adapters = [_adapter(rng, 2), _adapter(rng, 3), _adapter(rng, 1)]
    weights = [1.0, 0.5, 2.0]
    merged = lora_ties(adapters, weights, density=density)
    for m, dW in merged.delta_weights().items():
        deltas = [a.delta_weights()[m] for a in adapters]
        expected = brute_ties(deltas, weights, density)
        assert_allclose(ties_merge(deltas, weights, density=density), expected, atol=1e-12)
        assert_allclose(dW, expected, atol=1e-10)


def test_mismatches_are_refused_with_the_reason(rng: np.random.Generator) -> None:
    a = _adapter(rng, 2)
    with pytest.raises(IncompatibleSpaceError, match="base model 'other'"):
        lora_weighted_sum([a, _adapter(rng, 2, base="other")])
    fewer = LoRAAdapter(a.base_model, {Q: a.factors[Q]}, {Q: 1.0})
    with pytest.raises(IncompatibleSpaceError, match="other modules"):
        lora_ties([a, fewer])
    wrong = dict(a.factors)
    wrong[V] = (rng.normal(size=(2, 7)), rng.normal(size=(4, 2)))
    with pytest.raises(IncompatibleSpaceError, match="layer.0.v"):
        lora_weighted_sum([a, LoRAAdapter(a.base_model, wrong, dict(a.scaling))])


def test_adapter_round_trips_and_exports_peft_keys(rng: np.random.Generator) -> None:
    a = _adapter(rng, 3, alpha=6.0)
    b = LoRAAdapter.from_bytes(a.to_bytes())
    for m in MODULES:
        assert_allclose(b.delta_weights()[m], a.delta_weights()[m], rtol=1e-15)
    again = LoRAAdapter.from_state_dict(a.to_state_dict(), base_model="mini", lora_alpha=3.0)
    for m, dW in again.delta_weights().items():
        assert_allclose(dW, a.delta_weights()[m], rtol=1e-12)
    with pytest.raises(SerializationError):
        LoRAAdapter.from_bytes(b"\x00" * 16)


def test_delta_equals_peft_merged_weights() -> None:
    torch = pytest.importorskip("torch")
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    base = torch.nn.Sequential()
    base.add_module("q", torch.nn.Linear(5, 6, bias=False))
    W0 = base.q.weight.detach().clone()
    cfg = peft.LoraConfig(r=2, lora_alpha=6, target_modules=["q"], init_lora_weights=False)
    model = peft.get_peft_model(base, cfg)
    sd = {k: v.detach() for k, v in peft.get_peft_model_state_dict(model).items()}
    adapter = LoRAAdapter.from_state_dict(sd, base_model="toy", lora_alpha=6)
    merged = model.merge_and_unload().q.weight.detach()
    (dW,) = adapter.delta_weights().values()
    assert_allclose(dW, (merged - W0).numpy(), rtol=1e-5, atol=1e-6)
