"""Text in the reuse pipeline: LoRA adapters on the MiniLM base, run with every layer's states.

An adapter is tensors only (``adapter_model.safetensors``, read with safetensors' numpy
loader: no code, no pickle) and the base is the market's registered MiniLM, loaded from our
own folder. So this process applies adapters itself, with forward hooks that add ``dW h``
(one LoRA, possibly merged) or the Arrow-routed ``sum_i w_i(h) dW_i h`` to the frozen
query/value projections, and reads the hidden state of every layer, which ranking needs
and the sandbox (final pooled embedding only) does not return. The sandbox still runs
every adapter the publish pipeline checks; the tests compare the two on the same adapter.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from marketplace.core.exceptions import ApplicationError
from specs.assembly import ArrowRouter, LoRAAdapter
from specs.transferability import pool_hidden_states

PEFT_PREFIX = "base_model.model."
MAX_LENGTH = 128  # the sandbox's truncation, so both runtimes embed the same tokens
BATCH = 32
# (module name, token states (..., in)) -> the adapter's addition to the module's output (..., out)
Delta = Callable[[str, np.ndarray], np.ndarray]


@functools.lru_cache(maxsize=1)
def base_model() -> tuple[Any, Any]:
    """(tokenizer, model) of the registered MiniLM base, loaded once per process."""
    from transformers import AutoModel, AutoTokenizer

    from marketplace.learnwares.encoding import minilm_path

    path = minilm_path()
    return (AutoTokenizer.from_pretrained(path, local_files_only=True),
            AutoModel.from_pretrained(path, local_files_only=True).eval())


def adapter_from_files(files: dict[str, bytes], *, base_model_key: str, name: str = "adapter") -> LoRAAdapter:
    """The LoRA factors of a PEFT adapter (``adapter_config.json`` + ``adapter_model.safetensors``).

    Raises
    ------
    ApplicationError
        Missing files, or a PEFT option this runtime does not apply (per-module ranks or alphas).
    """
    from safetensors.numpy import load

    try:
        config = json.loads(files["adapter_config.json"])
        tensors = load(files["adapter_model.safetensors"])
    except (KeyError, ValueError) as exc:
        raise ApplicationError(f"{name}: unreadable adapter files ({exc})", code="submission:app:adapter-unreadable",
                               http_status=500) from exc
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise ApplicationError(f"{name}: per-module rank_pattern/alpha_pattern are not supported in assemblies",
                               code="submission:app:adapter-unsupported", http_status=500)
    r = float(config["r"])
    # rsLoRA scales by alpha / sqrt(r); passing sqrt(r) as the rank gives the same scaling.
    rank = r**0.5 if config.get("use_rslora") else r
    state = {k: v.astype(np.float64) for k, v in tensors.items()}
    return LoRAAdapter.from_state_dict(state, base_model=base_model_key, lora_alpha=float(config["lora_alpha"]), r=rank)  # type: ignore[arg-type]


def lora_delta(adapter: LoRAAdapter) -> Delta:
    """``s B A h`` of one adapter."""

    def delta(module: str, H: np.ndarray) -> np.ndarray:
        A, B = adapter.factors[module]
        return adapter.scaling[module] * ((H @ A.T) @ B.T)

    return delta


def arrow_delta(router: ArrowRouter) -> Delta:
    """The router's per-token mixture of its adapters (``ArrowRouter.forward``)."""
    return router.forward


def _module_path(name: str) -> str:
    return name[len(PEFT_PREFIX):] if name.startswith(PEFT_PREFIX) else name


@contextmanager
def _hooked(model: Any, delta: Delta | None, modules: Sequence[str]) -> Iterator[None]:
    handles = []
    for name in modules if delta is not None else ():
        def hook(_mod: Any, args: tuple[Any, ...], output: torch.Tensor, name: str = name) -> torch.Tensor:
            assert delta is not None
            extra = delta(name, args[0].detach().double().numpy())
            return output + torch.from_numpy(np.ascontiguousarray(extra)).to(output.dtype)

        try:
            target = model.get_submodule(_module_path(name))
        except AttributeError as exc:
            raise ApplicationError(f"adapter module {name!r} is not in the base model", code="submission:app:adapter-unsupported",
                                   http_status=500) from exc
        handles.append(target.register_forward_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def layer_states(texts: Sequence[str], delta: Delta | None = None, modules: Sequence[str] = ()) -> list[np.ndarray]:
    """Mean-pooled hidden states of every transformer layer, L arrays (n, 384) float64.

    The embedding layer's output is left out (it is the same for every adapter); the last
    array, L2-normalised, is the text-space embedding the sandbox returns.
    """
    tokenizer, model = base_model()
    layers: list[list[np.ndarray]] = []
    with torch.no_grad(), _hooked(model, delta, modules):
        for start in range(0, len(texts), BATCH):
            batch = tokenizer(list(texts[start:start + BATCH]), padding=True, truncation=True, max_length=MAX_LENGTH,
                              return_tensors="pt")
            states = model(**batch, output_hidden_states=True).hidden_states[1:]
            mask = batch["attention_mask"].numpy()
            pooled = [pool_hidden_states(h.numpy(), mask) for h in states]
            layers = [[p] for p in pooled] if not layers else [acc + [p] for acc, p in zip(layers, pooled, strict=True)]
    return [np.concatenate(parts) for parts in layers]


def embedding(layers: list[np.ndarray]) -> np.ndarray:
    """(n, 384) unit rows: the last layer's pooled state, L2-normalised (the text space)."""
    last = layers[-1]
    return last / np.maximum(np.linalg.norm(last, axis=1, keepdims=True), 1e-12)


def texts_key(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for t in texts:
        digest.update(hashlib.sha256(t.encode()).digest())
    return digest.hexdigest()


class LayerCache:
    """Layer states per (adapter or assembly key, texts), computed once per run."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], list[np.ndarray]] = {}

    def states(self, key: str, texts: Sequence[str], delta: Delta | None, modules: Sequence[str]) -> list[np.ndarray]:
        k = (key, texts_key(texts))
        if k not in self._states:
            self._states[k] = layer_states(texts, delta, modules)
        return self._states[k]
