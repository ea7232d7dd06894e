"""``benchmarks/heterogeneous.py --scenario multi``: column subsets published by SEVERAL developers, and an
assembly of them for a user from two domains who lacks 1-2 of the columns.

    .venv/bin/python benchmarks/heterogeneous.py --scenario multi [--subsets 3] [--publishers 3]
        [--users 3] [--seed 0]

Market: ``--subsets`` seeded column subsets of 6-8 of POOL; each is one table space, published by
``--publishers`` carriers (distinct within the subset, drawn from the 10 largest): each a late-arrival
classifier (logistic regression on the space's coordinates, unit-free: each upload divided by its own
RMS, then the space's mean/scale, fitted on the first publisher's rows) with its RKME (K = 50) of 2,000
of its rows. Carriers differ in routes and delays, so their RKMEs relate the columns differently.
Users: for every pair of a space's publishers, ``--users`` users of 250 held-out rows of each of the
two carriers, lacking 1-2 (seeded) of the space's columns.

The assembled module is every publisher of the space under the zero-shot RKME job selector
(``specs.assembly.RKMEJobSelector``, uniform weights: the assembly's transform routes each row to the
member whose RKME density is highest) on the plan's rows (``reuse_spec``: the identified learnware's
fill, in the space's coordinates), the identified learnware being the publisher whose restricted RKME
is closest to the user's rows on the shared columns (``reuse_impute.plan_imputation``); the members see
the rows through the mixture unit factor (``reuse_shared.unit_factor``, uniform weights). Accuracy on
the 450 rows outside 50 labelled ones, for:
* per-member fills: each member receives the missing columns from its OWN RKME
  (``specs.impute.member_rows``, what the pipeline does),
* one shared fill: every member receives the identified learnware's fill (the pipeline before),
* all columns: the user's true columns (routing on them too),
* from scratch: a logistic regression on the user's columns trained on the 50 labelled rows.
Printed: means over users with 95 % intervals (t over users), and the paired difference per-member
minus shared with its interval.
"""

from __future__ import annotations

import itertools

import numpy as np
from heterogeneous import POOL, _coordinates, _logistic

from specs import TableStandardizer, default_gamma, rkme_fit
from specs.assembly import RKMEJobSelector
from specs.impute import filled_rms, impute_raw, member_fill, member_rows
from specs.marginal import embedding_terms, restricted_gamma, to_space_units
from specs.units import mixture_unit_factor, unit_rms

K = 50
ROWS_PER_DOMAIN = 250


def _interval(values: list[float]) -> str:
    """mean [95 % t-interval over users]."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.inf
    return f"{v.mean():.3f} [{v.mean() - half:.3f}, {v.mean() + half:.3f}]"


def _publish(part, dev_rows: np.ndarray, cols: list[int], std: TableStandardizer) -> dict:
    Xd = part[POOL].to_numpy(np.float64)[dev_rows][:, cols]
    yd = (part["arr_delay"].to_numpy()[dev_rows] > 15).astype(int)
    Zd = std.transform(Xd)
    spec = rkme_fit(Zd, K, default_gamma(len(cols)), random_state=0)
    return {"std": std, "spec": spec, "model": _logistic(Zd, yd), "rms": unit_rms(Xd)}


def _plan(
    devs: list[dict], std: TableStandardizer, held: list[int], missing: list[int], X: np.ndarray
) -> dict:
    """The pipeline's plan (``reuse_impute.plan_imputation``) for rows X (space order, NaN where missing):
    the identified learnware is the publisher closest to the rows on the shared columns."""
    Xo = X[:, held]
    rms = unit_rms(Xo)
    U = to_space_units(Xo, mean=std.mean_[held], scale=std.scale_[held], rms=rms)
    u = np.full(U.shape[0], 1.0 / U.shape[0])
    mmd2 = [
        embedding_terms(U, u, d["spec"].Z_[:, held], d["spec"].beta_, restricted_gamma(len(held))).mmd2
        for d in devs
    ]
    src = devs[int(np.argmin(mmd2))]
    return {
        "observed": held,
        "missing": missing,
        "mean": std.mean_.tolist(),
        "scale": std.scale_.tolist(),
        "unit_free": True,
        "rms": rms.tolist(),
        "rms_missing": src["rms"][missing].tolist(),
        "Z": src["spec"].Z_.tolist(),
        "beta": src["spec"].beta_.tolist(),
        "gamma": None,
        "ridge": [],
    }


def _route(devs: list[dict], std: TableStandardizer, rows: np.ndarray, rms: np.ndarray) -> np.ndarray:
    """The zero-shot job selector's member (n,) for each row (``rows`` in the user's units, ``rms`` their
    unit-free RMS), routed in the space's coordinates."""
    selector = RKMEJobSelector(task="classification", n_classes=2).fit(
        [d["spec"].Z_ for d in devs], [d["spec"].beta_ for d in devs], devs[0]["spec"].gamma_
    )
    return selector.route(to_space_units(rows, mean=std.mean_, scale=std.scale_, rms=rms))


def _assembled(devs: list[dict], route: np.ndarray, factor: np.ndarray, member_input) -> np.ndarray:
    """The assembly's prediction: each row to its ``route`` member, which predicts from
    ``member_input(k)`` (rows in the user's units) divided by the unit ``factor``, as it receives them."""
    out = np.empty(route.shape[0], dtype=int)
    for k, dev in enumerate(devs):
        mine = route == k
        if mine.any():
            out[mine] = dev["model"].predict(_coordinates(dev, member_input(k)[mine] / factor))
    return out


def run_multi(frame, carriers, args) -> None:
    rng = np.random.default_rng(args.seed)
    pools = {}
    for carrier in carriers:
        part = frame[frame["carrier"] == carrier]
        order = rng.permutation(len(part))
        pools[carrier] = (part, order[:2000], order[2000:4000])
    results: list[dict[str, float]] = []
    print(
        f"{args.subsets} column subsets x {args.publishers} publishing carriers each (unit-free spaces), "
        f"users of {ROWS_PER_DOMAIN} rows from each of two publishers' carriers, lacking 1-2 columns"
    )
    for _ in range(args.subsets):
        cols = sorted(rng.choice(len(POOL), int(rng.integers(6, 9)), replace=False).tolist())
        names = [POOL[c] for c in cols]
        chosen = [carriers[i] for i in rng.choice(len(carriers), args.publishers, replace=False)]
        first, dev_rows, _ = pools[chosen[0]]
        std = TableStandardizer(scale_invariant=True).fit(first[POOL].to_numpy(np.float64)[dev_rows][:, cols])
        devs = [_publish(pools[c][0], pools[c][1], cols, std) for c in chosen]
        print(f"  space {', '.join(names)}: {', '.join(chosen)}")
        for a, b in itertools.combinations(range(len(chosen)), 2):
            for _ in range(args.users):
                parts = []
                for c in (chosen[a], chosen[b]):
                    part, _, user_rows = pools[c]
                    pick = rng.choice(user_rows, ROWS_PER_DOMAIN, replace=False)
                    parts.append(
                        (part[POOL].to_numpy(np.float64)[pick][:, cols], part["arr_delay"].to_numpy()[pick])
                    )
                true = np.vstack([p[0] for p in parts])
                y = (np.concatenate([p[1] for p in parts]) > 15).astype(int)
                d = len(cols)
                missing = sorted(rng.choice(d, int(rng.integers(1, 3)), replace=False).tolist())
                held = [j for j in range(d) if j not in missing]
                domain = np.repeat([a, b], ROWS_PER_DOMAIN)  # the publisher whose carrier each row is from
                results.append(_user(devs, std, true, y, held, missing, domain, rng))
    _report(results)


def _user(devs, std, true, y, held, missing, domain, rng) -> dict[str, float]:
    given = true.copy()
    given[:, missing] = np.nan
    plan = _plan(devs, std, held, missing, given)
    shared = impute_raw(given, plan)
    rms = filled_rms(unit_rms(shared), plan)  # reuse_spec: imputed columns in the developer's units
    factor = mixture_unit_factor(rms, [d["rms"] for d in devs], [1.0] * len(devs))
    fills = [member_fill(d["spec"].Z_, d["spec"].beta_, d["rms"], plan) for d in devs]
    own = [member_rows(shared, plan, f, 1.0 / factor) for f in fills]
    labelled = rng.choice(true.shape[0], 50, replace=False)
    rest = np.setdiff1d(np.arange(true.shape[0]), labelled)
    route = _route(devs, std, shared, rms)
    true_factor = mixture_unit_factor(unit_rms(true), [d["rms"] for d in devs], [1.0] * len(devs))
    pred = {
        "per-member": _assembled(devs, route, factor, lambda k: own[k]),
        "shared": _assembled(devs, route, factor, lambda k: shared),
        "all": _assembled(devs, _route(devs, std, true, unit_rms(true)), true_factor, lambda k: true),
    }
    # The same with each row sent to its own carrier's publisher (an ideal router): the fills alone.
    pred |= {
        "per-member, own carrier": _assembled(devs, domain, factor, lambda k: own[k]),
        "shared, own carrier": _assembled(devs, domain, factor, lambda k: shared),
    }
    # How far each fill is from the true columns where the member reads them (its coordinates).
    errors: dict[str, float] = {}
    for name, routing in (("", route), (", own carrier", domain)):
        for key, rows_of in (("per-member", lambda k: own[k]), ("shared", lambda k: shared)):
            total = 0.0
            for k, dev in enumerate(devs):
                mine = routing == k
                truth = _coordinates(dev, true[mine] / true_factor)[:, missing]
                total += float(
                    np.sum((_coordinates(dev, rows_of(k)[mine] / factor)[:, missing] - truth) ** 2)
                )
            errors[f"fill {key}{name}"] = float(np.sqrt(total / (true.shape[0] * len(missing))))
    out = {k: float(np.mean(p[rest] == y[rest])) for k, p in pred.items()}
    out |= errors | {"routed right": float(np.mean(route == domain))}
    Xh = true[:, held]
    if len(np.unique(y[labelled])) < 2:
        out["scratch"] = float(np.mean(y[rest] == y[labelled][0]))
    else:
        mu, sd = Xh[labelled].mean(0), Xh[labelled].std(0) + 1e-9
        model = _logistic((Xh[labelled] - mu) / sd, y[labelled])
        out["scratch"] = float(np.mean(model.predict((Xh[rest] - mu) / sd) == y[rest]))
    out["missing"] = float(len(missing))
    return out


def _report(results: list[dict[str, float]]) -> None:
    print(
        "assembled module (RKME job selector over the space's publishers), accuracy on 450 rows, "
        f"{len(results)} users:"
    )
    for label, key in (
        ("per-member fills (each member's own RKME)", "per-member"),
        ("one shared fill (the identified learnware's)", "shared"),
        ("all columns", "all"),
        ("from scratch on 50 labels", "scratch"),
    ):
        print(f"  {label}: {_interval([r[key] for r in results])}")
    diff = [r["per-member"] - r["shared"] for r in results]
    print(
        f"  per-member - shared (paired): {_interval(diff)}; better for {sum(v > 0 for v in diff)}, "
        f"worse for {sum(v < 0 for v in diff)}, equal for {sum(v == 0 for v in diff)} users"
    )
    print(
        "  rows the job selector routes to their own carrier's publisher: "
        f"{_interval([r['routed right'] for r in results])}"
    )
    for name in ("", ", own carrier"):
        where = "the member each row is routed to" if not name else "each row's own carrier's publisher"
        diff = [r[f"per-member{name}"] - r[f"shared{name}"] for r in results]
        print(
            f"  rows to {where}: per-member {_interval([r[f'per-member{name}'] for r in results])}, "
            f"shared {_interval([r[f'shared{name}'] for r in results])}, "
            f"per-member - shared {_interval(diff)}; "
            f"RMSE of the filled columns to the true ones in that member's coordinates: per-member "
            f"{_interval([r[f'fill per-member{name}'] for r in results])}, "
            f"shared {_interval([r[f'fill shared{name}'] for r in results])}"
        )
    gap = [r["per-member"] - r["all"] for r in results]
    print(f"  per-member - all columns (paired): {_interval(gap)}")
    for m in (1.0, 2.0):
        sub = [r for r in results if r["missing"] == m]
        if len(sub) > 1:
            print(
                f"  {int(m)} missing ({len(sub)} users): "
                f"per-member {_interval([r['per-member'] for r in sub])}, "
                f"shared {_interval([r['shared'] for r in sub])}, all {_interval([r['all'] for r in sub])}"
            )
