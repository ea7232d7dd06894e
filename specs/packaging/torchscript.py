"""TorchScript that cannot reach outside its call: load-time code refused, operators allow-listed.

Two checks, both needed (see docs/security.md, "Formats that cannot execute"):

* :func:`check_torchscript_archive` (standard library only, before ``torch.jit.load``):
  ``torch.jit.load`` *runs* every ``__setstate__`` a TorchScript class or module defines,
  and the ``__setstate__`` of any C++ custom class (``__torch__.torch.classes.*``) it
  unpickles, before a caller can look at the graph. An archive whose code defines one, or
  whose pickles name a custom class, is refused unread (``upload:user:load-time-code``).
* :func:`check_script_module` (needs torch, after loading, before any call): every node of
  every method of every submodule, through nested blocks and inlined calls, must be in the
  allow-list ``torchscript_ops.txt``; anything else (``aten::from_file``, ``aten::save``,
  ``prim::Print``, ``torch.ops.<custom>``...) is refused as ``upload:user:unsafe-operator``
  naming the operator and where it is.

:func:`load_torchscript` runs both around ``torch.jit.load``; the sandbox child and the
client's loader both use it, the web process runs the archive check at upload.
"""

from __future__ import annotations

import io
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from specs.packaging.errors import InvalidPackageError

OPS_FILE = Path(__file__).with_name("torchscript_ops.txt")
# Kinds that reach code outside the graph: left after inlining, they are resolved by hand.
_CALL_METHOD, _CALL_FUNCTION = "prim::CallMethod", "prim::CallFunction"
_LOAD_TIME_HOOK = b"__setstate__"
_CUSTOM_CLASS = b"__torch__.torch.classes"


@lru_cache(maxsize=1)
def allowed_operators() -> frozenset[str]:
    """The reviewed allow-list (``torchscript_ops.txt``; derived by ``scripts/derive_torchscript_ops.py``)."""
    lines = OPS_FILE.read_text().splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def _refuse_operator(name: str, operator: str, where: str) -> InvalidPackageError:
    return InvalidPackageError(
        f"{name}: operator {operator} (in {where}) is not allowed in a learnware; only pure tensor and control "
        "operators may be used (no file, storage, process, printing or custom-extension operators)",
        code="upload:user:unsafe-operator", details={"file": name, "operator": operator, "where": where},
    )


def check_torchscript_archive(data: bytes, name: str = "model.pt") -> None:
    """Refuse a TorchScript archive that would run code while ``torch.jit.load`` reads it.

    Pure byte inspection (no torch, no unpickling), so it is safe in the web process.

    Raises
    ------
    InvalidPackageError
        ``upload:user:load-time-code`` naming the archive member; ``upload:user:artifact-format``
        when the zip cannot be read.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [(info.filename, archive.read(info)) for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        raise InvalidPackageError(f"{name} is not a readable TorchScript archive", code="upload:user:artifact-format",
                                  details={"file": name}) from None
    for member, content in members:
        # Check every member, not just code/*.py and *.pkl, so a renamed member cannot slip through;
        # debug_pkl holds the original source text (comments included) and defines nothing.
        if _LOAD_TIME_HOOK in content and not member.endswith(".debug_pkl"):
            raise InvalidPackageError(
                f"{name}: {member} defines __setstate__, which torch.jit.load would run while reading the file; "
                "remove it (learnwares are loaded with their attributes as saved)",
                code="upload:user:load-time-code", details={"file": name, "member": member, "operator": "__setstate__"},
            )
        if _CUSTOM_CLASS in content:
            raise InvalidPackageError(
                f"{name}: {member} uses a C++ custom class (torch.classes), whose loading code runs while reading the file",
                code="upload:user:load-time-code", details={"file": name, "member": member, "operator": "torch.classes"},
            )


def _receiver_is_module(node: Any) -> bool:
    """True when a ``prim::CallMethod`` calls a method of a module (all of which are walked)."""
    receiver = node.inputsAt(0).type()
    is_module = getattr(receiver, "is_module", None)
    return bool(is_module()) if callable(is_module) else False


def _walk(nodes: Any, allowed: frozenset[str], name: str, where: str) -> None:
    for node in nodes:
        kind = node.kind()
        if kind == _CALL_METHOD:
            # Left after inlining only for interface calls; their implementations are submodules,
            # each of whose methods is walked. A call on anything else cannot be verified.
            if not _receiver_is_module(node):
                raise _refuse_operator(name, f"{kind} on {node.inputsAt(0).type()}", where)
        elif kind == _CALL_FUNCTION or kind not in allowed:
            raise _refuse_operator(name, kind, where)
        for block in node.blocks():
            _walk(block.nodes(), allowed, name, where)


def check_script_module(module: Any, name: str = "model.pt") -> None:
    """Refuse a loaded TorchScript module that uses an operator outside the allow-list.

    Walks the inlined graph (``prim::CallMethod``/``prim::CallFunction`` targets folded in) of
    every method of the module and of each of its submodules, recursing into ``prim::If`` /
    ``prim::Loop`` blocks. Call it after ``torch.jit.load`` and before the module runs.

    Raises
    ------
    InvalidPackageError
        ``upload:user:unsafe-operator`` with ``details`` {file, operator, where}.
    """
    import torch

    if not isinstance(module, torch.jit.ScriptModule):
        raise InvalidPackageError(f"{name} does not hold a TorchScript module", code="upload:user:artifact-format",
                                  details={"file": name})
    allowed = allowed_operators()
    for path, sub in module.named_modules():
        for method in sub._c._method_names():
            where = f"{path or '<root>'}.{method}"
            try:
                graph = sub._c._get_method(method).inlined_graph
            except RuntimeError as exc:  # a method whose calls cannot be inlined cannot be verified
                raise _refuse_operator(name, f"uninlinable call ({exc})", where) from None
            _walk(graph.nodes(), allowed, name, where)


def load_torchscript(data: bytes, name: str = "model.pt") -> Any:
    """``torch.jit.load`` with both checks around it: the only way uploaded TorchScript is loaded.

    Raises
    ------
    InvalidPackageError
        ``upload:user:load-time-code`` or ``upload:user:unsafe-operator`` (see the checks).
    """
    check_torchscript_archive(data, name)
    import torch

    module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    check_script_module(module, name)
    return module.eval()
