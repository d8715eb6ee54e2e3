"""GAIE's saturation detector: is there headroom anywhere in the pool?

An endpoint has headroom iff its metrics are fresh (`metrics.fresh`, and when `staleness` and `now`
are given, now - scraped_at <= staleness), waiting <= queue_threshold and kv_usage <= kv_threshold.
The pool is saturated iff no endpoint has headroom; an empty pool is saturated (there is no
capacity). Defaults are GAIE's (queueDepthThreshold 5, kvCacheUtilThreshold 0.8; its
metricsStalenessThreshold is 200 ms with 50 ms scrapes).
"""

from __future__ import annotations

from collections.abc import Iterable

from flotilla.gateway.scheduling.types import EndpointSnapshot


class SaturationDetector:
    def __init__(self, queue_threshold: int = 5, kv_threshold: float = 0.8, staleness: float | None = None) -> None:
        if queue_threshold < 0 or not 0.0 <= kv_threshold <= 1.0 or (staleness is not None and staleness <= 0):
            raise ValueError("queue_threshold >= 0, 0 <= kv_threshold <= 1 and staleness > 0 (or None) are required")
        self.queue_threshold = queue_threshold
        self.kv_threshold = kv_threshold
        self.staleness = staleness

    def has_headroom(self, endpoint: EndpointSnapshot, now: float | None = None) -> bool:
        m = endpoint.metrics
        if not m.fresh:
            return False
        if self.staleness is not None and now is not None and now - m.scraped_at > self.staleness:
            return False
        return m.waiting <= self.queue_threshold and m.kv_usage <= self.kv_threshold

    def saturated(self, endpoints: Iterable[EndpointSnapshot], now: float | None = None) -> bool:
        """True iff no endpoint has headroom (also when there are none)."""
        return not any(self.has_headroom(e, now) for e in endpoints)
