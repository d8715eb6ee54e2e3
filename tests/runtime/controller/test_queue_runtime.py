"""The queue and the runtime together: admission starts processes, preemption kills them, and a
ResourceFlavor's node labels decide where pods may go."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import Harness, alive, job, py

JSON = dict[str, Any]


def objects(quota: int, node_labels: dict[str, str] | None = None) -> list[JSON]:
    flavor: JSON = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": "a100"}}
    if node_labels:
        flavor["spec"] = {"nodeLabels": node_labels}
    resource = "nvidia.com/mig-3g.20gb"
    return [
        flavor,
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": "gpus"},
            "spec": {
                "namespaceSelector": {},
                "preemption": {"withinClusterQueue": "LowerPriority"},
                "resourceGroups": [
                    {
                        "coveredResources": [resource],
                        "flavors": [{"name": "a100", "resources": [{"name": resource, "nominalQuota": quota}]}],
                    }
                ],
            },
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "LocalQueue",
            "metadata": {"name": "q", "namespace": "default"},
            "spec": {"clusterQueue": "gpus"},
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "WorkloadPriorityClass",
            "metadata": {"name": "high"},
            "value": 1000,
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "WorkloadPriorityClass",
            "metadata": {"name": "low"},
            "value": 10,
        },
    ]


@pytest.fixture
def hq(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, queue=True)
    try:
        yield harness
    finally:
        harness.close()


def prioritized(name: str, priority: str, command: list[str]) -> JSON:
    j = job(name, command, limits={"nvidia.com/mig-3g.20gb": 1}, queue="q", grace=1)
    j["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] = priority
    return j


def test_preemption_kills_the_running_process_and_the_preemptor_runs(hq: Harness) -> None:
    h = hq
    for obj in objects(quota=1):
        h.create(obj)
    h.create(prioritized("low", "low", py("import time; time.sleep(60)")))
    pid = h.until(lambda: _container_pid(h, "low"), message="low running")
    h.create(prioritized("high", "high", py("print('high ran')")))
    h.until(lambda: not alive(pid), message="low's process killed")
    assert h.until(lambda: h.job_condition("high")) == "Complete:CompletionsReached"
    (high,) = h.pods("high")
    assert h.log(high).strip() == "high ran"
    low = h.get("jobs", "low")
    assert low is not None and low["spec"]["suspend"] is True  # requeued, waiting for quota
    wl = next(w for w in h.list("workloads") if w["metadata"]["name"].startswith("job-low-"))
    reasons = {c["type"]: c.get("reason") for c in wl["status"]["conditions"]}
    assert reasons.get("Preempted") == "InClusterQueue"
    # once high is done, low is admitted again and starts a new process
    h.until(lambda: (p := _container_pid(h, "low")) is not None and p != pid, message="low re-admitted")


def test_flavor_node_labels_steer_pods_and_say_why_they_cannot_run(hq: Harness) -> None:
    h = hq
    for obj in objects(quota=4, node_labels={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}):
        h.create(obj)
    h.create(prioritized("wrong", "low", py("print(1)")))
    message = h.until(
        lambda: next(
            (
                c["message"]
                for p in h.pods("wrong")
                for c in (p.get("status") or {}).get("conditions") or []
                if c["type"] == "PodScheduled" and c["status"] == "False"
            ),
            None,
        )
    )
    assert message == "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
    (pod,) = h.pods("wrong")
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}


def _container_pid(h: Harness, name: str) -> int | None:
    for p in h.pods(name):
        record = h.ctl.kubelet.records(p).get("main")
        if (
            record is not None
            and (p.get("status") or {}).get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")
        ):
            return h.ctl.kubelet.processes.container_pid(record)
    return None
