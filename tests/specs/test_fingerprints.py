"""Probe sets and Arrow prototypes against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from specs.exceptions import DimensionMismatchError, InvalidDataError, InvalidParameterError
from specs.fingerprints import (
    arrow_prototypes,
    fingerprint_similarity,
    image_probe_set,
    lora_right_singular_vectors,
    probe_fingerprint,
    probe_sentences,
    sphere_probe_set,
    table_probe_set,
)


def test_probe_sets_are_reproducible_from_their_seed_and_differ_across_seeds():
    assert_allclose(table_probe_set(3, 10, random_state=5), table_probe_set(3, 10, random_state=5))
    assert not np.allclose(table_probe_set(3, 10, random_state=5), table_probe_set(3, 10, random_state=6))
    assert probe_sentences(4, random_state=1) == probe_sentences(4, random_state=1)
    assert_allclose(np.linalg.norm(sphere_probe_set(384, 7), axis=1), 1.0, rtol=1e-6)


def test_image_probes_have_the_requested_shape_and_range():
    images = image_probe_set((3, 10, 6), 5, random_state=2)
    assert images.shape == (5, 3, 10, 6) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    # each 4x4 coarse cell is constant after nearest upsampling: at most 16 distinct values per channel
    assert all(len(np.unique(images[i, c])) <= 16 for i in range(5) for c in range(3))


@pytest.mark.parametrize(("r", "d_in", "d_out", "top_k"), [(1, 5, 7, 1), (4, 30, 20, 2), (8, 16, 64, 8)])
def test_lora_singular_vectors_match_the_svd_of_the_full_update(r, d_in, d_out, top_k):
    rng = np.random.default_rng(r)
    A, B = rng.standard_normal((r, d_in)), rng.standard_normal((d_out, r))
    V, s = lora_right_singular_vectors(A, B, top_k)
    _, s_ref, vt_ref = np.linalg.svd(B @ A)
    assert_allclose(s, s_ref[:top_k], rtol=1e-10)
    for k in range(top_k):  # equal up to sign; ours has its largest |entry| positive
        ref = vt_ref[k] * np.sign(vt_ref[k][np.abs(vt_ref[k]).argmax()])
        assert_allclose(V[k], ref, atol=1e-8)
    assert_allclose(np.linalg.norm(B @ A @ V[0]), s[0], rtol=1e-10)


def test_arrow_prototypes_cover_every_layer_and_check_shapes():
    rng = np.random.default_rng(0)
    factors = {f"layer{i}": (rng.standard_normal((2, 6)), rng.standard_normal((4, 2))) for i in range(3)}
    protos = arrow_prototypes(factors)
    assert sorted(protos) == ["layer0", "layer1", "layer2"] and all(
        p.shape == (1, 6) for p in protos.values()
    )
    with pytest.raises(DimensionMismatchError):
        lora_right_singular_vectors(np.ones((2, 6)), np.ones((4, 3)))
    with pytest.raises(InvalidParameterError):
        lora_right_singular_vectors(np.ones((2, 6)), np.ones((4, 2)), top_k=3)


def test_fingerprints_refuse_nan_and_identical_models_have_similarity_one():
    out = np.random.default_rng(1).standard_normal((8, 3))
    assert fingerprint_similarity(out, out.copy()) == pytest.approx(1.0)
    assert fingerprint_similarity(out, -out) == pytest.approx(-1.0)
    with pytest.raises(InvalidDataError):
        probe_fingerprint(np.array([[np.nan]]))
