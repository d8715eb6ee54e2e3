"""The Deployment controller as a pure function, and the Deployment kind's validation."""

from __future__ import annotations

import random
from typing import Any

import pytest

from flotilla.api.catalog import build_registry
from flotilla.api.errors import ManifestErrors
from flotilla.api.loader import decode
from flotilla.queue.workloads import rfc3339
from flotilla.runtime.deployments import (
    TEMPLATE_HASH,
    DeploymentContext,
    reconcile_deployment,
    surge_and_unavailable,
    template_hash,
)

NOW = 1_800_000_000.0
JSON = dict[str, Any]


def deployment(replicas: int = 3, image: str = "v1", **spec: Any) -> JSON:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llm", "namespace": "ns", "uid": "d1", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "llm"}},
            "template": {
                "metadata": {"labels": {"app": "llm"}},
                "spec": {"containers": [{"name": "c", "image": image, "command": ["serve"]}]},
            },
            **spec,
        },
    }


def pod(dep: JSON, ready: bool = True, phase: str = "Running", name: str | None = None, created: float = NOW) -> JSON:
    h = template_hash(dep["spec"]["template"])
    conditions = [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": rfc3339(created)}]
    return {
        "metadata": {
            "name": name or f"p{random.random()}",
            "labels": {"app": "llm", TEMPLATE_HASH: h},
            "creationTimestamp": rfc3339(created),
        },
        "spec": {"nodeName": "n"},
        "status": {"phase": phase, "conditions": conditions},
    }


def ctx() -> DeploymentContext:
    return DeploymentContext(NOW, random.Random(3))


def test_scales_up_with_owned_labelled_pods() -> None:
    dep = deployment(replicas=3)
    plan = reconcile_deployment(dep, [pod(dep)], ctx())
    assert len(plan.create) == 2 and not plan.delete
    created = plan.create[0]
    assert created["metadata"]["labels"] == {"app": "llm", TEMPLATE_HASH: template_hash(dep["spec"]["template"])}
    assert created["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    assert created["spec"]["restartPolicy"] == "Always"
    assert created["metadata"]["name"].startswith(f"llm-{template_hash(dep['spec']['template'])}-")


def test_scales_down_not_ready_and_newest_first() -> None:
    dep = deployment(replicas=1)
    old_ready = pod(dep, name="old-ready", created=NOW - 100)
    new_ready = pod(dep, name="new-ready", created=NOW - 10)
    not_ready = pod(dep, ready=False, name="not-ready", created=NOW - 200)
    plan = reconcile_deployment(dep, [old_ready, new_ready, not_ready], ctx())
    assert plan.delete == ["not-ready", "new-ready"]


def test_failed_pods_are_replaced() -> None:
    dep = deployment(replicas=2)
    evicted = pod(dep, phase="Failed", ready=False, name="evicted")
    plan = reconcile_deployment(dep, [pod(dep), evicted], ctx())
    assert plan.delete == ["evicted"] and len(plan.create) == 1


def test_rolling_update_surges_then_removes_old_only_while_enough_stay_ready() -> None:
    old_dep = deployment(replicas=4, image="v1")
    old = [pod(old_dep, name=f"old{i}") for i in range(4)]
    dep = deployment(replicas=4, image="v2")
    assert surge_and_unavailable(dep["spec"]) == (1, 1)  # 25% of 4: surge rounds up, unavailable down
    plan = reconcile_deployment(dep, old, ctx())
    assert len(plan.create) == 1  # 4 + surge 1
    assert len(plan.delete) == 1  # 4 ready, 3 must stay ready
    new_not_ready = pod(dep, ready=False, name="new0")
    plan = reconcile_deployment(dep, [*old[1:], new_not_ready], ctx())
    assert len(plan.create) == 1  # 4 pods, room for one more (surge)
    assert not plan.delete  # 3 ready = the minimum: no old pod goes until a new one is ready
    new_ready = pod(dep, name="new0")
    plan = reconcile_deployment(dep, [*old[1:], new_ready], ctx())
    assert len(plan.create) == 1 and len(plan.delete) == 1


def test_recreate_deletes_every_old_pod_before_creating() -> None:
    old_dep = deployment(replicas=2, image="v1")
    dep = deployment(replicas=2, image="v2", strategy={"type": "Recreate"})
    plan = reconcile_deployment(dep, [pod(old_dep, name="a"), pod(old_dep, name="b")], ctx())
    assert sorted(plan.delete) == ["a", "b"] and not plan.create
    plan = reconcile_deployment(dep, [], ctx())
    assert len(plan.create) == 2


def test_status_and_conditions() -> None:
    dep = deployment(replicas=2)
    plan = reconcile_deployment(dep, [pod(dep), pod(dep, ready=False)], ctx())
    status = plan.status
    assert status is not None
    assert (
        status["replicas"],
        status["readyReplicas"],
        status["availableReplicas"],
        status["unavailableReplicas"],
    ) == (
        2,
        1,
        1,
        1,
    )
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    # maxUnavailable: 25% of 2 rounds down to 0 (maxSurge rounds up to 1), so 2 must be available
    assert conditions["Available"] == ("False", "MinimumReplicasUnavailable")
    assert conditions["Progressing"] == ("True", "ReplicaSetUpdated")
    done = reconcile_deployment(dep, [pod(dep), pod(dep)], ctx()).status
    assert done is not None and {c["type"]: c["reason"] for c in done["conditions"]}["Progressing"] == (
        "NewReplicaSetAvailable"
    )
    again = reconcile_deployment({**dep, "status": done}, [pod(dep), pod(dep)], ctx())
    assert again.status is None  # nothing changed: no write


def test_min_ready_seconds_delays_availability() -> None:
    dep = deployment(replicas=1, minReadySeconds=30)
    fresh = pod(dep, created=NOW - 5)
    status = reconcile_deployment(dep, [fresh], ctx()).status
    assert status is not None and status["readyReplicas"] == 1 and status["availableReplicas"] == 0


def test_template_hash_is_stable_and_changes_with_the_template() -> None:
    a, b = deployment(image="v1"), deployment(image="v2")
    assert template_hash(a["spec"]["template"]) == template_hash(deployment(image="v1")["spec"]["template"])
    assert template_hash(a["spec"]["template"]) != template_hash(b["spec"]["template"])


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda d: d["spec"]["template"]["metadata"].update(labels={"app": "other"}), "spec.template.metadata.labels"),
        (lambda d: d["spec"].update(selector={}), "spec.selector"),
        (lambda d: d["spec"]["template"]["spec"].update(restartPolicy="Never"), "spec.template.spec.restartPolicy"),
        (lambda d: d["spec"].update(replicas=-1), "spec.replicas"),
    ],
)
def test_invalid_deployments_name_the_field(change: Any, path: str) -> None:
    dep = deployment()
    change(dep)
    with pytest.raises(ManifestErrors) as err:
        decode(dep, build_registry())
    assert path in str(err.value)
