"""TorchScript that cannot reach outside its call: load-time code refused, operators allow-listed.

Two checks, both needed (see docs/security.md, "Formats that cannot execute"):

* :func:`check_torchscript_archive` (standard library only, before ``torch.jit.load``):
  ``torch.jit.load`` *runs* every ``__setstate__`` a TorchScript class or module defines,
  and the ``__setstate__`` of any C++ custom class (``__torch__.torch.classes.*``) it
  unpickles, before a caller can look at the graph. An archive whose code defines one, or
  whose pickles name a custom class, is refused unread (``upload:user:load-time-code``).
* :func:`check_compilation_unit` and :func:`check_script_module` (need torch, after loading,
  before any call): every node of every function compiled from the archive, and of every
  method and hook of every submodule, through nested blocks and inlined calls, must be in the
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
        f"{name}: operator {operator} (in {where}) is not allowed in a learnware; only pure tensor and "
        "control "
        "operators may be used (no file, storage, process, printing or custom-extension operators)",
        code="upload:user:unsafe-operator",
        details={"file": name, "operator": operator, "where": where},
    )


def _prepended_bytes(data: bytes) -> int:
    """Bytes before the zip proper, by the end record's own numbers.

    Python's zipfile silently shifts every offset past data prepended to a zip; torch's reader
    (miniz) takes the recorded offsets literally. With a shift, the two could read two different
    central directories of one file, so what we inspect would not be what ``torch.jit.load``
    loads: only archives both read alike (no shift) are accepted.
    """
    # The stdlib's own end-record parser (private, stable since 2.x): typeshed does not declare it.
    stdlib_zip: Any = zipfile
    end = stdlib_zip._EndRecData(io.BytesIO(data))
    if end is None:
        raise zipfile.BadZipFile("no end of central directory record")
    shift = end[stdlib_zip._ECD_LOCATION] - end[stdlib_zip._ECD_SIZE] - end[stdlib_zip._ECD_OFFSET]
    if (
        end[stdlib_zip._ECD_SIGNATURE] == stdlib_zip.stringEndArchive64
    ):  # torch writes zip64: its records sit in between
        shift -= stdlib_zip.sizeEndCentDir64 + stdlib_zip.sizeEndCentDir64Locator
    return int(shift)


def check_torchscript_archive(data: bytes, name: str = "model.pt") -> None:
    """Refuse a TorchScript archive that would run code while ``torch.jit.load`` reads it.

    Pure byte inspection (no torch, no unpickling), so it is safe in the web process.

    Raises
    ------
    InvalidPackageError
        ``upload:user:load-time-code`` naming the archive member; ``upload:user:artifact-format``
        when the zip cannot be read.
    """
    unreadable = InvalidPackageError(
        f"{name} is not a readable TorchScript archive",
        code="upload:user:artifact-format",
        details={"file": name},
    )
    try:
        if _prepended_bytes(data) != 0:
            raise unreadable
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [(info.filename, archive.read(info)) for info in archive.infolist() if not info.is_dir()]
    except (
        zipfile.BadZipFile,
        OSError,
        EOFError,
        ValueError,
        NotImplementedError,
        RuntimeError,
    ):  # RuntimeError: encrypted
        raise unreadable from None
    for member, content in members:
        # Check every member, not just code/*.py and *.pkl, so a renamed member cannot slip through;
        # debug_pkl holds the original source text (comments included) and defines nothing.
        if _LOAD_TIME_HOOK in content and not member.endswith(".debug_pkl"):
            raise InvalidPackageError(
                f"{name}: {member} defines __setstate__, which torch.jit.load would run while reading the "
                "file; "
                "remove it (learnwares are loaded with their attributes as saved)",
                code="upload:user:load-time-code",
                details={"file": name, "member": member, "operator": "__setstate__"},
            )
        if _CUSTOM_CLASS in content:
            raise InvalidPackageError(
                f"{name}: {member} uses a C++ custom class (torch.classes), whose loading code runs while "
                "reading the file",
                code="upload:user:load-time-code",
                details={"file": name, "member": member, "operator": "torch.classes"},
            )


def _receiver_is_module(node: Any) -> bool:
    """True when a ``prim::CallMethod`` calls a method of a module (all of which are walked)."""
    receiver = node.inputsAt(0).type()
    is_module = getattr(receiver, "is_module", None)
    return bool(is_module()) if callable(is_module) else False


def _walk(
    nodes: Any, allowed: frozenset[str], name: str, where: str, resolves: Any = _receiver_is_module
) -> None:
    for node in nodes:
        kind = node.kind()
        if kind in (_CALL_METHOD, _CALL_FUNCTION):
            # A call whose target is itself walked is fine; anything else cannot be verified.
            if not resolves(node):
                raise _refuse_operator(name, f"{kind} on {node.inputsAt(0).type()}", where)
        elif kind not in allowed:
            raise _refuse_operator(name, kind, where)
        for block in node.blocks():
            _walk(block.nodes(), allowed, name, where, resolves)


def check_script_module(module: Any, name: str = "model.pt") -> None:
    """Refuse a loaded TorchScript module that uses an operator outside the allow-list.

    Walks the inlined graph (``prim::CallMethod``/``prim::CallFunction`` targets folded in) of
    every method and every forward (pre-)hook of the module and of each of its submodules,
    recursing into ``prim::If`` / ``prim::Loop`` blocks. Call it after ``torch.jit.load`` and
    before the module runs; :func:`load_torchscript` also walks every function compiled from
    the archive (:func:`check_compilation_unit`).

    Raises
    ------
    InvalidPackageError
        ``upload:user:unsafe-operator`` with ``details`` {file, operator, where}.
    """
    import torch

    if not isinstance(module, torch.jit.ScriptModule):
        raise InvalidPackageError(
            f"{name} does not hold a TorchScript module",
            code="upload:user:artifact-format",
            details={"file": name},
        )
    allowed = allowed_operators()
    for path, sub in module.named_modules():
        prefix = path or "<root>"
        methods = [(f"{prefix}.{m}", sub._c._get_method(m)) for m in sub._c._method_names()]
        hooks = [
            (f"{prefix}.<hook {h.name}>", h)
            for h in [*sub._c._get_forward_pre_hooks(), *sub._c._get_forward_hooks()]
        ]
        for where, function in methods + hooks:
            try:
                graph = function.inlined_graph
            except RuntimeError as exc:  # a method whose calls cannot be inlined cannot be verified
                raise _refuse_operator(name, f"uninlinable call ({exc})", where) from None
            _walk(graph.nodes(), allowed, name, where)


def check_compilation_unit(cu: Any, name: str = "model.pt") -> None:
    """Refuse an archive if any function compiled from it uses an operator outside the allow-list.

    ``cu`` is the ``torch._C.CompilationUnit`` the archive was imported into: it holds every
    function, method and hook of every class the archive's code defines, called or not, so
    nothing compiled escapes the walk. A call is allowed only to a function of ``cu`` (walked
    here too) or a method of a class or interface defined in ``cu``; a call to anything else
    (a C++ custom class, say) is refused.
    """
    allowed = allowed_operators()

    def resolves(node: Any) -> bool:
        if node.kind() == _CALL_FUNCTION:
            return True  # the callee is a function of this unit: an archive cannot reference any other
        receiver = node.inputsAt(0).type()
        qualified = getattr(receiver, "qualified_name", None)
        if not callable(qualified):
            return False
        return cu.get_class(qualified()) is not None or cu.get_interface(qualified()) is not None

    for function in cu.get_functions():
        _walk(function.graph.nodes(), allowed, name, function.qualified_name, resolves)


def load_torchscript(data: bytes, name: str = "model.pt") -> Any:
    """``torch.jit.load`` with every check around it: the only way uploaded TorchScript is loaded.

    Imports the archive the way ``torch.jit.load`` does (torch 2.13's
    ``torch/jit/_serialization.py``), keeping the compilation unit so that every compiled
    function can be walked, not only those reachable from the module's methods.

    Raises
    ------
    InvalidPackageError
        ``upload:user:load-time-code`` or ``upload:user:unsafe-operator`` (see the checks).
    """
    check_torchscript_archive(data, name)
    import torch
    from torch.jit._recursive import wrap_cpp_module

    cu = torch._C.CompilationUnit()
    # torch's stub lags the binding, which takes (cu, bytes, device, extra_files, restore_shapes).
    module = wrap_cpp_module(torch._C.import_ir_module_from_buffer(cu, data, torch.device("cpu"), {}, False))  # type: ignore[call-arg, arg-type]
    check_compilation_unit(cu, name)
    check_script_module(module, name)
    return module.eval()
