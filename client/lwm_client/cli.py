"""``lwm``: the market from a shell. Human output by default, ``--json`` for scripts.

Exit codes: 0 ok, 1 an error from the market or the data (its type and code printed),
2 bad usage.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from lwm_client import data as local
from lwm_client import model_selection
from lwm_client.client import Client
from lwm_client.errors import ConfigError, LwmError, NotFound


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items() if k != "raw"}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "raw"}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _client(args: argparse.Namespace) -> Client:
    return Client(args.url, args.token, timeout=args.timeout, progress=not args.json and sys.stderr.isatty())


def _labelled(path: str | None, label_column: str, modality: str) -> tuple[Any, Any] | None:
    if not path:
        return None
    if modality == "text":
        rows = [
            json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()
        ]
        return [r["text"] for r in rows], [str(r[label_column]) for r in rows]
    if modality == "image":
        return local.read_labelled_images(path, label_column=label_column)
    X, _, y = local.read_table(path, label_column=label_column)
    return X, y


# --- commands: each returns (object for --json, text for humans) -------------------------------
def cmd_login(args: argparse.Namespace) -> tuple[Any, str]:
    username = args.username or input("username: ")
    password = args.password or os.environ.get("LWM_PASSWORD") or getpass.getpass("password: ")
    client = _client(args)
    client.login(username, password, name=args.name)
    return {
        "url": client.config.url,
        "username": username,
        "saved": True,
    }, f"logged in to {client.config.url} as {username}"


def cmd_spec(args: argparse.Namespace) -> tuple[Any, str]:
    client = _client(args)
    space = client.feature_space(args.space) if args.space else None
    columns = args.columns.split(",") if args.columns else None
    kwargs: dict[str, Any] = {"space": space} | ({"columns": columns} if args.modality == "table" else {})
    if args.base_model:  # a published text base's space, the texts embedded here by the base
        kwargs |= {"base_model": args.base_model, "base": args.base}
    spec, space = client.spec(args.data, modality=args.modality, **kwargs)
    text = json.dumps(local.rkme_document(spec))  # with the rows' unit_rms for a table space
    Path(args.output).write_text(text)
    out = {
        "file": args.output,
        "feature_space": space.key,
        "K": int(spec.Z_.shape[0]),
        "d": int(spec.Z_.shape[1]),
        "n_rows": int(spec.n_samples_),
        "gamma": float(spec.gamma_),
    }
    return (
        out,
        f"wrote {args.output}: RKME of {out['n_rows']} rows, K={out['K']}, in {space.key} (your data stayed "
        "here)",
    )


def cmd_package_check(args: argparse.Namespace) -> tuple[Any, str]:
    summary = Client.check(args.package, deep=args.deep)  # no server needed
    return {"ok": True, **summary}, "ok: " + ", ".join(f"{k}={v}" for k, v in summary.items())


def cmd_publish(args: argparse.Namespace) -> tuple[Any, str]:
    upload = _client(args).publish(
        args.package, learnware=args.learnware, wait=not args.no_wait, timeout=args.wait_timeout
    )
    out = {
        "learnware": upload.learnware,
        "version": upload.version,
        "job": upload.job,
        "status": upload.status,
        "sha256": upload.final.artifact_sha256 if upload.final else None,
    }
    return out, f"learnware {upload.learnware} v{upload.version}: {upload.status} (job {upload.job})"


def _components_text(components: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"#{c.get('learnware_id', '?')} {c.get('name', '')} v{c.get('version', c['version_id'])}: "
        f"weight {c['weight']:.2f}"
        for c in components
    )


def _hits_text(result: Any) -> str:
    lines = []
    for h in result.results:
        score = (
            f"mmd2={h.mmd2:.4f}"
            if h.mmd2 is not None
            else f"sim={h.similarity:.3f}"
            if h.similarity is not None
            else ""
        )
        lines.append(
            f"#{h.learnware_id:<5} v{h.version:<3} {h.name[:40]:40} {h.modality:6} {h.task:14} {score}"
        )
    mix = result.mixture
    if mix and mix.proposed:
        lines.append(
            f"mixture proposed (mmd2={mix.mmd2:.4f} vs best single {mix.best_single_mmd2:.4f}, "
            f"p={mix.p_value:.3f}): {_components_text(mix.components)}"
        )
    elif mix and mix.suggestion:
        lines.append(
            f"suggested mixture, not significant (p={mix.suggestion['p_value']:.3f}): "
            f"{_components_text(mix.suggestion['components'])}"
        )
    lines += _cross_space_lines(result)
    return "\n".join(lines) or "no results"


def _cross_space_lines(result: Any) -> list[str]:
    """A sent file's column match and the other spaces' learnwares ranked on the shared columns: the
    noise-calibrated score (coverage x exp(-excess MMD² / sampling noise)) and which columns were compared
    and are missing — a raw similarity would read ~1 for any two real marginals."""
    lines = []
    cols = getattr(result, "columns", None) or {}
    if cols.get("missing") or cols.get("extra"):
        lines.append(
            f"your columns: missing {', '.join(cols.get('missing') or []) or '-'}; "
            f"extra (ignored) {', '.join(cols.get('extra') or []) or '-'}"
        )
    for m in cols.get("suggestions") or []:
        lines.append(f"suggested rename (not applied): {m['yours']}={m['theirs']} ({m['confidence']:.2f})")
    hits = getattr(result, "cross_space", None) or []
    if hits:
        lines.append("other spaces sharing your columns:")
    for h in hits:
        lines.append(
            f"#{h['learnware_id']:<5} v{h['version']:<3} {str(h['name'])[:40]:40} score={h['score']:.3f} "
            f"coverage={h['coverage']:.2f} mmd2={h['mmd2']:.4f} (noise {h['noise']:.4f})"
        )
        lines.append(f"       compared on: {', '.join(h['compared'])}")
        if h.get("missing"):
            lines.append(f"       missing (filled when reused): {', '.join(h['missing'])}")
    return lines


def _renames(text: str) -> dict[str, str] | None:
    """``--column-map your_name=learnware_name,a=b`` as the dict the client takes (None when empty)."""
    pairs = (p.split("=", 1) for p in text.split(",") if "=" in p)
    return {a.strip(): b.strip() for a, b in pairs} or None


def cmd_search(args: argparse.Namespace) -> tuple[Any, str]:
    client = _client(args)
    filters = {
        "modality": args.modality,
        "task": args.task,
        "kind": getattr(args, "kind", None),  # absent from Namespaces built by older callers
        "license": args.license,
        "owner": args.owner,
        "tags": args.tags.split(",") if args.tags else None,
    }
    if args.data and args.upload:
        result = client.search_by_file(
            args.data, feature_space=args.space, k=args.k, column_map=_renames(args.column_map)
        )
    elif args.data:
        space = client.feature_space(args.space) if args.space else None
        pair = client.spec(args.data, modality=args.data_modality, space=space)
        result = client.search_by_data(pair, k=args.k, **filters)
    else:
        result = client.search(args.query or "", limit=args.k, **filters)
    return _plain(result), _hits_text(result)


def cmd_submit(args: argparse.Namespace) -> tuple[Any, str]:
    client = _client(args)
    space = client.feature_space(args.space) if args.space else None
    labelled = _labelled(args.labelled, args.label_column, args.modality)
    common: dict[str, Any] = {
        "labelled": labelled,
        "task": args.task,
        "modality": args.modality,
        "name": args.name,
        "wait": not args.no_wait,
        "timeout": args.wait_timeout,
    }
    renames = _renames(args.column_map)
    if renames and args.modality != "table":
        raise ConfigError("--column-map renames table columns; it needs --modality table", code="cli:usage")
    if args.upload:
        requirements = {"feature_space": space.key} if space else None
        sub = client.submit(data=args.data, requirements=requirements, column_map=renames, **common)
    elif renames:  # the RKME is computed here, on the columns matched by name after the renames
        sub = client.submit(client.spec_table(args.data, space=space, column_map=renames), **common)
    else:
        sub = client.submit(client.spec(args.data, modality=args.modality, space=space), **common)
    out = _plain(sub)
    text = f"submission {sub.id}: {sub.status} (stage {sub.stage})"
    if args.download and sub.status == "succeeded":
        dl = client.download_submission(sub.id, dest=args.download)
        out["download"] = _plain(dl)
        text += f"\npackage: {dl.path} ({dl.size} bytes, sha256 {dl.sha256[:12]}…)"
    return out, text


def cmd_status(args: argparse.Namespace) -> tuple[Any, str]:
    client = _client(args)
    try:
        item: Any = client.submission(args.id)
        kind = "submission"
    except NotFound:
        item, kind = client.job(args.id), "job"
    return {
        "kind": kind,
        **_plain(item),
    }, f"{kind} {item.id}: {item.status}, stage {item.stage!r} {item.progress}% {item.message}"


def cmd_download(args: argparse.Namespace) -> tuple[Any, str]:
    client = _client(args)
    if args.submission:
        dl = client.download_submission(args.submission, dest=args.output)
    else:
        dl = client.download(args.learnware, args.version, dest=args.output)
    return _plain(dl), f"{dl.path}: {dl.size} bytes, sha256 {dl.sha256} verified"


def cmd_predict(args: argparse.Namespace) -> tuple[Any, str]:
    predictor = Client.load(args.package, isolate=args.isolate)
    modality = predictor.manifest.get("modality", "table")
    if modality == "text":
        X: Any = local.read_texts(args.data)
    elif modality == "image":
        X = local.read_images(args.data)
    else:
        # The package's columns, by name (an assembly takes the submitter's file as given: its recipe's
        # input).
        columns = ((getattr(predictor, "recipe", None) or {}).get("input") or {}).get("columns") or (
            predictor.manifest.get("input") or {}
        ).get("columns")
        X = local.read_table(
            args.data, columns=[c["name"] if isinstance(c, dict) else c for c in columns] if columns else None
        )[0]
    out = predictor.predict_proba(X) if args.proba else predictor.predict(X)
    return {"predictions": _plain(out)}, "\n".join(str(_plain(r)) for r in out)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lwm", description="Learnware Market client")
    p.add_argument("--url", help="server URL (else LWM_URL, else the config file)")
    p.add_argument("--token", help="API token (else LWM_TOKEN, else the config file)")
    p.add_argument("--timeout", type=float, help="seconds per HTTP request")
    p.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("login", help="get a token and save it in ~/.config/lwm/config.json")
    s.add_argument("--username"), s.add_argument("--password"), s.add_argument("--name", default="lwm-cli")
    s.set_defaults(fn=cmd_login)

    s = sub.add_parser("spec", help="compute the RKME of local data (the data stay here)")
    s.add_argument("data"), s.add_argument("-o", "--output", default="rkme.json")
    s.add_argument("--modality", choices=["table", "image", "text"], default="table")
    (
        s.add_argument("--columns", help="comma-separated column names, for unnamed data"),
        s.add_argument("--space"),
    )
    s.add_argument("--base-model", help="text: a published base model's key (its space text-<key>)")
    s.add_argument("--base", help="with --base-model: a local copy of the base (folder or package zip)")
    s.set_defaults(fn=cmd_spec)

    pk = sub.add_parser("package", help="package tools").add_subparsers(dest="package_command", required=True)
    s = pk.add_parser("check", help="run the server's upload checks locally")
    (
        s.add_argument("package", help="zip file or folder"),
        s.add_argument("--deep", action="store_true", help="also load and run the model"),
    )
    s.set_defaults(fn=cmd_package_check)

    s = sub.add_parser("publish", help="upload a package and wait until it is published")
    (
        s.add_argument("package"),
        s.add_argument("--learnware", type=int, help="publish as a new version of this learnware"),
    )
    (
        s.add_argument("--no-wait", action="store_true"),
        s.add_argument("--wait-timeout", type=float, default=900),
    )
    s.set_defaults(fn=cmd_publish)

    s = sub.add_parser("search", help="search by text and filters, or by data (--data)")
    s.add_argument("query", nargs="?"), s.add_argument("--data", help="local data: only its RKME is sent")
    (
        s.add_argument("--data-modality", choices=["table", "image", "text"], default="table"),
        s.add_argument("--space"),
    )
    for name in ("modality", "task", "license", "owner", "tags"):
        s.add_argument(f"--{name}")
    s.add_argument("--kind", choices=["model", "adapter", "base_model"])
    s.add_argument("-k", type=int, default=10)
    s.add_argument(
        "--upload",
        action="store_true",
        help="send the CSV's rows, not only its RKME: columns matched by name, and learnwares of other "
        "spaces ranked on the columns you share",
    )
    s.add_argument("--column-map", default="", help="with --upload: your_name=learnware_name,a=b")
    s.set_defaults(fn=cmd_search)

    s = sub.add_parser("submit", help="submit a task: the RKME of your data (+ an optional labelled sample)")
    s.add_argument("data"), s.add_argument("--labelled"), s.add_argument("--label-column", default="label")
    s.add_argument("--modality", choices=["table", "image", "text"], default="table")
    s.add_argument("--task", choices=["classification", "regression"], default="classification")
    s.add_argument("--space"), s.add_argument("--name", default="")
    (
        s.add_argument("--no-wait", action="store_true"),
        s.add_argument("--wait-timeout", type=float, default=900),
    )
    s.add_argument("--download", help="folder to download the assembled package into (created if missing)")
    s.add_argument(
        "--upload",
        action="store_true",
        help="send the rows themselves instead of their RKME (the market can then run every learnware on "
        "them)",
    )
    s.add_argument(
        "--column-map", default="", help="rename your table's columns: your_name=learnware_name,a=b"
    )
    s.set_defaults(fn=cmd_submit)

    s = sub.add_parser("status", help="status of a submission or job")
    s.add_argument("id")
    s.set_defaults(fn=cmd_status)

    s = sub.add_parser(
        "download", help="download a learnware version or a submission's package (sha256 verified)"
    )
    s.add_argument("learnware", type=int, nargs="?"), s.add_argument("--version", type=int)
    s.add_argument("--submission"), s.add_argument("-o", "--output", default=".")
    s.set_defaults(fn=cmd_download)

    s = sub.add_parser(
        "predict", help="predict with a downloaded package (TorchScript or ONNX, checked before it runs)"
    )
    s.add_argument("package"), s.add_argument("data"), s.add_argument("--proba", action="store_true")
    s.add_argument(
        "--isolate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the model in an isolated process (default: unless this client downloaded and verified it)",
    )
    s.set_defaults(fn=cmd_predict)
    model_selection.add_parser(sub).set_defaults(
        fn=lambda a: model_selection.cmd_rank_models(a, lambda: _client(a))
    )
    return p


def _file_error(exc: OSError | zipfile.BadZipFile) -> dict[str, str]:
    if isinstance(exc, zipfile.BadZipFile):
        return {"code": "cli:user:not-a-zip", "message": f"not a zip package: {exc}"}
    name = exc.filename or ""
    if isinstance(exc, FileNotFoundError):
        return {"code": "cli:user:file-not-found", "message": f"no such file: {name}"}
    if isinstance(exc, IsADirectoryError):
        return {"code": "cli:user:is-a-folder", "message": f"{name} is a folder, a file was expected"}
    if isinstance(exc, PermissionError):
        return {"code": "cli:user:permission", "message": f"permission denied: {name}"}
    return {"code": "cli:user:file", "message": f"{name}: {exc.strerror or exc}"}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "download" and not (args.learnware or args.submission):
        parser().error("download needs a learnware id or --submission")
    try:
        obj, text = args.fn(args)
    except LwmError as exc:
        if args.json:
            print(json.dumps({"error": exc.to_dict()}, default=str))
        else:
            print(
                f"error: {type(exc).__name__}: {exc.message}" + (f" [{exc.code}]" if exc.code else ""),
                file=sys.stderr,
            )
        return 1
    except (OSError, zipfile.BadZipFile) as exc:
        # A user's mistake (a missing file, a folder for a file, not a zip): one line naming it, no traceback.
        error = _file_error(exc)
        print(
            json.dumps({"error": error}) if args.json else f"error: {error['message']} [{error['code']}]",
            file=sys.stdout if args.json else sys.stderr,
        )
        return 1
    print(json.dumps(obj, default=str) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
