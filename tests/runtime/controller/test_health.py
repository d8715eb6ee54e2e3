"""Health verdicts keep work off bad GPUs: a GPU that turns EVICT stops its pods, the queue
requeues their Workloads, and the new pods land on a healthy GPU."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flotilla.telemetry.monitor import HealthMonitor

from .harness import Harness, job, py

QUEUE_OBJECTS = [
    {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": "a100"}},
    {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ClusterQueue",
        "metadata": {"name": "gpus"},
        "spec": {
            "namespaceSelector": {},
            "resourceGroups": [
                {
                    "coveredResources": ["nvidia.com/mig-1g.5gb"],
                    "flavors": [{"name": "a100", "resources": [{"name": "nvidia.com/mig-1g.5gb", "nominalQuota": 14}]}],
                }
            ],
        },
    },
    {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "LocalQueue",
        "metadata": {"name": "whisper", "namespace": "default"},
        "spec": {"clusterQueue": "gpus"},
    },
]


@pytest.fixture
def hq(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, queue=True)
    for obj in QUEUE_OBJECTS:
        harness.create(obj)
    try:
        yield harness
    finally:
        harness.close()


def _gpu_of(h: Harness) -> str:
    (claim,) = h.list("allocationclaims")
    return str(claim["spec"]["gpuUUID"])


def _set_health(h: Harness, uuid: str, health: str, message: str) -> None:
    node = h.list("nodes")[0]
    for g in node["status"]["gpus"]:
        if g["uuid"] == uuid:
            g["health"], g["healthMessage"] = health, message
    h.update_status(node)


def test_evict_verdict_stops_the_pod_and_requeues_its_workload(hq: Harness) -> None:
    h = hq
    h.create(job("w", py("import time; time.sleep(60)"), limits={"nvidia.com/mig-1g.5gb": 1}, queue="whisper", grace=0))
    h.until(lambda: any(c["status"].get("state") == "inUse" for c in h.list("allocationclaims")))
    bad = _gpu_of(h)
    (first,) = h.pods("w")
    _set_health(h, bad, "EVICT", "remapped: row remapping failure")

    def evicted() -> bool:
        pod = h.get("pods", first["metadata"]["name"])
        return pod is None or (pod.get("status") or {}).get("reason") == "Evicted"

    h.until(evicted, message="pod evicted")
    (wl,) = h.list("workloads")
    # The queue saw the eviction: the Job was suspended, quota released, and it was admitted again.
    h.until(
        lambda: any(
            p["metadata"]["name"] != first["metadata"]["name"] and (p.get("spec") or {}).get("nodeName")
            for p in h.pods("w")
        ),
        message="a new pod bound",
    )
    h.until(lambda: h.list("allocationclaims") and _gpu_of(h) != bad, message="claim on the healthy GPU")
    wl = h.get("workloads", wl["metadata"]["name"])
    # Re-admitted: Kueue turns Evicted False and keeps the cause ("Previously: ...").
    (evicted,) = [c for c in wl["status"]["conditions"] if c["type"] == "Evicted"]
    assert evicted["status"] == "False" and evicted["message"].startswith("Previously: GPU " + bad)
    assert h.queue is not None
    assert h.queue.metrics  # kueue_evicted_workloads_total counted it (reason NodeFailures)


def test_new_work_avoids_an_err_gpu_and_waits_when_none_is_healthy(h: Harness) -> None:
    h.step()
    node = h.list("nodes")[0]
    gpu0, gpu1 = (g["uuid"] for g in node["status"]["gpus"])
    _set_health(h, gpu0, "ERR", "reachable: GPU not reachable")
    show = py("import os; print(os.environ['CUDA_VISIBLE_DEVICES'])")
    h.create(job("a", show, limits={"nvidia.com/gpu": 1}))
    h.until(lambda: h.job_condition("a"))
    assert h.log(h.pods("a")[0]).strip() == gpu1
    _set_health(h, gpu1, "EVICT", "xid: 79")
    h.create(job("b", py("print(1)"), limits={"nvidia.com/gpu": 1}))
    message = h.until(
        lambda: next(
            (
                c["message"]
                for p in h.pods("b")
                for c in (p.get("status") or {}).get("conditions") or []
                if c["type"] == "PodScheduled" and c["status"] == "False"
            ),
            None,
        )
    )
    assert "nvidia.com/gpu" in message


def test_injected_fault_goes_through_the_health_monitor_to_an_eviction(h: Harness) -> None:
    h.create(job("f", py("import time; time.sleep(60)"), limits={"nvidia.com/mig-1g.5gb": 1}, grace=0))
    h.until(lambda: any(c["status"].get("state") == "inUse" for c in h.list("allocationclaims")))
    bad = _gpu_of(h)
    node = h.list("nodes")[0]
    for g in node["status"]["gpus"]:
        if g["uuid"] == bad:
            g["faults"] = ["remapped-rows"]
    h.update_status(node)
    monitor = HealthMonitor(h.service, busy=h.ctl.gpu_busy)
    changes = monitor.run_once()
    assert [c.uuid for change in changes for c in change.turned_unusable] == [bad]
    node = h.list("nodes")[0]
    assert node["metadata"]["labels"]["autopilot.ibm.com/gpuhealth"] == "EVICT"
    h.until(lambda: all((p.get("status") or {}).get("reason") == "Evicted" for p in h.pods("f")), message="evicted")
    assert "remapped" in h.pods("f")[0]["status"]["message"]
