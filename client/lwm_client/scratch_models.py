"""A model-selection package of the from-scratch winner (``scratch.json``, ``specs.scratch_linear``).

When a head on the chosen base model was worse than from scratch, the market delivers its from-scratch
baseline: TF-IDF + logistic regression (texts) or downscaled pixels + standardised logistic regression
(images), as data. ``Client.load`` / ``Predictor`` run it here with ``specs.scratch_linear`` (numpy
only: the package is read as JSON and safetensors, nothing in it runs), the implementation the market's
worker builds the package with; a package not verified from a market still goes to the isolated
process like every other (``lwm_client.isolated``). Refusals are the format's named errors
(``predict:user:scratch-*``) as client errors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lwm_client.errors import ConfigError, IntegrityError, LwmError, UnsafeArtifactError
from specs.scratch_linear import ScratchLinear, ScratchLinearError, read_scratch


def _client_error(exc: ScratchLinearError) -> LwmError:
    """``checksum``: the bytes were altered; ``input``: the caller's rows are not what the model reads;
    anything else: the package itself is not a model this client can run."""
    kind = {"checksum": IntegrityError, "input": ConfigError}.get(exc.reason, UnsafeArtifactError)
    return kind(str(exc), code=exc.code, details=exc.details)


class ScratchPredictor:
    """``predict_proba`` of a from-scratch package: texts (a list of strings) or images (n, C, H, W) in
    [0, 1] (uint8 0..255 is scaled; (n, H, W) is taken as grey) to class probabilities."""

    task = "classification"

    def __init__(self, files: dict[str, bytes]) -> None:
        try:
            self.model: ScratchLinear = read_scratch(files)
        except ScratchLinearError as exc:
            raise _client_error(exc) from None
        self.classes: list[str] = self.model.classes
        self.modality = self.model.modality

    def predict_proba(self, X: Any) -> np.ndarray:
        try:
            return self.model.predict_proba(X)
        except ScratchLinearError as exc:
            raise _client_error(exc) from None
