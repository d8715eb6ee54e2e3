"""Kueue's Prometheus metrics (names and labels from Kueue's pkg/metrics/metrics.go).

One `QueueMetrics` per controller, registered as a collector on the control plane's per-app
registry: counters and the histogram live in a private registry; gauges are computed at scrape
time from the controller's latest `QueueView`. Resource figures are in units (cores, bytes, GPUs),
as Kueue reports them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from flotilla.queue import workloads as wls
from flotilla.queue.build import ApiObjects, cluster_queue_inactive
from flotilla.queue.status import QueueCounts, QueueView

# Kueue's generateExponentialBuckets(14): 1, then 2.5 * 2^i.
WAIT_BUCKETS = (1.0, *(2.5 * 2**i for i in range(13)))
CQ_STATUSES = ("pending", "active", "terminating")


class QueueMetrics(Collector):
    """kueue_* metrics for the control plane's /metrics."""

    def __init__(self) -> None:
        self._registry = CollectorRegistry(auto_describe=True)
        self._view: Callable[[], tuple[QueueView, ApiObjects] | None] = lambda: None
        self.quota_reserved = Counter(
            "kueue_quota_reserved_workloads",
            "The total number of quota reserved workloads per 'cluster_queue'",
            ["cluster_queue"],
            registry=self._registry,
        )
        self.admitted = Counter(
            "kueue_admitted_workloads",
            "The total number of admitted workloads per 'cluster_queue'",
            ["cluster_queue"],
            registry=self._registry,
        )
        self.evicted = Counter(
            "kueue_evicted_workloads",
            "The number of evicted workloads per 'cluster_queue' and 'reason'",
            ["cluster_queue", "reason"],
            registry=self._registry,
        )
        self.preempted = Counter(
            "kueue_preempted_workloads",
            "The number of preempted workloads per 'preempting_cluster_queue' and 'reason'",
            ["preempting_cluster_queue", "reason"],
            registry=self._registry,
        )
        self.admission_wait = Histogram(
            "kueue_admission_wait_time_seconds",
            "The time between a workload was created or requeued until admission, per 'cluster_queue'",
            ["cluster_queue"],
            buckets=WAIT_BUCKETS,
            registry=self._registry,
        )

    def follow(self, view: Callable[[], tuple[QueueView, ApiObjects] | None]) -> None:
        """Where the gauges come from: the controller's latest view and objects."""
        self._view = view

    def collect(self) -> Iterable[Metric]:
        yield from self._registry.collect()
        latest = self._view()
        yield from _gauges(*(latest or (QueueView({}, {}), ApiObjects())))


def _units(milli: int) -> float:
    return milli / 1000


def _gauges(view: QueueView, objs: ApiObjects) -> Iterable[Metric]:
    pending = GaugeMetricFamily(
        "kueue_pending_workloads",
        "The number of pending workloads, per 'cluster_queue' and 'status'",
        labels=["cluster_queue", "status"],
    )
    reserving = GaugeMetricFamily(
        "kueue_reserving_active_workloads",
        "The number of Workloads that are reserving quota, per 'cluster_queue'",
        labels=["cluster_queue"],
    )
    admitted = GaugeMetricFamily(
        "kueue_admitted_active_workloads",
        "The number of admitted Workloads that are active (unsuspended and not finished), per 'cluster_queue'",
        labels=["cluster_queue"],
    )
    status = GaugeMetricFamily(
        "kueue_cluster_queue_status",
        "Reports 'cluster_queue' with its 'status' (with possible values 'pending', 'active' or 'terminating')",
        labels=["cluster_queue", "status"],
    )
    resource_labels = ["cohort", "cluster_queue", "flavor", "resource"]
    usage = GaugeMetricFamily(
        "kueue_cluster_queue_resource_usage",
        "Reports the cluster_queue's total resource usage within all the flavors",
        labels=resource_labels,
    )
    reservation = GaugeMetricFamily(
        "kueue_cluster_queue_resource_reservation",
        "Reports the cluster_queue's total resource reservation within all the flavors",
        labels=resource_labels,
    )
    nominal = GaugeMetricFamily(
        "kueue_cluster_queue_nominal_quota",
        "Reports the cluster_queue's resource nominal quota within all the flavors",
        labels=resource_labels,
    )
    for name, cq in sorted(objs.cluster_queues.items()):
        counts = view.cluster_queues.get(name) or QueueCounts()
        pending.add_metric([name, "active"], counts.pending_active)
        pending.add_metric([name, "inadmissible"], counts.pending_inadmissible)
        reserving.add_metric([name], counts.reserving)
        admitted.add_metric([name], counts.admitted)
        state = _cq_state(cq, objs.flavors)
        for s in CQ_STATUSES:
            status.add_metric([name, s], 1.0 if s == state else 0.0)
        cohort = (cq.get("spec") or {}).get("cohortName") or ""
        for group in (cq.get("spec") or {}).get("resourceGroups") or []:
            for flavor in group["flavors"]:
                for quota in flavor["resources"]:
                    labels = [cohort, name, flavor["name"], quota["name"]]
                    fr = (flavor["name"], quota["name"])
                    nominal.add_metric(labels, _units(wls.milli(quota["nominalQuota"])))
                    usage.add_metric(labels, _units(counts.used.get(fr, 0)))
                    reservation.add_metric(labels, _units(counts.reserved.get(fr, 0)))
    yield from (pending, reserving, admitted, status, usage, reservation, nominal)


def _cq_state(cq: Mapping[str, Any], flavors: Mapping[str, Any]) -> str:
    inactive = cluster_queue_inactive(cq, flavors)
    if inactive is None:
        return "active"
    return "terminating" if inactive[0] == "Terminating" else "pending"
