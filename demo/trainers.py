"""Small CPU trainers for the demo learnwares; every artefact is TorchScript or safetensors (never pickle).

Models take raw inputs (the manifest's columns in their own units, images in [0, 1],
MiniLM embeddings): the standardisation learnt on the developer's rows is a buffer
inside the module, so a user calls it on their data as is.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from specs.logistic import fit_softmax_regression, torch_linear

STEPS = 200
SEED = 0
# The linear learnwares are fitted by the product's one logistic regression (specs.logistic,
# sklearn's C) and shipped as a torch.nn.Linear holding its coefficients.
PIXEL_C = 1.0
EMBEDDING_C = 10.0  # unit-norm embeddings: a weaker penalty suits their small scale (as the adapter head's)


class _Standardised(torch.nn.Module):
    def __init__(
        self,
        mean: np.ndarray,
        std: np.ndarray,
        body: torch.nn.Module,
        out_scale: float = 1.0,
        out_shift: float = 0.0,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        self.body = body
        self.out_scale, self.out_shift = float(out_scale), float(out_shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Buffers read as Tensor | Module to mypy; class-level annotations would break TorchScript.
        return self.body((x - self.mean) / self.std) * self.out_scale + self.out_shift  # type: ignore[operator]


def _fit(
    model: torch.nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Any,
    steps: int = STEPS,
    lr: float = 0.03,
) -> None:
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        loss_fn(model(X), y).backward()
        optimiser.step()


def _script(model: torch.nn.Module, example: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(model.eval(), example), buffer)
    return buffer.getvalue()


def table_classifier(X: np.ndarray, y: np.ndarray, n_classes: int) -> bytes:
    """A one-hidden-layer MLP on standardised columns; outputs class logits (n, C)."""
    torch.manual_seed(SEED)
    mean, std = X.mean(0), X.std(0) + 1e-9
    body = torch.nn.Sequential(
        torch.nn.Linear(X.shape[1], 16), torch.nn.ReLU(), torch.nn.Linear(16, n_classes)
    )
    Xs = torch.tensor((X - mean) / std, dtype=torch.float32)
    _fit(body, Xs, torch.tensor(y), torch.nn.functional.cross_entropy)
    return _script(_Standardised(mean, std, body), torch.zeros(2, X.shape[1]))


def table_regressor(X: np.ndarray, y: np.ndarray) -> bytes:
    """An MLP on standardised columns predicting a standardised target; outputs (n, 1) in the target's
    units."""
    torch.manual_seed(SEED)
    mean, std = X.mean(0), X.std(0) + 1e-9
    y_mean, y_std = float(y.mean()), float(y.std() + 1e-9)
    body = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    Xs = torch.tensor((X - mean) / std, dtype=torch.float32)
    target = torch.tensor((y - y_mean) / y_std, dtype=torch.float32)[:, None]
    _fit(body, Xs, target, torch.nn.functional.mse_loss)
    return _script(_Standardised(mean, std, body, y_std, y_mean), torch.zeros(2, X.shape[1]))


def image_classifier(X: np.ndarray, y: np.ndarray, n_classes: int) -> bytes:
    """Softmax regression on pixels: (n, C, H, W) in [0, 1] -> (n, n_classes) logits."""
    flat = X.reshape(X.shape[0], -1).astype(np.float64)
    model = fit_softmax_regression(flat, y, classes=np.arange(n_classes), C=PIXEL_C)
    return _script(torch.nn.Sequential(torch.nn.Flatten(), torch_linear(model)), torch.zeros(2, *X.shape[1:]))


def text_head(E: np.ndarray, y: np.ndarray, n_classes: int) -> bytes:
    """Logistic regression on MiniLM embeddings (n, 384) -> (n, n_classes) logits."""
    model = fit_softmax_regression(E, y, classes=np.arange(n_classes), C=EMBEDDING_C)
    return _script(torch_linear(model), torch.zeros(2, E.shape[1]))


def lora_adapter(
    texts: list[str], y: np.ndarray, minilm_path: str, *, steps: int = 6, batch: int = 16, r: int = 4
) -> dict[str, bytes]:
    """A LoRA (r=4 on query/value) of MiniLM tuned for a few steps to separate two topics.

    The objective is a logistic head on the mean-pooled embedding; only the adapter is kept.
    A handful of steps on 64-token inputs keeps it to seconds on CPU.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(SEED)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path, local_files_only=True)
    base = AutoModel.from_pretrained(minilm_path, local_files_only=True)
    model = get_peft_model(
        base, LoraConfig(r=r, lora_alpha=2 * r, target_modules=["query", "value"], lora_dropout=0.0)
    )
    head = torch.nn.Linear(base.config.hidden_size, 2)
    optimiser = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad] + list(head.parameters()), lr=5e-3
    )
    rng = np.random.default_rng(SEED)
    model.train()
    for _ in range(steps):
        idx = rng.choice(len(texts), size=min(batch, len(texts)), replace=False)
        enc = tokenizer(
            [texts[i] for i in idx], padding=True, truncation=True, max_length=64, return_tensors="pt"
        )
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)
        loss = torch.nn.functional.cross_entropy(head(pooled * 10), torch.tensor(y[idx]))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        config = json.loads((Path(tmp) / "adapter_config.json").read_text())
        # The market knows the base by its public name, not by this machine's folder.
        config["base_model_name_or_path"] = "sentence-transformers/all-MiniLM-L6-v2"
        return {
            "adapter_config.json": json.dumps(config, indent=2).encode(),
            "adapter_model.safetensors": (Path(tmp) / "adapter_model.safetensors").read_bytes(),
        }
