"""Derive the TorchScript operator allow-list (``specs/packaging/torchscript_ops.txt``).

Method (see docs/security.md, "Formats that cannot execute"):

1. Build a corpus of what a learnware legitimately contains: every common ``torch.nn``
   layer, scripted *and* traced (tracing records the aten ops a layer dispatches to,
   scripting records the TorchScript-level ops and control flow of its Python source),
   plus scripted functions that exercise the common ``torch``/``torch.nn.functional``
   tensor operations, reductions, shape manipulation and control flow.
2. Collect the node kinds of every method's inlined graph (``inlined_graph`` follows
   ``prim::CallMethod``/``prim::CallFunction`` and nested blocks).
3. Drop every kind a reviewer excluded by category (``EXCLUDED`` below: file, storage,
   process/thread, RNG-state, printing/profiling, pointer-aliasing internals) and every
   namespace other than ``aten``/``prim``.
4. Write the sorted result with this provenance as a header. Review the diff by hand
   before committing it; an op is added only when it is a pure tensor/scalar/control op.

Run: ``.venv/bin/python scripts/derive_torchscript_ops.py`` (about 20 s on 2 cores).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

OUT = Path(__file__).resolve().parents[1] / "specs" / "packaging" / "torchscript_ops.txt"

# Categories refused whatever the corpus shows (reviewed by hand). ``empty*`` hands back uninitialised
# memory, which could carry bytes of the loading process into outputs (probe fingerprints are public).
EXCLUDED_PREFIXES = (
    "aten::from_file",
    "aten::save",
    "aten::load",
    "aten::_save",
    "aten::set_",
    "aten::storage",
    "aten::_storage",
    "aten::untyped_storage",
    "aten::data_ptr",
    "aten::_from_blob",
    "aten::from_blob",
    "aten::_pin_memory",
    "aten::pin_memory",
    "aten::share_memory",
    "aten::_share_memory",
    "aten::_nested",
    "aten::manual_seed",
    "aten::seed",
    "aten::set_rng_state",
    "aten::get_rng_state",
    "aten::set_num_threads",
    "aten::set_num_interop_threads",
    "aten::record_stream",
    "aten::empty",
    "aten::new_empty",
    "aten::_record_function",
    "aten::_sparse",
    "aten::_make_per",
    "aten::_unsafe",
    "aten::_cudnn",
    "aten::cuda",
    "aten::to_mkldnn",
    "aten::_assert_async",
    "aten::_print",
    "prim::Print",
    "prim::fork",
    "prim::awaitable",
    "prim::PythonOp",
    "prim::rpc",
    "prim::profile",
    "prim::Enter",
    "prim::Exit",
    "prim::CallFunction",
    "prim::CallMethod",
)

# Pure operators outside the corpus, added by a reviewer category by category: elementwise math,
# in-place twins of corpus ops, reductions, linear algebra products, sampling without touching the
# RNG state, interpolation, and TorchScript's own attribute/optional plumbing.
REVIEWED_SUPPLEMENT = (
    "aten::tan",
    "aten::atan",
    "aten::atan2",
    "aten::asin",
    "aten::acos",
    "aten::sinh",
    "aten::cosh",
    "aten::exp2",
    "aten::log2",
    "aten::log10",
    "aten::expm1",
    "aten::trunc",
    "aten::frac",
    "aten::fmod",
    "aten::lerp",
    "aten::addmm",
    "aten::addcmul",
    "aten::addcdiv",
    "aten::cumprod",
    "aten::median",
    "aten::mv",
    "aten::dot",
    "aten::outer",
    "aten::div_",
    "aten::sub_",
    "aten::copy_",
    "aten::zero_",
    "aten::clamp_",
    "aten::neg_",
    "aten::exp_",
    "aten::sqrt_",
    "aten::abs_",
    "aten::pow_",
    "aten::unbind",
    "aten::view_as",
    "aten::reshape_as",
    "aten::mean",
    "aten::sum",
    "aten::rand",
    "aten::randn",
    "aten::rand_like",
    "aten::randn_like",
    "aten::randint",
    "aten::bernoulli",
    "aten::__interpolate",
    "aten::upsample_bilinear2d",
    "aten::interpolate",
    "aten::sigmoid_",
    "aten::softmin",
    "prim::SetAttr",
    "prim::unchecked_unwrap_optional",
    "prim::device",
    "prim::tolist",
    "prim::shape",
    "prim::layout",
    "prim::is_cuda",
    "prim::data",
    "prim::TupleSlice",
    "prim::ListIndex",
    "prim::dtype",
)


@torch.jit.script
def _tensor_ops(x: Tensor, y: Tensor) -> Tensor:
    z = torch.cat([x, y], 1)
    z = torch.stack([z, z], 0).sum(0)
    z = z.reshape(z.shape[0], -1).view(-1, z.shape[1]).contiguous().transpose(0, 1).t().permute(1, 0)
    z = torch.where(z > 0, z, torch.zeros_like(z)) + torch.ones_like(z) * 2.0 - torch.full_like(z, 0.5) / 3.0
    z = z.exp().log1p().sqrt().abs().clamp(min=0.0, max=10.0).pow(2).neg().sigmoid().tanh().relu()
    z = torch.log(z + 1.0) + torch.exp(-z) + torch.sin(z) + torch.cos(z) + torch.rsqrt(z + 1.0) + torch.erf(z)
    z = (
        torch.softmax(z, 1)
        + torch.log_softmax(z, 1)
        + F.gelu(z)
        + F.silu(z)
        + F.elu(z)
        + F.leaky_relu(z)
        + F.softplus(z)
    )
    z = F.normalize(z, dim=1) + F.hardtanh(z) + F.relu6(z) + F.mish(z) + F.hardswish(z) + F.hardsigmoid(z)
    z = (
        z @ z.t() @ z
        + torch.matmul(z, z.t()).mm(z)
        + torch.bmm(z.unsqueeze(0), z.t().unsqueeze(0)).squeeze(0).mm(z)
    )
    m = (
        z.mean(1, keepdim=True)
        + z.var(1, keepdim=True)
        + z.std(1, keepdim=True)
        + z.amax(1, keepdim=True)
        + z.amin(1, keepdim=True)
    )
    v, i = z.max(1)
    w, j = z.min(1)
    k = z.argmax(1) + z.argmin(1) + i + j + torch.argsort(v) + torch.topk(z, 1, 1)[1].squeeze(1)
    s, _ = torch.sort(w)
    z = (
        z
        + m
        + v.unsqueeze(1)
        + s.unsqueeze(1)
        + k.unsqueeze(1).to(torch.float32)
        + z.cumsum(1)
        + z.prod(1, keepdim=True)
    )
    z = (
        z.masked_fill(z < 0, 0.0)
        + z.index_select(0, k.clamp(0, z.shape[0] - 1))
        + z[0:1, :]
        + z[:, 0:1]
        + z[k.clamp(0, 0)]
    )
    z = (
        z.float().double().float().type_as(y)
        + z.to(y.dtype)
        + z.clone().detach()
        + torch.flatten(z.unsqueeze(1), 1)
    )
    z = (
        torch.zeros(z.shape, dtype=z.dtype)
        + torch.ones(z.shape[0], z.shape[1])
        + torch.ones_like(z).fill_(1.0)
    )
    z = (
        z
        + torch.arange(z.shape[1]).to(z.dtype)
        + torch.linspace(0.0, 1.0, z.shape[1])
        + torch.eye(z.shape[0], z.shape[1])
    )
    z = (
        z.expand(z.shape[0], z.shape[1])
        + z.repeat(1, 1)
        + z.chunk(1, 1)[0]
        + z.split(z.shape[1], 1)[0]
        + z.narrow(1, 0, z.shape[1])
    )
    z = (
        z
        + torch.gather(z, 1, k.clamp(0, 0).unsqueeze(1).expand(z.shape[0], z.shape[1]))
        + z.flip([0])
        + z.roll(1, 0)
    )
    z = (
        z
        + torch.einsum("ij,kj->ik", z, z) @ z
        + torch.tril(z)
        + torch.triu(z)
        + z.floor()
        + z.ceil()
        + z.round()
        + z.sign()
    )
    z = (
        z
        + torch.maximum(z, y)
        + torch.minimum(z, y)
        + z.remainder(2.0)
        + torch.floor_divide(z, 2.0)
        + z.reciprocal()
        + z.square()
    )
    z = (
        z
        + torch.logsumexp(z, 1, keepdim=True)
        + z.norm(2, 1, True)
        + torch.cdist(z, z) @ z
        + torch.clamp_min(z, 0.0)
        + z.clamp_max(1.0)
    )
    z = (
        z.mul(2.0).div(2.0).add(1.0).sub(1.0)
        + z.eq(0).to(z.dtype)
        + z.ne(0).float()
        + z.ge(0).float()
        + z.le(0).float()
        + z.lt(0).float()
    )
    z = (
        z
        + (z.isnan() | z.isinf() | z.isfinite()).float()
        + torch.nan_to_num(z)
        + (z.ne(0) & (~z.eq(0))).float()
        + z.any().float()
        + z.all().float()
    )
    z = (
        F.pad(z, [1, 1])[:, 1:-1]
        + torch.squeeze(z)
        + z.unflatten(1, [z.shape[1], 1]).squeeze(2)
        + z.new_zeros(z.shape)
        + z.new_ones(z.shape)
    )
    z = (
        z.scatter(1, k.clamp(0, 0).unsqueeze(1), 1.0)
        + z.scatter_add(1, k.clamp(0, 0).unsqueeze(1), z[:, :1])
        + z.index_add(0, k.clamp(0, 0), z)
    )
    z = (
        z
        + F.one_hot(k.clamp(0, 1), z.shape[1]).to(z.dtype)
        + torch.bucketize(z, torch.tensor([0.0, 1.0])).float()
        + torch.diag(torch.diag(z))
    )
    z = z + F.interpolate(z.unsqueeze(0).unsqueeze(0), scale_factor=1.0, mode="bilinear").squeeze(0).squeeze(
        0
    )
    z = (
        z
        + F.dropout(z, 0.1, False)
        + F.avg_pool2d(z.unsqueeze(0), 1).squeeze(0)
        + F.cross_entropy(z, k.clamp(0, 0))
    )
    return (
        z
        + torch.tensor([1.0])
        + torch.sum(z, dtype=torch.float32)
        + z.numel()
        + z.dim()
        + z.size(0)
        + len(z.shape)
    )


@torch.jit.script
class _Box:
    """A TorchScript class: object creation and its method calls are plumbing a learnware may use."""

    def __init__(self, value: Tensor) -> None:
        self.value = value

    def get(self) -> Tensor:
        return self.value


@torch.jit.script
def _control(
    x: Tensor, items: list[int], table: dict[str, Tensor], maybe: Tensor | None
) -> tuple[Tensor, int]:
    total = 0
    scratch: dict[str, Tensor] = {}
    scratch["x"] = x
    names = list(scratch.keys())
    values = list(scratch.values())
    items = items + [len(names), len(values)]
    items.extend([1])
    items.insert(0, 1)
    items.pop()
    box = _Box(x)
    x = box.get()
    for i in items:
        total += i
    i = 0
    while i < 3 and x.numel() > 0:
        i += 1
        x = x + 1.0
    if maybe is not None:
        x = x + maybe
    for key, value in table.items():
        if key == "skip" or key.startswith("_"):
            continue
        x = x + value
    if x.shape[0] < 0:
        raise RuntimeError("negative size")
    assert x.dim() == 2, "expected a matrix"
    shape: list[int] = list(x.shape)
    out = [x[j] for j in range(min(shape[0], 2))]
    return torch.stack(out, 0) if len(out) > 0 else x, int(total // 2 % 3) + max(shape) + abs(-1) + int(
        float(total) ** 2.0
    )


def _layers() -> list[tuple[nn.Module, tuple[Tensor, ...]]]:
    seq, batch = 5, 2
    return [
        (nn.Linear(4, 3), (torch.zeros(batch, 4),)),
        (nn.Bilinear(4, 4, 3), (torch.zeros(batch, 4), torch.zeros(batch, 4))),
        (
            nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 3), nn.Softmax(1)),
            (torch.zeros(batch, 4),),
        ),
        (
            nn.Sequential(
                nn.Conv1d(2, 4, 3, padding=1),
                nn.BatchNorm1d(4),
                nn.MaxPool1d(2),
                nn.AvgPool1d(1),
                nn.AdaptiveAvgPool1d(1),
            ),
            (torch.zeros(batch, 2, 8),),
        ),
        (
            nn.Sequential(
                nn.Conv2d(3, 4, 3, padding=1, stride=1, groups=1),
                nn.BatchNorm2d(4),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(4, 4, 1),
                nn.AvgPool2d(2),
                nn.AdaptiveAvgPool2d((1, 1)),
                nn.AdaptiveMaxPool2d(1),
                nn.Flatten(),
                nn.Linear(4, 2),
            ),
            (torch.zeros(batch, 3, 8, 8),),
        ),
        (
            nn.Sequential(
                nn.Conv2d(3, 3, 3, groups=3, padding=1),
                nn.GroupNorm(1, 3),
                nn.InstanceNorm2d(3),
                nn.Upsample(scale_factor=2.0),
                nn.ConvTranspose2d(3, 2, 2),
            ),
            (torch.zeros(batch, 3, 4, 4),),
        ),
        (
            nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.BatchNorm3d(2), nn.MaxPool3d(2)),
            (torch.zeros(batch, 1, 4, 4, 4),),
        ),
        (
            nn.Sequential(
                nn.LayerNorm(6),
                nn.GELU(),
                nn.SiLU(),
                nn.Tanh(),
                nn.Sigmoid(),
                nn.ELU(),
                nn.LeakyReLU(),
                nn.PReLU(),
                nn.Hardswish(),
                nn.Softplus(),
                nn.Mish(),
                nn.ReLU6(),
                nn.Hardtanh(),
                nn.LogSoftmax(1),
                nn.Identity(),
            ),
            (torch.zeros(batch, 6),),
        ),
        (nn.RMSNorm(6), (torch.zeros(batch, 6),)),
        (nn.Embedding(10, 4), (torch.zeros(batch, seq, dtype=torch.long),)),
        (nn.EmbeddingBag(10, 4, mode="mean"), (torch.zeros(batch, seq, dtype=torch.long),)),
        (
            nn.MultiheadAttention(8, 2, batch_first=True),
            (torch.zeros(batch, seq, 8), torch.zeros(batch, seq, 8), torch.zeros(batch, seq, 8)),
        ),
        (nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), (torch.zeros(batch, seq, 8),)),
        (
            nn.TransformerEncoder(
                nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 2, enable_nested_tensor=False
            ),
            (torch.zeros(batch, seq, 8),),
        ),
        (
            nn.TransformerDecoderLayer(8, 2, 16, batch_first=True),
            (torch.zeros(batch, seq, 8), torch.zeros(batch, seq, 8)),
        ),
        (nn.GRU(4, 6, batch_first=True, num_layers=2, bidirectional=True), (torch.zeros(batch, seq, 4),)),
        (nn.LSTM(4, 6, batch_first=True), (torch.zeros(batch, seq, 4),)),
        (nn.RNN(4, 6, batch_first=True), (torch.zeros(batch, seq, 4),)),
        (nn.GRUCell(4, 6), (torch.zeros(batch, 4),)),
        (nn.LSTMCell(4, 6), (torch.zeros(batch, 4),)),
        (nn.PixelShuffle(2), (torch.zeros(batch, 4, 2, 2),)),
        (nn.Unflatten(1, (2, 3)), (torch.zeros(batch, 6),)),
        (nn.CosineSimilarity(1), (torch.zeros(batch, 6), torch.zeros(batch, 6))),
        (nn.PairwiseDistance(), (torch.zeros(batch, 6), torch.zeros(batch, 6))),
        (nn.ZeroPad2d(1), (torch.zeros(batch, 1, 2, 2),)),
    ]


def _kinds(graph: torch._C.Graph, out: set[str]) -> None:
    for node in graph.nodes():
        _node_kinds(node, out)


def _node_kinds(node: torch._C.Node, out: set[str]) -> None:
    out.add(node.kind())
    for block in node.blocks():
        for inner in block.nodes():
            _node_kinds(inner, out)


def _module_kinds(module: torch.jit.ScriptModule, out: set[str]) -> None:
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)  # what the market sees: the saved-and-loaded graph
    for _, sub in loaded.named_modules():
        for name in sub._c._method_names():
            _kinds(sub._c._get_method(name).inlined_graph, out)


def corpus_kinds() -> set[str]:
    kinds: set[str] = set()
    for fn in (_tensor_ops, _control):
        _kinds(fn.inlined_graph, kinds)
    for layer, example in _layers():
        layer.eval()
        for make in ("script", "trace"):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    module = (
                        torch.jit.script(layer)
                        if make == "script"
                        else torch.jit.trace(layer, example, check_trace=False)
                    )
                _module_kinds(module, kinds)
            except Exception as exc:  # noqa: BLE001 - some layers cannot be scripted or traced; the other way still counts
                print(f"skipped {make} of {type(layer).__name__}: {type(exc).__name__}")
    return kinds


def allowed(kinds: set[str]) -> list[str]:
    keep = [
        k
        for k in kinds | set(REVIEWED_SUPPLEMENT)
        if k.split("::", 1)[0] in ("aten", "prim") and not k.startswith(EXCLUDED_PREFIXES)
    ]
    return sorted(keep)


def main() -> None:
    kinds = corpus_kinds()
    ops = allowed(kinds)
    print("excluded from the corpus:", sorted(kinds - set(ops)))
    header = [
        "# TorchScript operators a learnware may use (one per line). Generated by",
        "# scripts/derive_torchscript_ops.py from the inlined graphs of scripted and traced torch.nn",
        "# layers and functional ops, minus the excluded categories listed there; reviewed by hand.",
        "# Anything not listed (file/storage/process/RNG-state/printing ops, custom namespaces) is refused.",
    ]
    OUT.write_text("\n".join(header + ops) + "\n")
    print(f"{len(ops)} operators -> {OUT}")


if __name__ == "__main__":
    main()
