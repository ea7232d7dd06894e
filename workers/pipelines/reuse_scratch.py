"""A model trained from scratch on the user's labelled rows, as a TorchScript learnware member.

When the evaluate stage measures that a from-scratch model beats every reuse of the market,
that model is what the user gets, packaged like an assembly of one member so ``download``
and ``predict`` work the same way. Only the two from-scratch families of the evaluate stage
are converted: a standardiser followed by a linear model (logistic regression, ridge) or a
ReLU MLP (sklearn's ``MLPClassifier`` / ``MLPRegressor``); the module reproduces sklearn's
``predict_proba`` / ``predict`` up to float32 rounding.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from sklearn.pipeline import Pipeline


class ScratchNet(torch.nn.Module):
    """(x - mean) / scale, then affine layers with ReLU between them.

    ``binary``: the last layer gives one logit z (sklearn's binary classifiers); the output is
    then the two logits [0, z], whose softmax is [1 - sigmoid(z), sigmoid(z)]."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]], binary: bool) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        blocks: list[torch.nn.Module] = []
        for i, (W, b) in enumerate(layers):
            linear = torch.nn.Linear(W.shape[0], W.shape[1])
            with torch.no_grad():
                linear.weight.copy_(torch.tensor(W.T, dtype=torch.float32))
                linear.bias.copy_(torch.tensor(b, dtype=torch.float32))
            blocks.append(linear)
            if i < len(layers) - 1:
                blocks.append(torch.nn.ReLU())
        self.body = torch.nn.Sequential(*blocks)
        self.binary = binary

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.body((x.reshape(x.shape[0], -1) - self.mean) / self.scale)
        if self.binary:
            return torch.cat([torch.zeros_like(z), z], dim=1)
        return z


def scratch_net(model: Pipeline, task: str) -> ScratchNet:
    """The TorchScript-able equivalent of a fitted ``StandardScaler`` + estimator pipeline."""
    scaler, head = model.steps[0][1], model.steps[-1][1]
    mean, scale = np.asarray(scaler.mean_), np.asarray(scaler.scale_)
    if hasattr(head, "coefs_"):  # MLP: coefs_[i] is (in, out)
        layers = [(np.asarray(W), np.asarray(b)) for W, b in zip(head.coefs_, head.intercepts_, strict=True)]
    else:  # linear: coef_ is (out, in) or (in,)
        coef = np.atleast_2d(np.asarray(head.coef_))
        layers = [(coef.T, np.atleast_1d(np.asarray(head.intercept_)))]
    binary = task == "classification" and layers[-1][0].shape[1] == 1
    return ScratchNet(mean, scale, layers, binary).eval()


def scratch_torchscript(model: Pipeline, task: str) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(scratch_net(model, task)), buffer)
    return buffer.getvalue()
