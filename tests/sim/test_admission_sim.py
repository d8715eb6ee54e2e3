"""The admission simulator's queueing, with small fake policies (the real policy has its own tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.api.labels import Selector
from flotilla.queue.types import (
    AdmissionDecision,
    AdmissionRecord,
    ClusterQueueSnapshot,
    CycleContext,
    CycleResult,
    FlavorSnapshot,
    LocalQueueSnapshot,
    PendingDecision,
    PodSetAssignment,
    PodSetInfo,
    PreemptionDecision,
    ResourceGroup,
    ResourceQuota,
    Snapshot,
    WorkloadInfo,
)
from flotilla.sim.admission import AdmissionSimulation
from flotilla.sim.kueue_perf import expand, load_generator, load_rangespec
from tests.conftest import REFERENCE


def fits_policy(snapshot: Snapshot, ctx: CycleContext) -> CycleResult:
    """Admit a pending workload if its queue's nominal quota holds it; else park it."""
    used: dict[str, int] = {}
    for wl in snapshot.workloads.values():
        if wl.admission:
            cq = wl.admission.cluster_queue
            used[cq] = used.get(cq, 0) + sum(sum(p.resource_usage.values()) for p in wl.admission.pod_sets)
    admitted, pending = [], []
    for wl in snapshot.workloads.values():
        if wl.admission:
            continue
        cq = snapshot.local_queues[wl.local_queue_key].cluster_queue
        need = sum(ps.requests["cpu"] * ps.count for ps in wl.pod_sets)
        if used.get(cq, 0) + need <= snapshot.cluster_queues[cq].quotas[("rf", "cpu")].nominal:
            used[cq] = used.get(cq, 0) + need
            ps = PodSetAssignment("main", {"cpu": "rf"}, {"cpu": need}, 1)
            admitted.append(AdmissionDecision(wl.key, AdmissionRecord(cq, (ps,))))
        else:
            pending.append(PendingDecision(wl.key, "no room"))
    return CycleResult(admitted=tuple(admitted), pending=tuple(pending))


def one_queue(nominal: int) -> AdmissionSimulation:
    cq = ClusterQueueSnapshot(
        "cq",
        None,
        (ResourceGroup(("cpu",), ("rf",)),),
        {("rf", "cpu"): ResourceQuota(nominal)},
        namespace_selector=Selector(),
    )
    return AdmissionSimulation(
        {"cq": cq}, {}, {"rf": FlavorSnapshot("rf")}, {"ns/lq": LocalQueueSnapshot("ns", "lq", "cq")}, fits_policy
    )


def wl(name: str, cpu: int, created: float, priority: int = 0) -> WorkloadInfo:
    return WorkloadInfo("ns", name, "lq", priority, created, (PodSetInfo("main", 1, {"cpu": cpu * 1000}),))


def test_fifo_admission_runtime_and_usage() -> None:
    sim = one_queue(nominal=2000)
    sim.submit(0.0, wl("a", 2, 0.0), runtime=10)
    sim.submit(1.0, wl("b", 2, 1.0), runtime=10)
    sim.run()
    a, b = sim.records["ns/a"], sim.records["ns/b"]
    assert (a.admitted_at, a.finished_at) == (0.0, 10.0)
    assert (b.admitted_at, b.finished_at) == (10.0, 20.0)  # waited for a's capacity event
    assert sim.average_usage("cq") == pytest.approx(2000.0)  # full for the whole 0..20 span


def test_priority_orders_the_queue() -> None:
    sim = one_queue(nominal=1000)
    sim.submit(0.0, wl("running", 1, 0.0), runtime=5)
    sim.submit(1.0, wl("low", 1, 1.0, priority=1), runtime=1)
    sim.submit(2.0, wl("high", 1, 2.0, priority=9), runtime=1)
    sim.run()
    assert sim.records["ns/high"].admitted_at == 5.0
    assert sim.records["ns/low"].admitted_at == 6.0


def test_preemption_evicts_and_requeues() -> None:
    sim = one_queue(nominal=1000)
    calls = {"n": 0}

    def preempt_once(snapshot: Snapshot, ctx: CycleContext) -> CycleResult:
        if ctx.now == 1.0 and calls["n"] == 0:
            calls["n"] += 1
            return CycleResult(preempted=(PreemptionDecision("ns/a", "ns/b", "InClusterQueue", "m"),))
        return fits_policy(snapshot, ctx)

    sim.policy = preempt_once
    sim.submit(0.0, wl("a", 1, 0.0), runtime=10)
    sim.submit(1.0, wl("b", 1, 1.0, priority=5), runtime=2)
    sim.run()
    a, b = sim.records["ns/a"], sim.records["ns/b"]
    assert a.evictions == 1 and b.admitted_at == 1.0
    assert a.finished_at == 13.0  # requeued, admitted again when b finished at 3.0, ran 10 s


@pytest.mark.skipif(not (REFERENCE / "kueue" / "perf").is_dir(), reason="shared/reference/kueue/perf not found")
def test_kueue_perf_files_expand_like_kueues_runner() -> None:
    perf = REFERENCE / "kueue" / "perf"
    spec = expand(load_generator(perf / "baseline-generator.yaml"))
    assert len(spec.cluster_queues) == 30 and len(spec.cohorts) == 5 and len(spec.arrivals) == 15_000
    cq = spec.cluster_queues["cq-0-0-cohort-0"]
    assert cq.quotas[("rf", "cpu")].nominal == 20_000 and cq.quotas[("rf", "cpu")].borrowing_limit == 100_000
    assert cq.preemption.reclaim_within_cohort == "Any" and cq.preemption.within_cluster_queue == "LowerPriority"
    first = [a for a in spec.arrivals if a.workload.namespace == "cq-0-0-cohort-0"][:3]
    assert [(a.at, a.workload_class) for a in first] == [(0.1, "small"), (0.2, "small"), (0.3, "small")]
    assert spec.arrivals[-1].at == 60.0  # 50 large workloads, one every 1.2 s
    large = expand(load_generator(perf / "large-scale-generator.yaml"))
    assert len(large.cluster_queues) == 1000 and len(large.arrivals) == 50_000
    assert load_rangespec(perf / "baseline-rangespec.yaml").maxWallMs == 425_000


def test_unknown_generator_fields_are_rejected(tmp_path: Path) -> None:
    f = tmp_path / "g.yaml"
    f.write_text("cohorts:\n- className: c\n  count: 1\n  queuesSets: []\n  colour: red\n")
    with pytest.raises(ValueError, match="colour"):
        load_generator(f)


def test_the_drivers_per_queue_hints_give_the_policy_the_same_answers() -> None:
    """Snapshot.admitted_by_queue / usage_by_queue (kept incrementally by the simulator) must make the real
    policy decide exactly as it does when it sums the admitted workloads itself."""
    from dataclasses import replace

    from flotilla.queue.cycle import schedule

    spec = expand(load_generator(REFERENCE / "kueue" / "perf" / "baseline-generator.yaml"))
    arrivals = spec.arrivals[:1500]

    def without_hints(snapshot: Snapshot, ctx: CycleContext) -> CycleResult:
        assert snapshot.admitted_by_queue is not None and snapshot.pending_keys is not None
        return schedule(replace(snapshot, admitted_by_queue=None, usage_by_queue=None, pending_keys=None), ctx)

    runs = []
    for policy in (schedule, without_hints):
        sim = AdmissionSimulation(spec.cluster_queues, spec.cohorts, spec.flavors, spec.local_queues, policy)
        for a in arrivals:
            sim.submit(a.at, a.workload, a.runtime)
        sim.run()
        runs.append({k: (r.admitted_at, r.finished_at, r.evictions) for k, r in sim.records.items()})
    assert runs[0] == runs[1] and sum(1 for v in runs[0].values() if v[0] is not None) == len(arrivals)
