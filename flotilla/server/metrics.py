"""The control plane's own Prometheus metrics (one registry per app: no global state)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class ObjectCountCollector(Collector):
    """`flotilla_store_objects{resource}`: objects per resource, counted at scrape time."""

    def __init__(self, count: Callable[[], dict[str, int]]) -> None:
        self._count = count

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily("flotilla_store_objects", "Objects in the store, per resource.", labels=["resource"])
        for resource, n in sorted(self._count().items()):
            family.add_metric([resource], n)
        yield family


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "flotilla_apiserver_request",
            "API requests by verb, resource and HTTP code (as apiserver_request_total).",
            ["verb", "resource", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "flotilla_apiserver_request_duration_seconds",
            "API request latency by verb and resource.",
            ["verb", "resource"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.watches = Gauge("flotilla_apiserver_watches", "Open watch streams.", ["resource"], registry=self.registry)

    def track_objects(self, count: Callable[[], dict[str, int]]) -> None:
        self.registry.register(ObjectCountCollector(count))
