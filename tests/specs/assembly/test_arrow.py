"""Arrow routing on adapters whose input directions are known."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from specs.assembly import ArrowRouter, Assembly, LoRAAdapter, arrow_prototypes, arrow_routing_weights

D_IN, D_OUT, M = 16, 12, 4


def _library(rng: np.random.Generator) -> tuple[list[LoRAAdapter], np.ndarray]:
    """Adapter i amplifies direction v_i strongly and a few random directions weakly."""
    V = np.linalg.qr(rng.normal(size=(D_IN, D_IN)))[0][:, :M].T  # orthonormal v_i
    adapters = []
    for i in range(M):
        A = np.vstack([5.0 * V[i], 0.3 * rng.normal(size=(2, D_IN))])
        B = rng.normal(size=(D_OUT, 3))
        B[:, 0] *= 3.0
        sd = {"enc.q.lora_A.weight": A, "enc.q.lora_B.weight": B}
        adapters.append(LoRAAdapter.from_state_dict(sd, base_model="mini", lora_alpha=4.0))
    return adapters, V


def test_prototypes_are_top_right_singular_vectors(rng: np.random.Generator) -> None:
    adapters, _ = _library(rng)
    protos = arrow_prototypes(adapters)["enc.q"]
    for i, a in enumerate(adapters):
        v = np.linalg.svd(a.delta_weights()["enc.q"])[2][0]
        assert_allclose(abs(protos[i] @ v), 1.0, rtol=1e-10)  # equal up to sign


def test_tokens_from_adapter_i_route_to_adapter_i(rng: np.random.Generator) -> None:
    adapters, V = _library(rng)
    router = ArrowRouter(top_k=1).fit(adapters)
    owner = rng.integers(0, M, 200)
    sign = rng.choice([-1.0, 1.0], size=(200, 1))  # Arrow must not care about the sign
    tokens = sign * 3.0 * V[owner] + 0.3 * rng.normal(size=(200, D_IN))
    weights = router.routing_weights("enc.q", tokens.reshape(10, 20, D_IN)).reshape(200, M)
    assert_array_equal(weights.argmax(axis=1), owner)
    assert_allclose(weights.sum(axis=1), 1.0)


def test_top_k_softmax_and_forward_equal_brute_force(rng: np.random.Generator) -> None:
    adapters, _ = _library(rng)
    protos = arrow_prototypes(adapters)["enc.q"]
    H = rng.normal(size=(7, D_IN))
    w = arrow_routing_weights(protos, H, top_k=2, temperature=0.5)
    for t in range(7):
        s = np.abs(protos @ H[t]) / 0.5
        top = np.argsort(-s)[:2]
        expected = np.zeros(M)
        expected[top] = np.exp(s[top]) / np.exp(s[top]).sum()
        assert_allclose(w[t], expected, rtol=1e-12)
    router = ArrowRouter(top_k=2, temperature=0.5).fit(adapters)
    dense = np.stack([a.delta_weights()["enc.q"] for a in adapters])
    expected_out = np.einsum("tm,moi,ti->to", w, dense, H)
    assert_allclose(router.forward("enc.q", H), expected_out, rtol=1e-10)
    loaded = Assembly.from_bytes(router.to_bytes())
    assert_allclose(loaded.forward("enc.q", H), expected_out, rtol=1e-10)
    with pytest.raises(Exception, match="top_k"):
        arrow_routing_weights(protos, H, top_k=5)
