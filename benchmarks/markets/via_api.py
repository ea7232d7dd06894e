"""The benchmark's ``--via api`` side: the same developers and users as :mod:`benchmarks.markets.ours`,
but through the public HTTP API and ``lwm_client`` on a live market (:mod:`live_market`), exactly as
outsiders (and the held-out markets that judge us) run them.

Per task, three public paths:

- ``free`` / ``lab``: the user's rows uploaded with ``Client.submit(data=..., labelled=...)``
  (tables as a DataFrame in the user's units, images as (n, 1, H, W) uint8 arrays in 0..255,
  texts as strings), without and then with the 50 labelled rows;
- ``rkme``: only the RKME the client computes (``Client.spec_table`` / ``spec_images`` /
  ``spec_texts``), submitted without rows (``lwm submit``'s path), and the same spec sent to
  ``Client.search_by_data`` (``search_order`` / ``search_mixture``).

Each delivered package is downloaded with ``Client.download_submission`` and run with the client's
predictor (``Client.load``) on the user's 200 rows. The fields recorded are ours.py's (order,
mixture, accuracy, method, label-free evidence, evaluate, refusals and crashes), so
:func:`benchmarks.markets.report.market_table` prints the same target table; :func:`compare`
prints how the API path differs from the in-process path on the same tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.markets import developers
from benchmarks.markets.base import MarketData
from benchmarks.markets.live_market import import_client

PATHS = ("free", "lab", "rkme")
TIMEOUT = 1800.0  # one submission under a loaded machine: minutes, never half an hour


def publish(market: MarketData, client: Any) -> tuple[dict[int, str], dict[str, bytes]]:
    """Every developer's package uploaded with ``Client.publish`` (waits until published; raises
    ``RejectedUpload`` otherwise). Returns {learnware id: domain} and {domain: model}."""
    by_learnware, models = {}, {}
    for i, (name, domain) in enumerate(market.domains.items()):
        models[name] = developers.train(domain, market.name, seed=i)
        upload = client.publish(developers.package(market, domain, models[name], seed=i), timeout=TIMEOUT)
        by_learnware[upload.learnware] = name
    return by_learnware, models


def user_rows(market: MarketData, task: dict[str, Any], labelled: bool = False) -> Any:
    """The rows as a user holds them: a DataFrame with the columns' names in the user's units, the
    images as uint8 pixels, or the texts."""
    X = task["X_l" if labelled else "X"]
    if market.modality == "table":
        import pandas as pd

        scale = task["units"] if task["units"] is not None else 1.0
        return pd.DataFrame(X * scale, columns=market.columns)
    if market.modality == "image":
        # As a user holds Fashion-MNIST: 0..255 pixels (the market's rows are those / 255, so this
        # is lossless); the client and the package must rescale them as the server does.
        return np.rint(X * 255.0).astype(np.uint8)
    return list(task["texts_l" if labelled else "texts"])


def client_spec(market: MarketData, task: dict[str, Any], client: Any) -> Any:
    """(RKME, feature space) computed by the client from the user's rows."""
    return client.spec(user_rows(market, task), modality=market.modality)


def _names(items: list[dict[str, Any]], by_learnware: dict[int, str]) -> list[str]:
    return [by_learnware.get(int(x.get("learnware_id") or -1), "?") for x in items]


def _record(
    key: str,
    task: dict[str, Any],
    market: MarketData,
    client: Any,
    sub: Any,
    by_learnware: dict[int, str],
    dest: Path,
) -> None:
    """ours.run's fields of one finished submission, its package run by the client's predictor."""
    results = sub.results or {}
    identify = results.get("identify") or {}
    task[f"{key}_order"] = _names(identify.get("singles") or [], by_learnware)
    mix = identify.get("mixture") or {}
    task[f"{key}_mixture"] = (
        set(_names(mix.get("components") or [], by_learnware)) if mix.get("proposed") else set()
    )
    try:
        path = client.download_submission(sub.id, dest=dest).path
        pred = client.load(path).predict(user_rows(market, task))
        task[f"{key}_acc"] = float(np.mean(np.asarray(pred).astype(str) == task["y"]))
    except Exception as exc:  # noqa: BLE001 - a package the user cannot run is a result here
        task[f"{key}_crash"] = f"package: {type(exc).__name__}: {exc}"
        return
    assemble = results.get("assemble") or {}
    task[f"{key}_method"] = assemble.get("chosen")
    task[f"{key}_label_free"] = assemble.get("label_free")
    if key == "lab":
        task["evaluate"] = results.get("evaluate") or {}


def _submit(key: str, task: dict[str, Any], client: Any, **kwargs: Any) -> Any:
    """One submission through the client; a refusal (a 4xx, or a job failed with a ``:user:`` code)
    and a crash are recorded as ours.py records them. Returns the finished submission or None."""
    lwm = import_client()
    try:
        return client.submit(task="classification", timeout=TIMEOUT, **kwargs)
    except lwm.errors.JobFailed as exc:
        task[f"{key}_{'refused' if ':user:' in exc.code else 'crash'}"] = f"{exc.code}: {exc}"
    except (lwm.errors.BadRequest, lwm.errors.Conflict, lwm.errors.NotFound) as exc:
        task[f"{key}_refused"] = f"{exc.code}: {exc}"
    except lwm.LwmError as exc:
        task[f"{key}_crash"] = f"{type(exc).__name__} {exc.code}: {exc}"
    return None


def run(
    market: MarketData, task: dict[str, Any], client: Any, by_learnware: dict[int, str], dest: Path
) -> None:
    """The task's three public paths (module docstring); fields ``free_*``, ``lab_*``, ``rkme_*``,
    ``search_*`` and ``evaluate`` are written into ``task``."""
    dest.mkdir(parents=True, exist_ok=True)
    modality = market.modality
    for key, labelled in (("free", False), ("lab", True)):
        pair = (user_rows(market, task, labelled=True), task["y_l"]) if labelled else None
        sub = _submit(key, task, client, data=user_rows(market, task), labelled=pair, modality=modality)
        if sub is not None:
            _record(key, task, market, client, sub, by_learnware, dest)
    lwm = import_client()
    try:
        spec = client_spec(market, task, client)
    except lwm.LwmError as exc:
        task["rkme_refused"] = f"{exc.code}: {exc}"
        return
    found = client.search_by_data(spec, k=10)
    task["search_order"] = [by_learnware.get(h.learnware_id, "?") for h in found.results]
    m = found.mixture
    task["search_mixture"] = (
        set(_names(m.components, by_learnware)) if m is not None and m.proposed else set()
    )
    sub = _submit("rkme", task, client, spec=spec, modality=modality)
    if sub is not None:
        _record("rkme", task, market, client, sub, by_learnware, dest)


# --- the API path against the in-process path ---------------------------------------------------
def _pct(flags: list[bool]) -> str:
    return f"{sum(flags)}/{len(flags)}" if flags else "n/a"


def _acc_gap(pairs: list[tuple[float, float]]) -> str:
    if not pairs:
        return "n/a"
    gaps = [a - b for a, b in pairs]
    return f"mean {np.mean(gaps):+.3f}, max |gap| {max(abs(g) for g in gaps):.3f} (n={len(gaps)})"


def compare(name: str, api: list[dict[str, Any]], local: list[dict[str, Any]]) -> list[str]:
    """Per market: how often the API path and the in-process path agree on the same tasks (they
    should, everywhere), then the client-side RKME path against the uploaded rows."""
    out = [f"\n== {name}: API path vs in-process path, same {len(api)} tasks =="]
    for key in ("free", "lab"):
        both = [
            (a, b) for a, b in zip(api, local, strict=True) if f"{key}_order" in a and f"{key}_order" in b
        ]
        out.append(
            f"  {key:<5} ranking identical {_pct([a[f'{key}_order'] == b[f'{key}_order'] for a, b in both])}"
            f"  top-1 identical {_pct([a[f'{key}_order'][:1] == b[f'{key}_order'][:1] for a, b in both])}"
            f"  mixture identical {_pct([a[f'{key}_mixture'] == b[f'{key}_mixture'] for a, b in both])}"
            f"  method identical {_pct([a.get(f'{key}_method') == b.get(f'{key}_method') for a, b in both])}"
        )
        accs = [
            (a[f"{key}_acc"], b[f"{key}_acc"]) for a, b in both if f"{key}_acc" in a and f"{key}_acc" in b
        ]
        out.append(f"        accuracy API - in-process: {_acc_gap(accs)}")
        fails = [
            (a.get(f"{key}_{k}"), b.get(f"{key}_{k}"))
            for a, b in zip(api, local, strict=True)
            for k in ("crash", "refused")
        ]
        differ = [f"API {x!r} / in-process {y!r}"[:200] for x, y in fails if (x or y) and x != y]
        out += [f"        refusal/crash differs: {d}" for d in differ[:4]]
    verdicts = [
        (a["evaluate"].get("verdicts"), b["evaluate"].get("verdicts"))
        for a, b in zip(api, local, strict=True)
        if a.get("evaluate") and b.get("evaluate")
    ]
    out.append(f"  verdicts identical {_pct([x == y for x, y in verdicts])}")
    rk = [t for t in api if "rkme_order" in t and "free_order" in t]
    out.append(
        f"  client RKME (no rows sent) vs rows uploaded: top-1 identical "
        f"{_pct([t['rkme_order'][:1] == t['free_order'][:1] for t in rk])}, top-1 correct (single) "
        f"{_pct([t['rkme_order'][:1] == list(t['mix'])[:1] for t in rk if t['kind'] == 'single'])}"
        f" vs {_pct([t['free_order'][:1] == list(t['mix'])[:1] for t in rk if t['kind'] == 'single'])}"
    )
    out.append(
        f"        accuracy RKME-only - rows: "
        f"{_acc_gap([(t['rkme_acc'], t['free_acc']) for t in rk if 'rkme_acc' in t and 'free_acc' in t])}"
    )
    se = [t for t in api if "search_order" in t and "rkme_order" in t]
    out.append(
        f"  search_by_data (same client RKME) top-1 = RKME submission's top-1 "
        f"{_pct([t['search_order'][:1] == t['rkme_order'][:1] for t in se])}, mixture identical "
        f"{_pct([t['search_mixture'] == t['rkme_mixture'] for t in se])}"
    )
    fails = [t[k] for t in api for k in ("rkme_crash", "rkme_refused") if k in t]
    out += [f"  rkme path: {f[:200]}" for f in fails[:4]]
    return out
