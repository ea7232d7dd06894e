"""Train a LoRA adapter and a linear head on a text base model for a labelled task (model selection's
``requirements.adapter``), deterministically for a seed.

The forward with the LoRA is PEFT's (``peft.get_peft_model`` on the base's query and value
projections: :data:`specs.adapter_bases.ADAPTER_FAMILIES`), the reference the hook runtime
(``specs.adapter_runtime``) is tested against; the trained factors are returned as plain tensors in
PEFT's key layout, so a package runs them with the hooks (``AdapterRecipePredictor``) and the tests
compare the two. The head is linear on the L2-normalised pooled last layer, which is the embedding
the hook runtime's :func:`specs.adapter_runtime.embedding` computes and its ``head.lwa`` reads.

Dropout stays off (the base is trained in eval mode): with one torch thread, a fixed seed for the
LoRA's initialisation, the head's and the batch order, two runs give the same tensors.
torch, transformers and peft are imported where they are used (importing this module needs numpy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from specs.exceptions import InvalidDataError
from specs.token_limit import MAX_TOKENS

HEAD_WEIGHT, HEAD_BIAS, PROBA = "head.weight", "head.bias", "proba"  # the output's non-LoRA tensors
GFLOPS = 5.0  # a deliberately low single-thread throughput: the first estimate errs towards skipping


@dataclass(frozen=True)
class TrainingConfig:
    """The hyperparameters (stored with the results). ``lora_alpha = r``: PEFT's scaling is 1."""

    r: int = 8
    epochs: int = 6
    batch_size: int = 8
    lr: float = 1e-3  # the LoRA factors'
    head_lr: float = 5e-2  # the head's: its inputs are unit vectors, so its weights must grow
    weight_decay: float = 0.01
    max_length: int = MAX_TOKENS

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "lora_alpha": self.r, "optimizer": "AdamW", "targets": "query, value"}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainingConfig:
        known = {k: raw[k] for k in asdict(cls()) if k in raw}
        return cls(**known)


def lora_targets(model_type: str, num_layers: int) -> list[str]:
    """Full module paths of every layer's query and value projection of an allow-listed family."""
    from specs.adapter_bases import check_family

    family = check_family(model_type)
    query, value = family.targets[0], family.targets[2]  # (query, key, value, output) in every row
    return [f"{family.prefix}.{i}.{t}" for i in range(num_layers) for t in (query, value)]


def estimated_seconds(*, num_layers: int, hidden_size: int, tokens: int, config: TrainingConfig) -> float:
    """A rough bound on one training's time: 6 FLOPs per parameter and token (forward + backward) over
    the encoder's ~12 h^2 parameters per layer, for ``tokens`` training tokens per epoch."""
    flops = 6.0 * 12 * num_layers * hidden_size**2 * tokens * config.epochs
    return flops / (GFLOPS * 1e9)


def _pooled(hidden: Any, mask: Any, pooling: str) -> Any:
    """Differentiable pooling of (n, t, h) token states: the masked mean, or the first token."""
    if pooling == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def _embed(model: Any, tokenizer: Any, texts: Sequence[str], pooling: str, max_length: int) -> Any:
    import torch

    batch = tokenizer(
        [str(t) for t in texts], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    # input_ids + attention_mask only, as the hook runtime sends them (specs.adapter_runtime.layer_states).
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    pooled = _pooled(out.last_hidden_state, batch["attention_mask"], pooling)
    return torch.nn.functional.normalize(pooled, dim=1)


def train_lora(
    base: tuple[Any, Any],
    texts: Sequence[str],
    y: np.ndarray,
    *,
    n_classes: int,
    model_type: str,
    num_layers: int,
    pooling: str,
    seed: int,
    config: TrainingConfig | None = None,
    predict: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """Train a LoRA (rank ``config.r``) on the base's query/value projections and a linear head on
    its pooled, L2-normalised last layer for the class codes ``y`` (0..n_classes-1) of ``texts``.

    ``base`` is (tokenizer, model) and is changed in place (PEFT wraps its projections): load a fresh
    one per call. Returns float32 tensors: the LoRA factors under PEFT's keys
    (``base_model.model.<module>.lora_{A,B}.weight``), ``head.weight`` (k, hidden), ``head.bias`` (k,)
    and ``proba`` (len(predict), k), the trained model's class probabilities of ``predict``.

    Raises
    ------
    InvalidDataError
        No texts, labels outside 0..n_classes-1, or a different number of texts and labels.
    """
    import torch
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict

    config = config or TrainingConfig()
    y = np.asarray(y, dtype=np.int64)
    if not len(texts) or len(texts) != y.shape[0] or y.min() < 0 or y.max() >= n_classes:
        raise InvalidDataError(f"{len(texts)} texts need as many labels in 0..{n_classes - 1}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        tokenizer, model = base
        lora = LoraConfig(
            r=config.r,
            lora_alpha=config.r,
            lora_dropout=0.0,
            bias="none",
            target_modules=lora_targets(model_type, num_layers),
        )
        peft_model = get_peft_model(model, lora)
        peft_model.eval()  # no dropout: deterministic, and the embedding the package computes
        hidden = int(model.config.hidden_size)
        head = torch.nn.Linear(hidden, n_classes)
        trainable = [p for p in peft_model.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW(
            [
                {"params": trainable, "lr": config.lr},
                {"params": list(head.parameters()), "lr": config.head_lr},
            ],
            weight_decay=config.weight_decay,
        )
        order = torch.Generator().manual_seed(seed)
        targets = torch.from_numpy(y)
        with torch.enable_grad():
            for _ in range(config.epochs):
                for idx in torch.randperm(len(texts), generator=order).split(config.batch_size):
                    rows = [texts[int(i)] for i in idx]
                    logits = head(_embed(peft_model, tokenizer, rows, pooling, config.max_length))
                    loss = torch.nn.functional.cross_entropy(logits, targets[idx])
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
        out = {k: v.detach().float().numpy() for k, v in get_peft_model_state_dict(peft_model).items()}
        out[HEAD_WEIGHT] = head.weight.detach().float().numpy()
        out[HEAD_BIAS] = head.bias.detach().float().numpy()
        with torch.no_grad():
            proba = [
                torch.softmax(
                    head(_embed(peft_model, tokenizer, predict[i : i + 32], pooling, config.max_length)), 1
                )
                for i in range(0, len(predict), 32)
            ]
        out[PROBA] = torch.cat(proba).float().numpy() if proba else np.zeros((0, n_classes), np.float32)
        return out
    finally:
        torch.set_num_threads(threads)


def training_problem(
    tensors: dict[str, np.ndarray],
    *,
    model_type: str,
    num_layers: int,
    hidden_size: int,
    n_classes: int,
    n_predict: int,
    r: int,
) -> str | None:
    """Why :func:`train_lora`'s output (read back from the sandbox, so untrusted) cannot be used, or
    None: it must hold exactly the LoRA factors of every target module (``lora_A`` (r, hidden),
    ``lora_B`` (hidden, r): the query/value projections are square), ``head.weight`` (k, hidden),
    ``head.bias`` (k,) and ``proba`` (n_predict, k), all finite. A training that diverged gives NaN
    or inf, which would otherwise be scored as class 0 and packaged."""
    expected = {HEAD_WEIGHT: (n_classes, hidden_size), HEAD_BIAS: (n_classes,), PROBA: (n_predict, n_classes)}
    for module in lora_targets(model_type, num_layers):
        expected[f"base_model.model.{module}.lora_A.weight"] = (r, hidden_size)
        expected[f"base_model.model.{module}.lora_B.weight"] = (hidden_size, r)
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        return f"the training returned other tensors (missing {missing[:3]}, unexpected {extra[:3]})"
    for name, shape in expected.items():
        value = tensors[name]
        if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype.kind != "f":
            got = getattr(value, "shape", type(value).__name__)
            return f"the training returned {name} of shape {got}, expected {shape} floats"
        if not np.isfinite(value).all():
            return f"the training diverged: {name} holds NaN or infinite values"
    return None


def lora_state(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The LoRA factors of :func:`train_lora`'s output (PEFT keys), without the head and probabilities."""
    return {k: v for k, v in tensors.items() if k not in (HEAD_WEIGHT, HEAD_BIAS, PROBA)}
