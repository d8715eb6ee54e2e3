"""Building the policy's snapshot from API objects, and the parking and fair-sharing bookkeeping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flotilla.queue.build import (
    ApiObjects,
    build_snapshot,
    cluster_queue_inactive,
    cluster_queue_snapshot,
    workload_priority,
)
from flotilla.queue.types import AdmissionFairSharingConfig, QueueConfig, ResourceQuota

from .builders import GPU, cluster_queue, flavor, job, local_queue, namespace, priority_class
from .fakes import START, Env, Recording, conditions, fits_by_count

JSON = dict[str, Any]


def test_quotas_are_milli_units() -> None:
    cq = cluster_queue("cq").quota("cpu", "500m").quota("memory", "1Gi").quota(GPU, 8).cohort("co").obj()
    cq["spec"]["resourceGroups"][0]["flavors"][0]["resources"][2]["borrowingLimit"] = 2
    snap = cluster_queue_snapshot(cq, {"default-flavor": {}})
    assert snap.quotas[("default-flavor", "cpu")] == ResourceQuota(500)
    assert snap.quotas[("default-flavor", "memory")] == ResourceQuota(1024**3 * 1000)
    assert snap.quotas[("default-flavor", GPU)] == ResourceQuota(8000, borrowing_limit=2000)
    assert snap.cohort == "co" and snap.resource_groups[0].covered == ("cpu", "memory", GPU)


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        (None, {}, False),  # absent: matches nothing
        ({}, {"team": "a"}, True),  # {}: matches everything
        ({"matchLabels": {"team": "a"}}, {"team": "a"}, True),
        ({"matchLabels": {"team": "a"}}, {"team": "b"}, False),
    ],
)
def test_namespace_selector(selector: JSON | None, labels: dict[str, str], matches: bool) -> None:
    cq = cluster_queue("cq").quota(GPU, 1).no_namespace_selector().obj()
    if selector is not None:
        cq["spec"]["namespaceSelector"] = selector
    snap = cluster_queue_snapshot(cq, {"default-flavor": {}})
    assert (snap.namespace_selector is not None and snap.namespace_selector.matches(labels)) is matches


@pytest.mark.parametrize(
    ("cq", "flavors", "want"),
    [
        (cluster_queue("cq").quota(GPU, 1), {"default-flavor"}, None),
        (
            cluster_queue("cq").quota(GPU, 1, flavor="a").quota(GPU, 1, flavor="b"),
            set(),
            ("FlavorNotFound", "Can't admit new workloads: references missing ResourceFlavor(s): [a b]."),
        ),
        (
            cluster_queue("cq").quota(GPU, 1).stop("Hold"),
            {"default-flavor"},
            ("Stopped", "Can't admit new workloads: is stopped."),
        ),
        (
            cluster_queue("cq").quota(GPU, 1, flavor="x").stop("HoldAndDrain"),
            set(),
            ("Stopped", "Can't admit new workloads: is stopped, references missing ResourceFlavor(s): [x]."),
        ),
    ],
)
def test_inactive_reasons(cq: Any, flavors: set[str], want: tuple[str, str] | None) -> None:
    assert cluster_queue_inactive(cq.obj(), {f: {} for f in flavors}) == want


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ({}, 0),
        ({"priority": 7}, 7),
        ({"priorityClassRef": {"group": "kueue.x-k8s.io", "kind": "WorkloadPriorityClass", "name": "high"}}, 1000),
        (
            {
                "priority": 5,
                "priorityClassRef": {"group": "kueue.x-k8s.io", "kind": "WorkloadPriorityClass", "name": "high"},
            },
            5,
        ),
        ({"priorityClassRef": {"group": "kueue.x-k8s.io", "kind": "WorkloadPriorityClass", "name": "gone"}}, 0),
    ],
)
def test_workload_priority(spec: JSON, want: int) -> None:
    assert workload_priority({"spec": spec}, {"high": priority_class("high", 1000)}) == want


def test_snapshot_of_a_running_system(tmp_path: Path) -> None:
    recording = Recording(fits_by_count)
    env = Env(tmp_path / "s.db", policy=recording)
    try:
        env.apply(
            namespace("team").label("tier", "gold").obj(),
            flavor("a100").node_label("gpu", "a100").obj(),
            cluster_queue("cq").quota(GPU, 2, flavor="a100").obj(),
            local_queue("lq", "cq", "team").obj(),
        )
        env.apply(job("a", "team").queue("lq").gpus(2).node_selector(zone="z1").obj())
        env.step(1)
        env.apply(job("b", "team").queue("lq").gpus(1).obj())
        env.step(1)
        snap = recording.snapshots[-1]
        a = snap.workloads["team/" + env.workload_of("a", "team")["metadata"]["name"]]
        b = snap.workloads["team/" + env.workload_of("b", "team")["metadata"]["name"]]
        assert a.admission is not None and a.admission.cluster_queue == "cq"
        assert a.admission.pod_sets[0].resource_usage == {GPU: 2000}
        assert a.admitted_at == START + 1
        assert a.pod_sets[0].requests == {GPU: 2000} and a.pod_sets[0].node_selector == {"zone": "z1"}
        assert b.admission is None and b.local_queue == "lq" and b.created == START + 2  # its creation
        assert snap.namespace_labels["team"] == {"tier": "gold"}
        assert snap.flavors["a100"].node_labels == {"gpu": "a100"}
        assert snap.local_queues["team/lq"].cluster_queue == "cq"
        # b did not fit: parked until capacity appears, then offered again.
        assert env.controller.parked == {b.key}
        env.step(1)
        assert len(recording.snapshots) == 2  # nothing changed: no cycle
        env.delete("jobs", "a", "team")
        env.step(1)
        assert recording.snapshots[-1].workloads[b.key].parked is False
        assert env.controller.parked == frozenset()
    finally:
        env.close()


def test_parked_workloads_retry_after_inadmissible_retry_seconds(tmp_path: Path) -> None:
    recording = Recording(fits_by_count)
    env = Env(tmp_path / "s.db", QueueConfig(inadmissibleRetrySeconds=30), recording)
    try:
        env.apply(
            flavor("default-flavor").obj(), cluster_queue("cq").quota(GPU, 1).obj(), local_queue("lq", "cq").obj()
        )
        env.apply(job("big").queue("lq").gpus(2).obj())
        env.step()
        assert env.controller.next_wakeup == env.clock.now + 30
        cycles = len(recording.snapshots)
        env.step(29)
        assert len(recording.snapshots) == cycles
        env.step(1)
        assert len(recording.snapshots) == cycles + 1
    finally:
        env.close()


def test_admission_fair_sharing_usage_decays(tmp_path: Path) -> None:
    recording = Recording(fits_by_count)
    afs = AdmissionFairSharingConfig(usageHalfLifeTime=100, usageSamplingInterval=100)
    env = Env(tmp_path / "s.db", QueueConfig(admissionFairSharing=afs), recording)
    try:
        env.apply(
            flavor("default-flavor").obj(),
            cluster_queue("cq").quota(GPU, 4).admission_fair_sharing().obj(),
            local_queue("lq", "cq").obj(),
        )
        env.apply(job("a").queue("lq").gpus(2).obj())
        env.step()
        status = env.get("localqueues", "lq")["status"]["fairSharing"]["admissionFairSharingStatus"]
        assert status == {"consumedResources": {GPU: "0"}, "lastUpdate": "2023-11-14T22:13:20Z"}
        env.apply(job("b").queue("lq").gpus(1).obj())
        env.step(1)
        env.apply(job("c").queue("lq").gpus(1).obj())
        env.step(1)
        # b was admitted since the last sample: Kueue's entry penalty, 1 GPU x alpha(100s, 100s) = 0.5
        assert recording.snapshots[-1].local_queues["default/lq"].usage == {GPU: 500.0}
        env.step(98)
        consumed = env.get("localqueues", "lq")["status"]["fairSharing"]["admissionFairSharingStatus"]
        # one half-life after the first sample: half of the 4 GPUs now in use
        assert consumed == {"consumedResources": {GPU: "2"}, "lastUpdate": "2023-11-14T22:15:00Z"}
    finally:
        env.close()


def test_api_objects_from_lists() -> None:
    objs = ApiObjects.from_lists(local_queues=[local_queue("lq", "cq", "ns").obj()], cluster_queues=[])
    assert list(objs.local_queues) == ["ns/lq"]
    snap = build_snapshot(objs, QueueConfig())
    assert snap.local_queues["ns/lq"].cluster_queue == "cq"


def test_the_policy_sees_one_head_per_local_queue_and_equivalent_workloads_park_together(tmp_path: Path) -> None:
    recording = Recording(fits_by_count)
    env = Env(tmp_path / "s.db", policy=recording)
    try:
        env.apply(
            flavor("default-flavor").obj(), cluster_queue("cq").quota(GPU, 1).obj(), local_queue("lq", "cq").obj()
        )
        env.apply(*(job(n).queue("lq").gpus(2).obj() for n in ("a", "b", "c")), job("d").queue("lq").gpus(1).obj())
        report = env.step()  # creates the Workloads, then admits what fits
        keys = {n: "default/" + env.workload_of(n)["metadata"]["name"] for n in "abcd"}
        first = recording.snapshots[0]
        assert [k for k, w in first.workloads.items() if w.admission is None] == [min(keys[n] for n in "abcd")]
        head = min(keys[n] for n in "abc")
        assert report.pending == [head]  # its equivalents were parked with it, untried
        assert report.admitted == [keys["d"]]
        assert env.controller.parked == {keys["a"], keys["b"], keys["c"]}
        for n in "abc":
            wl = env.workload_of(n)
            expected = {"QuotaReserved"} if "default/" + wl["metadata"]["name"] == head else set()
            assert set(conditions(wl, "QuotaReserved")) == expected
    finally:
        env.close()


def test_quota_taken_and_released_between_two_passes_unparks(tmp_path: Path) -> None:
    """a is admitted in a pass whose next cycle parks b; a finishes before the next pass looks: b
    must be tried again then, not only after inadmissibleRetrySeconds."""
    env = Env(tmp_path / "s.db")
    try:
        env.apply(
            flavor("default-flavor").obj(), cluster_queue("cq").quota(GPU, 2).obj(), local_queue("lq", "cq").obj()
        )
        env.apply(job("a").queue("lq").gpus(2).obj(), job("b").queue("lq").gpus(2).obj())
        env.step(1)
        assert env.get("jobs", "a")["spec"]["suspend"] is False
        assert env.controller.parked == {"default/" + env.workload_of("b")["metadata"]["name"]}
        env.finish_job("a")
        report = env.step(1)
        assert report.admitted == ["default/" + env.workload_of("b")["metadata"]["name"]]
    finally:
        env.close()
