"""Real-data markets for issue 20's reuse benchmark: one module per market, each returning a
:class:`~benchmarks.markets.base.MarketData` (developers' rows per domain, users' rows per domain)."""

from benchmarks.markets.base import Domain, MarketData

MARKETS = ("flights", "hotels", "fashion", "bbc")


def load_market(name: str, *, quick: bool) -> MarketData:
    """The named market's data (cached under var/bench-cache by the modules that are slow to build)."""
    import importlib

    if name not in MARKETS:
        raise ValueError(f"unknown market {name!r}; known: {', '.join(MARKETS)}")
    return importlib.import_module(f"benchmarks.markets.{name}").load(quick=quick)


__all__ = ["MARKETS", "Domain", "MarketData", "load_market"]
