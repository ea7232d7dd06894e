"""Predict with a package of unknown origin in a separate, isolated process.

``Client.load(path)`` runs a package in this process only when its sha256 is one this
client downloaded and verified from a market (``remember_verified``, kept in
``verified.json`` next to the config file); any other package gets an
``IsolatedPredictor``: each ``predict``/``predict_proba`` starts
``python -m lwm_client.isolated`` that loads and runs the package there and returns the
``.npy`` bytes of the result on stdout. ``isolate=True/False`` (or ``LWM_ISOLATE=1/0``)
overrides the default.

With ``bwrap`` (Debian ``bubblewrap``) on PATH, that process runs in new user, PID, mount,
network, IPC and UTS namespaces with a cleared environment, a read-only view of the
Python runtime, this client's code and the package, and a private ``/tmp``: no network, no
home folder, nothing it starts survives. Without it, a plain subprocess with CPU-time and
file-size limits and a cleared environment runs instead, and a ``RuntimeWarning`` says so.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from lwm_client.config import config_path
from lwm_client.errors import LwmError
from specs.adapter_runtime import is_adapter_recipe
from specs.packaging import bubblewrap

CPU_SECONDS = 600
FILE_BYTES = 64 * 2**20
TMP_BYTES = 256 * 2**20  # the isolated prediction's scratch space
ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}


class IsolatedPredictionFailed(LwmError):
    """The isolated process could not predict (its stderr, shortened, is the message)."""


# --- which packages are trusted in-process ---------------------------------------------------------
def _verified_path() -> Path:
    return config_path().parent / "verified.json"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def remember_verified(sha256: str, source: str) -> None:
    """Record a package this client downloaded and checked against the market's sha256."""
    path = _verified_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    known = json.loads(path.read_text()) if path.exists() else {}
    known[sha256] = source
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(known, indent=1))
    tmp.chmod(0o600)
    tmp.replace(path)


def is_verified(path: str | Path) -> bool:
    known = _verified_path()
    return known.exists() and file_sha256(path) in json.loads(known.read_text())


def should_isolate(path: str | Path, isolate: bool | None) -> bool:
    """``isolate`` if given, else ``LWM_ISOLATE`` (1/0), else: unless verified from a market."""
    if isolate is not None:
        return isolate
    env = os.environ.get("LWM_ISOLATE", "").strip().lower()
    if env in ("1", "true", "yes", "always"):
        return True
    if env in ("0", "false", "no", "never"):
        return False
    return not is_verified(path)


# --- the parent side ----------------------------------------------------------------------------
def _code_dirs() -> list[Path]:
    import lwm_client
    import specs

    return [Path(lwm_client.__file__).resolve().parent, Path(specs.__file__).resolve().parent]


def _bwrap_argv(bwrap: str, folder: Path, command: list[str]) -> list[str]:
    """The bwrap command running ``command`` with the package's ``folder`` read-only at ``/in`` (the view
    shared with the server's sandbox is ``specs.packaging.bubblewrap``'s)."""
    return bubblewrap.bwrap_argv(
        bwrap,
        command,
        env={**ENV, "PYTHONPATH": "/lwm"},
        ro_binds=[
            *((path, path) for path in bubblewrap.runtime_dirs()),
            *((str(code), f"/lwm/{code.name}") for code in _code_dirs()),
            (str(folder), "/in"),
        ],
        tmp_bytes=TMP_BYTES,
    )


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_BYTES, FILE_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_isolated(
    package: Path, X: Any, base: Path | None = None, bases: dict[str, Path] | None = None
) -> np.ndarray:
    """``Predictor.from_path(package).predict_proba(X)``, computed in an isolated process; ``base``
    (a model-selection package's base model: its package zip or folder) travels read-only with it, and
    so do ``bases`` (package sha256 -> zip of a base version an assembly's members run on)."""
    from lwm_client.base_heads import package_sha

    inputs = np.asarray(X)
    if inputs.dtype.kind == "O":
        raise ValueError("inputs must be numbers or strings (object arrays need pickle)")
    with tempfile.TemporaryDirectory(prefix="lwm-isolated-") as tmp:  # 0700
        folder = Path(tmp)
        shutil.copyfile(package, folder / "package.zip")
        if base is not None and base.is_dir():
            shutil.copytree(base, folder / "base", symlinks=False)
        elif base is not None:
            shutil.copyfile(base, folder / "base.zip")
        for sha, source in (bases or {}).items():
            (folder / "bases").mkdir(exist_ok=True)  # the name is checked: it comes from the package's recipe
            shutil.copyfile(source, folder / "bases" / f"{package_sha({'package_sha256': sha})}.zip")
        np.save(folder / "inputs.npy", inputs, allow_pickle=False)
        command = [
            str(Path(sys.prefix).resolve() / "bin" / "python"),
            "-s",
            "-B",
            "-m",
            "lwm_client.isolated",
            "/in",
        ]
        bwrap = shutil.which("bwrap")
        if bwrap:
            argv, env = _bwrap_argv(bwrap, folder, command), {}
        else:
            warnings.warn(
                "bubblewrap (bwrap) is not installed: this package runs in a plain subprocess with CPU and "
                "file-size limits only, not isolated from your files or the network",
                RuntimeWarning,
                stacklevel=3,
            )
            command[-1] = str(folder)
            pythonpath = os.pathsep.join(str(p.parent) for p in _code_dirs())
            argv, env = command, {**ENV, "PYTHONPATH": pythonpath, "HOME": str(folder), "TMPDIR": str(folder)}
        proc = subprocess.run(
            argv,
            capture_output=True,
            env=env,
            cwd=str(folder),
            preexec_fn=_limits,
            start_new_session=True,
            timeout=CPU_SECONDS * 2,
        )
    if proc.returncode != 0:
        raise IsolatedPredictionFailed(
            f"the isolated prediction failed (exit {proc.returncode}): "
            f"{proc.stderr.decode(errors='replace')[-1500:]}",
            code="predict:user:isolated-failed",
        )
    return np.load(io.BytesIO(proc.stdout), allow_pickle=False)


class IsolatedPredictor:
    """The ``Predictor`` interface for a package of unknown origin: each call runs in an isolated process."""

    def __init__(self, path: str | Path, base: str | Path | None = None) -> None:
        self.path = Path(path)
        with zipfile.ZipFile(self.path) as zf:  # plain data only, parsed safely, to label the results here
            names = set(zf.namelist())
            self.manifest = yaml.safe_load(zf.read("learnware.yaml"))
            recipe = json.loads(zf.read("recipe.json")) if "recipe.json" in names else None
        self.task = (recipe or {}).get("task") or self.manifest.get("task", "classification")
        if recipe is not None and is_adapter_recipe(recipe) and "head.lwa" not in names:
            self.task = "embedding"  # an adapter package without a head embeds (as Predictor says)
        out = self.manifest.get("output") or {}
        self.classes = list((recipe or {}).get("classes") or out.get("classes") or []) or None
        from lwm_client.base_heads import base_reference, base_source, member_base_references

        self.base: Path | None = None
        ref = base_reference(self.path)  # a head's, an adapter's or an assembly's published base
        # The base versions an assembly's members are pinned to: the fetched zips (sha256-named).
        self.bases = {
            str(r["package_sha256"]): base_source(r, None) for r in member_base_references(self.path)
        }
        if ref is not None:  # found (or refused with a named error) here, run there
            self.base = base_source(ref, base)
        else:  # a text model on a published base: the base version it is pinned to, or ``base``
            from lwm_client.model_bases import model_base_source

            self.base = model_base_source(self.manifest, file_sha256(self.path), base)

    def predict_proba(self, X: Any) -> np.ndarray:
        return run_isolated(self.path, X, self.base, {k: v for k, v in self.bases.items() if v is not None})

    def predict(self, X: Any) -> np.ndarray:
        from lwm_client.predict import Predictor

        return Predictor.labels(self, self.predict_proba(X))  # type: ignore[arg-type]  # uses task and classes only


# --- the isolated side -----------------------------------------------------------------------------
def main(folder: str) -> None:
    answer = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything the package prints goes to stderr, never into the answer
    from lwm_client.predict import Predictor

    inputs = np.load(Path(folder) / "inputs.npy", allow_pickle=False)
    X = inputs.tolist() if inputs.dtype.kind == "U" else inputs
    given = [p for p in (Path(folder) / "base", Path(folder) / "base.zip") if p.exists()]
    bases = {p.stem: p for p in sorted((Path(folder) / "bases").glob("*.zip"))}
    out = Predictor.from_path(Path(folder) / "package.zip", given[0] if given else None, bases).predict_proba(
        X
    )
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(out), allow_pickle=False)
    answer.write(buffer.getvalue())
    answer.flush()


if __name__ == "__main__":
    main(sys.argv[1])
