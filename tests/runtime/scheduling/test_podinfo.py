"""pod_info(): requests as Kubernetes sums them, GPUs and MIG slices, constraints, and clear errors."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla.runtime.scheduling import NodeSelectorRequirement, NodeSelectorTerm, PodSpecError, pod_info

from .builders import pod_json

GiB = 1024**3


def res(limits: dict[str, Any] | None = None, requests: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if limits is not None:
        out["limits"] = limits
    if requests is not None:
        out["requests"] = requests
    return {"resources": out}


@pytest.mark.parametrize(
    ("containers", "spec", "requests"),
    [
        ([res(requests={"cpu": "500m", "memory": "1Gi"})], {}, {"cpu": 500, "memory": GiB}),
        ([res(requests={"cpu": "1"}), res(requests={"cpu": "250m"})], {}, {"cpu": 1250}),
        ([res(limits={"cpu": "2", "memory": "2Gi"}, requests={"cpu": "1"})], {}, {"cpu": 1000, "memory": 2 * GiB}),
        ([res(requests={"cpu": "0.1m"})], {}, {"cpu": 1}),  # rounded up, as MilliValue
        ([res(requests={"ephemeral-storage": "1G"})], {}, {"ephemeral-storage": 10**9}),
        ([{}], {}, {}),
        (  # a regular init container: the max of it and the app containers
            [res(requests={"cpu": "1"})],
            {"initContainers": [{"name": "i", **res(requests={"cpu": "3", "memory": "1Gi"})}]},
            {"cpu": 3000, "memory": GiB},
        ),
        (  # a sidecar adds to the app containers, and runs during later init containers
            [res(requests={"cpu": "1"})],
            {
                "initContainers": [
                    {"name": "side", "restartPolicy": "Always", **res(requests={"cpu": "1"})},
                    {"name": "i", **res(requests={"cpu": "2500m"})},
                ]
            },
            {"cpu": 3500},
        ),
        ([res(requests={"cpu": "1"})], {"overhead": {"cpu": "100m"}}, {"cpu": 1100}),
    ],
)
def test_requests_are_summed_as_kubernetes_does(
    containers: list[dict[str, Any]], spec: dict[str, Any], requests: dict[str, int]
) -> None:
    assert pod_info(pod_json(*containers, **spec)).requests == requests


def test_gpus_and_mig_slices_leave_the_requests() -> None:
    info = pod_info(
        pod_json(
            res(limits={"nvidia.com/gpu": 2, "cpu": "1"}),
            res(limits={"nvidia.com/mig-3g.20gb": "1"}),
            res(limits={"nvidia.com/mig-1g.5gb": 1}),
            res(limits={"nvidia.com/mig-3g.20gb": 1}),
            res(limits={"nvidia.com/mig-1g.5gb.me": 1}),
        )
    )
    assert info.requests == {"cpu": 1000}
    assert info.gpus == 2
    assert info.mig == ("3g.20gb", "3g.20gb", "1g.5gb", "1g.5gb+me")
    assert info.wants_gpus


def test_identity_and_constraints() -> None:
    info = pod_info(
        pod_json(
            {},
            nodeSelector={"zone": "a"},
            nodeName="n1",
            tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            affinity={
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "mem", "operator": "Gt", "values": ["40"]}]},
                            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},
                        ]
                    }
                }
            },
        )
    )
    assert (info.key, info.uid, info.node_name, dict(info.node_selector)) == ("ns/p", "u1", "n1", {"zone": "a"})
    assert info.required_affinity == (
        NodeSelectorTerm((NodeSelectorRequirement("mem", "Gt", ("40",)),)),
        NodeSelectorTerm((), (NodeSelectorRequirement("metadata.name", "In", ("n1",)),)),
    )
    assert [t.key for t in info.tolerations] == ["gpu"]
    assert pod_info(pod_json({})).required_affinity is None


AFFINITY = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"


def affinity(*expressions: dict[str, Any]) -> dict[str, Any]:
    terms = [{"matchExpressions": list(expressions)}]
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}


@pytest.mark.parametrize(
    ("pod", "path", "message"),
    [
        (
            pod_json(res(limits={"nvidia.com/mig-1g.5gb": 2})),
            "spec.containers[0].resources.limits",
            "asks for 2 MIG slices .*one slice per container",
        ),
        (
            pod_json({}, res(limits={"nvidia.com/mig-1g.5gb": 1, "nvidia.com/mig-2g.10gb": 1})),
            "spec.containers[1].resources.limits",
            r"asks for 2 MIG slices \(nvidia.com/mig-1g.5gb: 1, nvidia.com/mig-2g.10gb: 1\)",
        ),
        (
            pod_json(res(limits={"nvidia.com/gpu": 1, "nvidia.com/mig-1g.5gb": 1})),
            "spec.containers[0].resources.limits",
            "asks for both nvidia.com/gpu and a MIG slice",
        ),
        (
            pod_json({}, initContainers=[{"name": "i", **res(limits={"nvidia.com/mig-1g.5gb": 3})}]),
            "spec.initContainers[0].resources.limits",
            "asks for 3 MIG slices",
        ),
        (pod_json(res(limits={"nvidia.com/gpu": "500m"})), "spec.containers[0].resources.limits", "not a whole number"),
        (pod_json(res(requests={"cpu": "lots"})), "spec.containers[0].resources.requests[cpu]", "not a quantity"),
        (pod_json(res(requests={"cpu": "-1"})), "spec.containers[0].resources.requests[cpu]", "greater than or equal"),
        ({"metadata": {"name": "p"}, "spec": {}}, "spec.containers", "at least one container"),
        (
            pod_json({}, affinity=affinity({"key": "z", "operator": "Near", "values": ["a"]})),
            f"{AFFINITY}.nodeSelectorTerms[0].matchExpressions[0].operator",
            "'Near' is not one of In, NotIn",
        ),
        (
            pod_json({}, affinity=affinity({"key": "z", "operator": "In"})),
            f"{AFFINITY}.nodeSelectorTerms[0].matchExpressions[0].values",
            "must be non-empty when operator is In",
        ),
        (
            pod_json({}, affinity=affinity({"key": "z", "operator": "Gt", "values": ["1", "2"]})),
            f"{AFFINITY}.nodeSelectorTerms[0].matchExpressions[0].values",
            "single integer",
        ),
        (
            pod_json({}, affinity=affinity({"key": "z", "operator": "Exists", "values": ["1"]})),
            f"{AFFINITY}.nodeSelectorTerms[0].matchExpressions[0].values",
            "must be empty",
        ),
        (
            pod_json({}, tolerations=[{"key": "a", "operator": "Maybe"}]),
            "spec.tolerations[0].operator",
            "use one of: 'Exists' or 'Equal'",
        ),
    ],
)
def test_errors_name_the_field(pod: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(PodSpecError, match=message) as info:
        pod_info(pod)
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: ")


def test_one_slice_per_container_across_containers_is_fine() -> None:
    info = pod_info(pod_json(res(limits={"nvidia.com/mig-1g.5gb": 1}), res(limits={"nvidia.com/mig-1g.5gb": 1})))
    assert info.mig == ("1g.5gb", "1g.5gb")
