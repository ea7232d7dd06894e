"""Functional fingerprints: seeded probe sets, probe outputs, and Arrow prototypes of LoRAs.

* A **probe set** is a seeded batch of inputs of one feature space; a model's
  outputs on it (its *probe fingerprint*) compare models functionally: two
  uploads of the same model have equal fingerprints, near-duplicates close ones.
* An **Arrow prototype** (Ostapenko et al., "Towards modular LLMs by building
  and reusing a library of LoRAs", 2024) of a LoRA layer is the top right
  singular vector of its update ``Delta W = B A`` (out x in): the input
  direction the adapter changes most, used to route inputs to adapters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from specs.exceptions import DimensionMismatchError, InvalidDataError, InvalidParameterError

_WORDS = [
    "market",
    "model",
    "data",
    "price",
    "river",
    "city",
    "music",
    "game",
    "team",
    "player",
    "energy",
    "network",
    "health",
    "school",
    "film",
    "story",
    "court",
    "law",
    "vote",
    "bank",
    "stock",
    "growth",
    "phone",
    "software",
    "chip",
    "science",
    "space",
    "food",
    "travel",
    "weather",
    "storm",
    "election",
    "minister",
    "company",
    "report",
    "season",
    "goal",
    "album",
    "actor",
    "device",
    "cloud",
]


def _rng(random_state: int) -> np.random.Generator:
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
        raise InvalidParameterError(f"random_state must be an int, got {random_state!r}")
    return np.random.default_rng(int(random_state))


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise InvalidParameterError(f"n must be a positive integer, got {n!r}")
    return int(n)


def table_probe_set(d: int, n: int = 64, *, random_state: int = 0) -> np.ndarray:
    """Standard normal probes in a table space's standardised coordinates.

    Returns
    -------
    ndarray (n, d) float64; map back to raw columns with the space's ``mean`` and ``scale``.
    """
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d <= 0:
        raise InvalidParameterError(f"d must be a positive integer, got {d!r}")
    return _rng(random_state).standard_normal((_check_n(n), int(d)))


def image_probe_set(shape: Sequence[int], n: int = 32, *, random_state: int = 0) -> np.ndarray:
    """Smooth random images: 4x4 uniform noise upsampled (nearest) to ``shape``.

    Returns
    -------
    ndarray (n, C, H, W) float32 in [0, 1].
    """
    if len(shape) != 3 or any(int(s) <= 0 for s in shape):
        raise InvalidParameterError(f"shape must be (C, H, W) of positive ints, got {shape!r}")
    c, h, w = (int(s) for s in shape)
    coarse = _rng(random_state).random((_check_n(n), c, 4, 4))
    rows = np.minimum(np.arange(h) * 4 // h, 3)
    cols = np.minimum(np.arange(w) * 4 // w, 3)
    return coarse[:, :, rows][:, :, :, cols].astype(np.float32)


def sphere_probe_set(d: int, n: int = 64, *, random_state: int = 0) -> np.ndarray:
    """Uniform points on the unit sphere of an encoder space (inputs of heads on that space).

    Returns
    -------
    ndarray (n, d) float32 of unit rows.
    """
    x = table_probe_set(d, n, random_state=random_state)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def probe_sentences(n: int = 16, *, random_state: int = 0, length: int = 8) -> list[str]:
    """Seeded sentences of ``length`` words drawn from a fixed vocabulary (adapter probes)."""
    rng = _rng(random_state)
    return [" ".join(rng.choice(_WORDS, size=length)) for _ in range(_check_n(n))]


def probe_fingerprint(outputs: object) -> np.ndarray:
    """A model's probe fingerprint: its outputs on the probe set, checked, as float32.

    Parameters
    ----------
    outputs : array-like (n, k) or (n,)

    Returns
    -------
    ndarray (n, k) float32

    Raises
    ------
    InvalidDataError
        Non-numeric, empty, of rank > 2, or non-finite outputs.
    """
    arr = np.asarray(outputs)
    if arr.dtype.kind not in "biuf" or arr.size == 0 or arr.ndim not in (1, 2):
        raise InvalidDataError(
            f"outputs must be a non-empty numeric (n, k) array, got {arr.dtype} {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise InvalidDataError("outputs contain NaN or infinity")
    return (arr[:, None] if arr.ndim == 1 else arr).astype(np.float32)


def fingerprint_similarity(a: object, b: object) -> float:
    """Cosine similarity of two centred fingerprints of the same probe set, in [-1, 1]."""
    fa, fb = probe_fingerprint(a).astype(np.float64), probe_fingerprint(b).astype(np.float64)
    if fa.shape != fb.shape:
        raise DimensionMismatchError(f"fingerprints differ in shape: {fa.shape} vs {fb.shape}")
    fa, fb = (fa - fa.mean()).ravel(), (fb - fb.mean()).ravel()
    denom = np.linalg.norm(fa) * np.linalg.norm(fb)
    return float(fa @ fb / denom) if denom > 0 else float(np.array_equal(fa, fb))


def lora_right_singular_vectors(A: object, B: object, top_k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Top right singular vectors and values of ``Delta W = B A`` without forming it.

    With B = Q_B R_B and A' = Q_A R_A (thin QR), ``B A = Q_B (R_B R_A') Q_A'``, so
    the SVD of the r x r core gives the SVD of Delta W at O((in + out) r^2) cost.

    Parameters
    ----------
    A : array-like (r, in)
    B : array-like (out, r)
    top_k : int, default 1

    Returns
    -------
    V : ndarray (top_k, in) float64, unit rows, sign fixed so the largest |entry| is positive.
    s : ndarray (top_k,) float64, descending singular values.
    """
    A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    if A.ndim != 2 or B.ndim != 2 or B.shape[1] != A.shape[0]:
        raise DimensionMismatchError(
            f"LoRA factors must be A (r, in) and B (out, r), got {A.shape} and {B.shape}"
        )
    if not (np.isfinite(A).all() and np.isfinite(B).all()):
        raise InvalidDataError("LoRA factors contain NaN or infinity")
    r = A.shape[0]
    if isinstance(top_k, bool) or not 1 <= top_k <= r:
        raise InvalidParameterError(f"top_k must be in [1, r={r}], got {top_k!r}")
    q_b, r_b = np.linalg.qr(B)
    q_a, r_a = np.linalg.qr(A.T)
    _, s, vt = np.linalg.svd(r_b @ r_a.T)
    V = (q_a @ vt.T).T[:top_k]
    signs = np.sign(V[np.arange(top_k), np.abs(V).argmax(axis=1)])
    return V * signs[:, None], s[:top_k]


def arrow_prototypes(factors: Mapping[str, tuple[object, object]], top_k: int = 1) -> dict[str, np.ndarray]:
    """Arrow prototypes of every LoRA layer.

    Parameters
    ----------
    factors : mapping layer name -> (A (r, in), B (out, r))
    top_k : int, default 1

    Returns
    -------
    dict layer name -> ndarray (top_k, in) float32
    """
    if not factors:
        raise InvalidDataError("an adapter needs at least one LoRA layer")
    return {
        name: lora_right_singular_vectors(A, B, top_k)[0].astype(np.float32)
        for name, (A, B) in sorted(factors.items())
    }
