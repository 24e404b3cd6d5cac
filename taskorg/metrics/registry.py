"""A registry per app: this process's counters, plus gauges read when Prometheus scrapes.

Counters live in prometheus_client's process-wide registry (one service per
process); scrape-time collectors belong to one app, so tests that build many
apps in one process never register a collector twice.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from taskorg.logs import get_logger

log = get_logger("metrics")

Families = Callable[[], Iterable[Metric]]


class _Process:
    """Forwards the process-wide registry (counters, histograms, process_* and python_* figures)."""

    def collect(self) -> Iterator[Metric]:
        return iter(REGISTRY.collect())


class ScrapeCollector:
    """Metric families made by `read` when scraped; a failing read drops its families, never the scrape."""

    def __init__(self, name: str, read: Families) -> None:
        self.name = name
        self.read = read

    def collect(self) -> Iterator[Metric]:
        try:
            families = list(self.read())
        except Exception as exc:  # a scrape must answer even when one source is mid-change or gone
            log.info("metrics source failed", extra={"source": self.name, "error": f"{type(exc).__name__}: {exc}"})
            return iter(())
        return iter(families)


def app_registry(sources: dict[str, Families]) -> CollectorRegistry:
    """The registry one app's `/metrics` renders: the process's figures and these named sources."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Process())  # type: ignore[arg-type]
    for name, read in sources.items():
        registry.register(ScrapeCollector(name, read))  # type: ignore[arg-type]
    return registry


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    """A one-sample gauge family (booleans as 1 and 0)."""
    return GaugeMetricFamily(name, documentation, value=float(value))
