"""Workload status helpers: Kubernetes' condition semantics and Kueue's transitions."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla.queue import workloads as wls

from .fakes import START

JSON = dict[str, Any]


def wl(*conditions: JSON, generation: int = 3) -> JSON:
    return {
        "metadata": {"name": "w", "namespace": "ns", "generation": generation},
        "status": {"conditions": list(conditions)},
    }


def test_condition_transition_time_moves_only_when_the_status_flips() -> None:
    obj = wl()
    assert wls.set_condition(obj, "QuotaReserved", False, "Pending", "a", START)
    assert not wls.set_condition(obj, "QuotaReserved", False, "Pending", "a", START + 5)
    assert wls.set_condition(obj, "QuotaReserved", False, "Pending", "b", START + 5)
    assert wls.find_condition(obj, "QuotaReserved") == {
        "type": "QuotaReserved",
        "status": "False",
        "reason": "Pending",
        "message": "b",
        "observedGeneration": 3,
        "lastTransitionTime": wls.rfc3339(START),
    }
    assert wls.set_condition(obj, "QuotaReserved", True, "QuotaReserved", "c", START + 9)
    assert (wls.find_condition(obj, "QuotaReserved") or {})["lastTransitionTime"] == wls.rfc3339(START + 9)


def test_reservation_resets_evicted_and_preempted() -> None:
    obj = wl(
        {"type": "Evicted", "status": "True", "reason": "Preempted", "message": "m"},
        {"type": "Preempted", "status": "True", "reason": "InClusterQueue", "message": "m"},
    )
    assert wls.set_quota_reservation(obj, {"clusterQueue": "cq", "podSetAssignments": []}, START)
    got = {c["type"]: (c["status"], c["reason"], c["message"]) for c in obj["status"]["conditions"]}
    assert got == {
        "Evicted": ("False", "QuotaReserved", "Previously: m"),
        "Preempted": ("False", "QuotaReserved", "Previously: m"),
        "QuotaReserved": ("True", "QuotaReserved", "Quota reserved in ClusterQueue cq"),
        "Admitted": ("True", "Admitted", "The workload is admitted"),
    }
    assert not wls.set_quota_reservation(obj, {"clusterQueue": "cq", "podSetAssignments": []}, START)


@pytest.mark.parametrize(
    ("reason", "requeued"),
    [("Preempted", "True"), ("PodsReadyTimeout", "False"), ("ClusterQueueStopped", "False"), ("Deactivated", "False")],
)
def test_release_after_eviction(reason: str, requeued: str) -> None:
    obj = wl(
        {"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved", "message": "x"},
        {"type": "Admitted", "status": "True", "reason": "Admitted", "message": "x"},
        {"type": "Evicted", "status": "True", "reason": reason, "message": "why"},
    )
    obj["status"]["admission"] = {"clusterQueue": "cq"}
    assert wls.release_after_eviction(obj, START)
    assert "admission" not in obj["status"]
    got = {c["type"]: (c["status"], c["reason"], c["message"]) for c in obj["status"]["conditions"]}
    assert got["Requeued"] == (requeued, reason, "why")
    assert got["QuotaReserved"] == ("False", "Pending", "why")
    assert got["Admitted"] == ("False", "NoReservation", "The workload has no reservation")


@pytest.mark.parametrize(
    ("milli", "resource", "text"),
    [(500, "cpu", "500m"), (2000, "nvidia.com/gpu", "2"), (8 * 1024**3 * 1000, "memory", "8Gi"), (0, "memory", "0")],
)
def test_quantities(milli: int, resource: str, text: str) -> None:
    assert wls.quantity(milli, resource) == text
    assert wls.milli(text) == milli


def test_requeue_state_counts_and_never_moves_earlier() -> None:
    obj = wl()
    wls.update_requeue_state(obj, 10, 100, START + 0.5)
    assert obj["status"]["requeueState"] == {"count": 1, "requeueAt": wls.rfc3339(START + 11)}
    wls.update_requeue_state(obj, 10, 100, START)
    assert obj["status"]["requeueState"] == {"count": 2, "requeueAt": wls.rfc3339(START + 20)}
