"""Run an uploaded model on inputs in an isolated, limited process: ``run_model``.

What the sandbox guarantees, for each call (details in ``isolation.py`` and docs/security.md):

* the upload runs in a fork of a fork server that runs under bubblewrap (``zygote``),
  never in the worker; each fork enters its own user, PID, mount, network (empty), IPC
  and UTS namespaces (``namespaces``) with no capabilities and a seccomp filter, an
  environment built from an allow-list, a read-only view of the Python runtime and of
  this call's model and inputs only, and a private size-limited tmpfs as its only
  writable place;
* one fork (and namespace set) per call, one call at a time per worker process: a call
  cannot see another call's files or processes, and when it returns everything it
  started is dead (its PID namespace ends);
* limits: address space (``memory_mb`` on top of torch's own mapping), CPU seconds,
  wall clock (the call is SIGKILLed), size of written files, open files, processes,
  no core dumps;
* fail closed: when bubblewrap cannot isolate (``isolation.probe``), uploaded code does
  not run (``SandboxIsolationUnavailable``) unless ``LWM_SANDBOX_ALLOW_UNISOLATED`` is
  set, which logs a warning on every call;
* no pickle: TorchScript through ``specs.packaging.torchscript.load_torchscript`` (no
  load-time code, operators allow-listed before any call), LoRA weights through
  safetensors (PEFT); torch.export is refused (its loader unpickles); inputs and outputs
  are ``.npy`` bytes read with ``allow_pickle=False``;
* the log handed back to the uploader is bounded and scrubbed of server paths.

What it does not guarantee: isolation from kernel exploits or CPU side channels.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workers.sandbox import isolation
from workers.sandbox.errors import (
    SandboxCpuExceeded,
    SandboxCrashed,
    SandboxIsolationUnavailable,
    SandboxMemoryExceeded,
    SandboxOutputInvalid,
    SandboxRefused,
    SandboxTimeout,
    SandboxUnavailable,
)
from workers.sandbox.fork_server import ask_fork_server, base_model_binds, private_calls_folder
from workers.sandbox.isolation import Isolation
from workers.sandbox.sandbox_log import scrub_log, tail_log

log = logging.getLogger(__name__)
KINDS = (
    "torchscript",
    "peft_lora",
    "onnx",
    "hf_encoder",
)  # torch.export (.pt2) is refused: its loader unpickles with full pickle
EXIT_ERROR, EXIT_MEMORY, EXIT_SETUP, EXIT_REFUSED = 3, 4, 5, 6
SIGKILL, SIGXCPU = 9, 24


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed call."""

    memory_mb: int = 2048
    cpu_seconds: int = 60
    wall_seconds: float = 120.0
    file_size_mb: int = 64
    max_open_files: int = 256
    max_processes: int = 64


def _stage(folder: Path, artifact: str | Path | bytes | Mapping[str, bytes], inputs: np.ndarray) -> None:
    target = folder / "artifact"
    if isinstance(artifact, Mapping):
        target.mkdir(mode=0o700)
        for name, data in artifact.items():
            # One level is allowed: ``base/<file>``, a published base model's folder beside its adapter.
            parts = name.split("/")
            if (
                len(parts) > 2
                or (len(parts) == 2 and parts[0] != "base")
                or any(not p or p.startswith(".") for p in parts)
            ):
                raise ValueError(f"adapter file name {name!r} is not a plain file name")
            if len(parts) == 2:
                (target / parts[0]).mkdir(mode=0o700, exist_ok=True)
            (target / name).write_bytes(data)
    elif isinstance(artifact, bytes):
        target.write_bytes(artifact)
    elif Path(artifact).is_dir():
        shutil.copytree(artifact, target)
    else:
        shutil.copyfile(artifact, target)
    np.save(folder / "inputs.npy", inputs, allow_pickle=False)


# --- the call -----------------------------------------------------------------------------------
def _raise_for(result: dict[str, Any], answer: bytes, call: Path, limits: SandboxLimits) -> None:
    log_text = scrub_log(tail_log(call / "child.log"), call)
    if result["status"] == "timeout":
        raise SandboxTimeout(
            f"the model ran longer than {limits.wall_seconds} s (wall clock) and was killed", log=log_text
        )
    if result["status"] == "setup":
        raise SandboxUnavailable(
            f"the sandbox could not prepare the model's runtime: {scrub_log(result.get('message', ''))}"
        )
    status = int(result["code"])
    if status == EXIT_SETUP:
        raise SandboxUnavailable(f"the sandbox could not set up the call: {log_text[-500:]}")
    if status - 128 in (SIGXCPU, SIGKILL):
        raise SandboxCpuExceeded(
            f"the model used more than {limits.cpu_seconds} s of CPU and was killed", log=log_text
        )
    try:
        error = json.loads(answer.decode())
        detail = f"{error.get('type', 'error')}: {error.get('message', '')}"
    except (ValueError, UnicodeDecodeError, AttributeError):
        error, detail = {}, f"exit status {status}"
    detail = scrub_log(detail, call)
    if status == EXIT_REFUSED and str(error.get("code", "")).startswith("upload:user:"):
        # A format rule checked in the call (e.g. the operator allow-list): the rule's own code, no model log.
        raise SandboxRefused(
            scrub_log(str(error.get("message", "")), call)[:500],
            code=error["code"],
            details=error.get("details") or {},
        )
    if status == EXIT_MEMORY:
        raise SandboxMemoryExceeded(
            f"the model needed more than {limits.memory_mb} MiB of memory ({detail[:300]})", log=log_text
        )
    raise SandboxCrashed(f"the model crashed in the sandbox: {detail[:500]}", log=log_text)


def _isolation() -> Isolation:
    iso = isolation.probe()
    if not iso.ok:
        raise SandboxIsolationUnavailable(
            f"{SandboxIsolationUnavailable.code}: uploaded models are not run because the sandbox cannot "
            "isolate them "
            f"here ({iso.reason}); install bubblewrap and allow user namespaces (docs/security.md)"
        )
    if iso.mode == "unisolated":
        log.warning(
            "running an uploaded model WITHOUT isolation (%s=true): %s",
            isolation.ALLOW_UNISOLATED_ENV,
            iso.reason,
        )
    return iso


# The outcome label of a sandbox call that raised (logs and lwm_sandbox_calls_total).
_OUTCOMES: tuple[tuple[type[Exception], str], ...] = (
    (SandboxTimeout, "timeout"),
    (SandboxCpuExceeded, "cpu-exceeded"),
    (SandboxMemoryExceeded, "memory-exceeded"),
    (SandboxOutputInvalid, "output-invalid"),
    (SandboxRefused, "refused"),
    (SandboxIsolationUnavailable, "no-isolation"),
    (SandboxUnavailable, "unavailable"),
    (SandboxCrashed, "crashed"),
    (ValueError, "bad-call"),
)


def run_model(
    artifact: str | Path | bytes | Mapping[str, bytes],
    inputs: np.ndarray,
    *,
    kind: str = "torchscript",
    limits: SandboxLimits | None = None,
    base_model_path: str | None = None,
    pooling: str | None = None,
    layers_max_length: int | None = None,
    train: bool = False,
) -> np.ndarray:
    """``_run_model``, with one log line (outcome, seconds) and its metrics per call.

    Logged here in the worker, around the call: the job id and stage bound in this thread
    are on the line, and the forked child never needs to log.
    """
    started, outcome = time.perf_counter(), "error"
    try:
        out = _run_model(
            artifact,
            inputs,
            kind=kind,
            limits=limits,
            base_model_path=base_model_path,
            pooling=pooling,
            layers_max_length=layers_max_length,
            train=train,
        )
        outcome = "ok"
        return out
    except Exception as exc:
        outcome = next((name for cls, name in _OUTCOMES if isinstance(exc, cls)), "error")
        raise
    finally:
        seconds = time.perf_counter() - started
        log.log(
            logging.INFO if outcome == "ok" else logging.WARNING,
            "sandbox call %s: %s in %.3fs",
            kind,
            outcome,
            seconds,
            extra={"event": "sandbox-call", "kind": kind, "outcome": outcome, "seconds": round(seconds, 4)},
        )
        _count_call(kind if kind in KINDS else "unknown", outcome, seconds)


def _count_call(kind: str, outcome: str, seconds: float) -> None:
    from django.conf import settings

    if not settings.configured:  # a standalone script (benchmarks/) has no metrics to feed
        return
    from marketplace.core.metrics import SANDBOX_CALLS, SANDBOX_SECONDS

    SANDBOX_CALLS.labels(kind, outcome).inc()
    SANDBOX_SECONDS.labels(kind).observe(seconds)


def _run_model(
    artifact: str | Path | bytes | Mapping[str, bytes],
    inputs: np.ndarray,
    *,
    kind: str = "torchscript",
    limits: SandboxLimits | None = None,
    base_model_path: str | None = None,
    pooling: str | None = None,
    layers_max_length: int | None = None,
    train: bool = False,
) -> np.ndarray:
    """Run ``artifact`` on ``inputs`` in the sandbox and return its output array.

    ``artifact`` is a file path or bytes (TorchScript ``.pt`` / ONNX
    ``.onnx``, run by ONNX Runtime with one thread: ``specs.packaging.onnx_run``),
    or, for ``kind="peft_lora"``, a folder or ``{file name: bytes}`` with
    ``adapter_config.json`` and ``adapter_model.safetensors``; then ``inputs`` is an
    array of str and the output is the base model's mean-pooled, L2-normalised
    last hidden state with the adapter applied, (n, hidden) float32, and
    ``base_model_path`` is the base model's local folder (shown read-only to the sandbox). Without
    ``base_model_path`` the base is a *published* one: its Hugging Face folder is staged in the
    artifact as ``base/<file>`` and checked like an ``hf_encoder`` upload, its ``pooling`` is applied
    (``workers.sandbox.adapter_base_call``).
    For ``kind="hf_encoder"`` ``artifact`` is an uploaded base model's Hugging Face folder (a path or
    ``{file name: bytes}``), ``inputs`` an array of str, and the output the (n, hidden) float32
    embeddings under ``pooling`` ("mean" or "cls"), after the folder checks of
    ``specs.base_models`` (``workers.sandbox.base_model_call``). With ``layers_max_length`` set, an
    ``hf_encoder`` call returns every layer's mean-pooled embedding instead, (n, L, hidden) float32,
    texts truncated to that many tokens (model selection; ``pooling`` is then unused). With
    ``layers_max_length`` set, a ``peft_lora`` call on a published base returns every layer's states
    under the base's ``pooling``, (n, L, hidden) float32, with the staged LoRA, ``assembly.lwa`` (a merged
    LoRA or an Arrow router) or nothing applied (the reuse pipeline's ranking and assembly). With
    ``train``, a ``peft_lora`` call on a published base trains a LoRA and a head on it instead
    (``train.json`` staged beside ``base/``: ``workers.sandbox.adapter_train_call``) and returns the
    tensors as safetensors bytes, a uint8 array (model selection's ``requirements.adapter``).

    Raises
    ------
    SandboxTimeout, SandboxCpuExceeded, SandboxMemoryExceeded, SandboxCrashed
        The model misbehaved (a user error).
    SandboxRefused
        The artifact was refused before it ran (``code``: ``upload:user:unsafe-operator``...).
    SandboxOutputInvalid
        The output is not a numeric array.
    SandboxIsolationUnavailable
        This machine cannot isolate uploaded code; nothing was run.
    SandboxUnavailable
        Our side failed (transient).
    ValueError
        Unknown ``kind`` or inputs that cannot be saved without pickle.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    layered = kind == "hf_encoder" or (kind == "peft_lora" and base_model_path is None)
    if layers_max_length is not None and (not layered or layers_max_length < 2):
        raise ValueError(
            "layers_max_length (>= 2) is for kind='hf_encoder' or 'peft_lora' on a published base"
        )
    if train and (kind != "peft_lora" or base_model_path is not None or layers_max_length is not None):
        raise ValueError("train is for kind='peft_lora' on a published base, without layers_max_length")
    limits = limits or SandboxLimits()
    inputs = np.asarray(inputs)
    if inputs.dtype.kind == "O":
        raise ValueError("inputs must be a numeric or string array (object arrays need pickle)")
    iso = _isolation()
    call = Path(tempfile.mkdtemp(dir=private_calls_folder(iso)))  # 0700, one per call
    try:
        (call / "in").mkdir(mode=0o700)
        _stage(call / "in", artifact, inputs)
        if iso.drop_to_nobody:
            for path in [call, *call.rglob("*")]:
                os.chown(path, isolation.NOBODY, isolation.NOBODY)
        request = {
            "call": call.name,
            "kind": kind,
            "limits": asdict(limits),
            "base_model_path": base_model_path,
            "pooling": pooling,
            "mode": "train" if train else "layers" if layers_max_length is not None else "pooled",
            "max_length": layers_max_length,
        }
        # The server may first import torch.export or load a base model; allow for it beyond the call's own
        # limit.
        result = ask_fork_server(
            iso, request, base_model_binds(base_model_path), timeout=limits.wall_seconds + 180.0
        )
        answer = (call / "answer").read_bytes() if (call / "answer").exists() else b""
        if result["status"] != "exit" or result["code"] != 0:
            _raise_for(result, answer, call, limits)
        try:
            out = np.load(io.BytesIO(answer), allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise SandboxOutputInvalid(f"the model's output could not be read: {exc}") from exc
        if out.dtype.kind not in "biuf":
            raise SandboxOutputInvalid(f"the model returned a {out.dtype} array, not numbers")
        return out
    finally:
        shutil.rmtree(call, ignore_errors=True)


def sandbox_info() -> dict[str, Any]:
    """What the sandbox can enforce on this machine (shown in /healthz and the checks log)."""
    return isolation.isolation_status()
