"""Random Fourier feature sketch of a reduced set: ``||phi(A) - phi(B)||^2 ~ MMD^2(A, B)``.

Bochner: ``exp(-gamma ||x - y||^2) = E_w cos(w'(x - y))`` with ``w ~ N(0, 2 gamma I)``.
With ``D / 2`` frequencies and paired cosine/sine features

    phi(Z, beta) = sqrt(2 / D) * [beta' cos(Z W'), beta' sin(Z W')]

the squared distance of two sketches is an unbiased estimate of MMD^2. Orthogonal
random features (Yu et al., 2016) draw the directions in blocks of d mutually
orthogonal rows (QR of a Gaussian matrix) and give each row a chi_d-distributed
norm, so every row is still N(0, 2 gamma I) marginally, but the estimate has a
smaller variance. The default D = 512 comes from ``benchmarks/sketch_error.py``
(see ``docs/specs.md``).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from specs._validation import (
    check_positive_float,
    check_positive_int,
    check_same_dim,
    check_spec,
    check_spec_batch,
)
from specs.exceptions import InvalidParameterError, SerializationError
from specs.kernels import BLOCK_ENTRIES


def _orthogonal_directions(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """n rows of N(0, I_d) marginals, orthogonal within each block of d rows."""
    blocks = []
    for _ in range(-(-n // d)):
        Q, R = np.linalg.qr(rng.standard_normal((d, d)))
        Q *= np.sign(np.diag(R))  # Haar-distributed rotation, not QR's sign convention
        norms = np.sqrt(rng.chisquare(d, size=d))
        blocks.append(Q.T * norms[:, None])
    return np.vstack(blocks)[:n]


def _iid_directions(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal((n, d))


class RFFSketch:
    """Seeded random-Fourier-feature map of one feature space.

    Parameters
    ----------
    d : int
        Dimension of the feature space.
    gamma : float
        Kernel bandwidth of the space.
    D : int, default 512
        Sketch dimension (even: D/2 frequencies, each giving a cosine and a sine).
    orthogonal : bool, default True
        Orthogonal random features instead of i.i.d. Gaussian ones.
    random_state : int, default 0
        Seed; together with (d, gamma, D, orthogonal) it fixes the map, so every
        process of the market builds the same one.

    Attributes
    ----------
    W_ : ndarray (D/2, d) float64
        Frequencies.
    """

    FORMAT = "lwm-rff-sketch"
    VERSION = 1

    def __init__(
        self, d: int, gamma: float, D: int = 512, *, orthogonal: bool = True, random_state: int = 0
    ) -> None:
        self.d = check_positive_int(d, "d")
        self.gamma = check_positive_float(gamma, "gamma")
        self.D = check_positive_int(D, "D")
        if self.D % 2:
            raise InvalidParameterError(f"D must be even (cosine and sine per frequency), got {D}")
        if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
            raise InvalidParameterError(
                f"random_state must be an int so the map can be rebuilt, got {random_state!r}"
            )
        self.orthogonal = bool(orthogonal)
        self.random_state = int(random_state)
        rng = np.random.default_rng(self.random_state)
        n_freq = self.D // 2
        draw = _orthogonal_directions if self.orthogonal else _iid_directions
        self.W_ = draw(n_freq, self.d, rng) * np.sqrt(2.0 * self.gamma)

    def _features(self, Z: np.ndarray, beta: np.ndarray) -> np.ndarray:
        proj = Z @ self.W_.T
        scale = np.sqrt(2.0 / self.D)
        return np.concatenate([beta @ np.cos(proj), beta @ np.sin(proj)]) * scale

    def transform(self, Z: object, beta: object) -> np.ndarray:
        """Sketch of one reduced set.

        Parameters
        ----------
        Z : array-like (K, d)
        beta : array-like (K,)

        Returns
        -------
        ndarray (D,) float32
        """
        Z, beta = check_spec(Z, beta)
        check_same_dim(Z.shape[1], self.d, "spec", "sketch")
        return self._features(Z, beta).astype(np.float32)

    def transform_batch(self, Zs: object, betas: object) -> np.ndarray:
        """Sketches of a padded batch (zero weights contribute nothing).

        Parameters
        ----------
        Zs : array-like (m, K, d)
        betas : array-like (m, K)

        Returns
        -------
        ndarray (m, D) float32
        """
        Zs, betas = check_spec_batch(Zs, betas)
        check_same_dim(Zs.shape[2], self.d, "candidates", "sketch")
        m, K, d = Zs.shape
        out = np.empty((m, self.D), dtype=np.float32)
        half, scale = self.D // 2, np.sqrt(2.0 / self.D)
        step = max(1, BLOCK_ENTRIES // max(K * half, 1))
        for s in range(0, m, step):
            proj = (Zs[s : s + step].reshape(-1, d) @ self.W_.T).reshape(-1, K, half)
            b = betas[s : s + step]
            out[s : s + step, :half] = np.einsum("mk,mkf->mf", b, np.cos(proj)) * scale
            out[s : s + step, half:] = np.einsum("mk,mkf->mf", b, np.sin(proj)) * scale
        return out

    def fingerprint(self) -> str:
        """sha256 of the frequencies: equal maps have equal fingerprints."""
        return hashlib.sha256(np.ascontiguousarray(self.W_, dtype="<f8").tobytes()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters; the frequencies are rebuilt from the seed on load."""
        return {
            "format": self.FORMAT,
            "version": self.VERSION,
            "d": self.d,
            "gamma": self.gamma,
            "D": self.D,
            "orthogonal": self.orthogonal,
            "random_state": self.random_state,
            "sha256": self.fingerprint(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RFFSketch:
        """Rebuild a map saved by :meth:`to_dict`.

        Raises
        ------
        SerializationError
            Wrong format/version, a bad field, or frequencies that no longer
            match the stored sha256 (the random generator changed: rebuild the index).
        """
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT:
            raise SerializationError(f"field 'format' must be {cls.FORMAT!r}")
        if data.get("version") != cls.VERSION:
            raise SerializationError(f"field 'version' must be {cls.VERSION}, got {data.get('version')!r}")
        for key in ("d", "gamma", "D", "orthogonal", "random_state", "sha256"):
            if key not in data:
                raise SerializationError(f"field {key!r} is missing")
        try:
            sketch = cls(
                data["d"],
                data["gamma"],
                data["D"],
                orthogonal=data["orthogonal"],
                random_state=data["random_state"],
            )
        except InvalidParameterError as exc:
            raise SerializationError(f"bad field: {exc}") from exc
        if sketch.fingerprint() != data["sha256"]:
            raise SerializationError(
                "field 'sha256' does not match the rebuilt frequencies; rebuild the sketches"
            )
        return sketch
