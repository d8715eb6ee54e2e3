"""MIG slices and whole GPUs: the AllocationClaim lifecycle, placement policies, restarts, errors."""

from __future__ import annotations

import json
from pathlib import Path

from flotilla.runtime.controller import RuntimeController

from .harness import Harness, job, py

SLEEP = py("import time; time.sleep(60)")


def _claims(h: Harness) -> list[tuple[str, int, str | None]]:
    return sorted(
        (c["spec"]["gpuUUID"], c["spec"]["migPlacement"]["start"], (c.get("status") or {}).get("state"))
        for c in h.list("allocationclaims")
    )


def test_claims_move_staged_created_inuse_then_go_with_the_pod(h: Harness) -> None:
    states: list[str] = []
    watch = h.store.watch(h.ctl._types["AllocationClaim"])
    h.create(job("one", py("import time; time.sleep(0.5)"), limits={"nvidia.com/mig-3g.20gb": 1}))
    assert h.until(lambda: h.job_condition("one")) == "Complete:CompletionsReached"
    h.until(lambda: not h.list("allocationclaims"), message="claim gone")
    while (event := watch.next_event(0)) is not None:
        state = (event.object.get("status") or {}).get("state")
        if event.type == "DELETED":
            states.append("DELETED")
        elif state and (not states or states[-1] != state):
            states.append(state)
    watch.close()
    assert states == ["staged", "created", "inUse", "deleted", "DELETED"]


def test_claims_follow_das_shape_and_bind_cuda_visible_devices(h: Harness) -> None:
    h.create(
        job(
            "mig",
            py("import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"),
            limits={"nvidia.com/mig-1g.5gb": 1},
            activeDeadlineSeconds=30,
        )
    )
    claim = h.until(
        lambda: (
            next((c for c in h.list("allocationclaims") if c["status"].get("state") == "inUse"), None)
            or (h.job_condition("mig") and {"done": True})
        )
    )
    if "done" not in claim:
        assert claim["apiVersion"] == "inference.redhat.com/v1alpha1"
        assert claim["spec"]["profile"] == "1g.5gb" and claim["spec"]["migPlacement"] == {"start": 0, "size": 1}
        assert claim["spec"]["nodename"] == "gpu-node-0" and claim["spec"]["podRef"]["kind"] == "Pod"
    h.until(lambda: h.job_condition("mig"))
    (pod,) = h.pods("mig")
    device = h.log(pod).strip()
    assert device.startswith("MIG-")
    assert pod["metadata"]["annotations"]["flotilla.dev/devices"].endswith(":1g.5gb")


def test_first_fit_fills_gpu0_before_gpu1_and_packing_keeps_halves_free(tmp_path: Path) -> None:
    # first-fit (DAS): slots 0 and 1, which breaks the 3g.20gb/4g.20gb placement at 0; packing keeps
    # the slices in the upper half, so a 3g.20gb (starts 0 or 4) still fits at 0.
    for policy, expected in (("first-fit", [0, 1]), ("packing", [4, 6])):
        h = Harness(tmp_path / policy, placement=policy)
        try:
            for i in range(2):
                h.create(job(f"s{i}", SLEEP, limits={"nvidia.com/mig-1g.5gb": 1}, grace=0))
                h.until(lambda h=h, i=i: len(h.list("allocationclaims")) == i + 1)
            gpus = sorted({g for g, _, _ in _claims(h)})
            assert len(gpus) == 1  # both on one GPU, the other stays whole
            assert sorted(s for _, s, _ in _claims(h)) == expected, policy
        finally:
            h.close()


def test_whole_gpu_requests_take_an_empty_gpu(h: Harness) -> None:
    h.create(job("slice", SLEEP, limits={"nvidia.com/mig-1g.5gb": 1}, grace=0))
    h.until(lambda: h.list("allocationclaims"))
    h.create(job("whole", py("import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"), limits={"nvidia.com/gpu": 1}))
    assert h.until(lambda: h.job_condition("whole")) == "Complete:CompletionsReached"
    sliced = {g for g, _, _ in _claims(h)}
    (pod,) = h.pods("whole")
    assert h.log(pod).strip().startswith("GPU-") and h.log(pod).strip() not in sliced
    h.create(job("third", SLEEP, limits={"nvidia.com/gpu": 2}))
    message = h.until(lambda: _scheduled_message(h, "third"))
    assert message == "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."


def test_a_profile_no_gpu_offers_fails_the_job_at_once(h: Harness) -> None:
    h.create(job("huge", py("print(1)"), limits={"nvidia.com/mig-7g.80gb": 1}))
    assert h.until(lambda: h.job_condition("huge")) == "Failed:UnsupportedDevice"
    (pod,) = h.pods("huge")
    assert pod["status"]["reason"] == "UnsupportedDevice" and "7g.80gb" in pod["status"]["message"]
    assert not h.list("allocationclaims")


def test_two_slices_in_one_container_fail_with_the_field_path(h: Harness) -> None:
    h.create(job("two", py("print(1)"), limits={"nvidia.com/mig-1g.5gb": 2}))
    assert h.until(lambda: h.job_condition("two")) == "Failed:UnsupportedDevice"
    (pod,) = h.pods("two")
    assert "spec.containers[0].resources.limits" in pod["status"]["message"]


def test_mig_capacity_is_shared_until_released(h: Harness) -> None:
    # 2 x A100-40GB hold four 3g.20gb: the fifth waits until one finishes.
    for i in range(5):
        h.create(job(f"l{i}", SLEEP, limits={"nvidia.com/mig-3g.20gb": 1}, grace=0))
    h.until(lambda: len(h.list("allocationclaims")) == 4)
    waiting = next(n for n in (f"l{i}" for i in range(5)) if _scheduled_message(h, n))
    assert _scheduled_message(h, waiting) == "0/1 nodes are available: 1 Insufficient nvidia.com/mig-3g.20gb."
    running = next(n for n in (f"l{i}" for i in range(5)) if n != waiting)
    h.service.delete(h.kind("jobs"), running, "default")
    h.until(lambda: any((p.get("spec") or {}).get("nodeName") for p in h.pods(waiting)), message="waiting pod bound")
    assert len(h.list("allocationclaims")) == 4


def test_restart_after_kill_keeps_claims_recreates_slices_and_never_double_books(h: Harness) -> None:
    h.create(job("a", py("import time; time.sleep(1.5)"), limits={"nvidia.com/mig-3g.20gb": 1}))
    h.until(lambda: any(s == "inUse" for _, _, s in _claims(h)))
    before = _claims(h)
    h.crash()  # kill -9: a fresh controller and backend (no slices in memory) over the same store
    assert not any(h.backend.slices(g) for g, _, _ in before)
    h.step()
    gpu, start, _ = before[0]
    assert [(d.start, d.profile) for d in h.backend.slices(gpu)] == [(start, "3g.20gb")]  # re-created
    h.create(job("b", SLEEP, limits={"nvidia.com/mig-3g.20gb": 1}, grace=0))
    h.until(lambda: len(h.list("allocationclaims")) == 2)
    assert len({(g, s) for g, s, _ in _claims(h)}) == 2  # b did not take a's slots
    # a's process outlived the crash: the new controller sees it finish and releases its slice.
    assert h.until(lambda: h.job_condition("a")) == "Complete:CompletionsReached"
    h.until(lambda: len(h.list("allocationclaims")) == 1)


def test_restart_drops_staged_claims_of_pods_never_bound(h: Harness) -> None:
    h.create(job("x", py("print(1)")))
    pod = h.until(lambda: next(iter(h.pods("x")), None))
    ghost = {
        "apiVersion": "inference.redhat.com/v1alpha1",
        "kind": "AllocationClaim",
        "metadata": {"name": "ghost", "namespace": "default"},
        "spec": {
            "profile": "1g.5gb",
            "podRef": {"kind": "Pod", "namespace": "default", "name": "nobody", "uid": "no-such-uid"},
            "migPlacement": {"start": 0, "size": 1},
            "gpuUUID": "GPU-x",
            "nodename": "gpu-node-0",
        },
        "status": {"state": "staged"},
    }
    h.create(ghost)
    h.crash()
    h.until(lambda: h.get("allocationclaims", "ghost") is None, message="orphan claim released")
    assert pod is not None


def test_nodes_carry_gpu_operator_labels_and_capacity(h: Harness) -> None:
    h.step()
    (node,) = h.list("nodes")
    labels = node["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-40GB"
    assert labels["nvidia.com/gpu.count"] == "2" and labels["nvidia.com/mig.capable"] == "true"
    assert labels["flotilla.dev/gpu-backend"] == "emulated"
    capacity = node["status"]["capacity"]
    assert capacity["nvidia.com/gpu"] == "2" and capacity["nvidia.com/mig-1g.5gb"] == "14"
    assert capacity["nvidia.com/mig-3g.20gb"] == "4"
    assert all(g["emulated"] and g["uuid"].startswith("GPU-") for g in node["status"]["gpus"])
    # Re-registration keeps what the health checker wrote.
    node["metadata"]["labels"]["autopilot.ibm.com/gpuhealth"] = "WARN"
    h.service.update(node)
    h.crash()
    h.step()
    (again,) = h.list("nodes")
    assert again["metadata"]["labels"]["autopilot.ibm.com/gpuhealth"] == "WARN"
    assert isinstance(RuntimeController, type) and json  # the module's public types


def _scheduled_message(h: Harness, job_name: str) -> str | None:
    for p in h.pods(job_name):
        for c in (p.get("status") or {}).get("conditions") or []:
            if c["type"] == "PodScheduled" and c["status"] == "False":
                return str(c.get("message"))
    return None
