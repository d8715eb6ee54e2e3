"""Each filter plugin on its own: accepts, or rejects with kube-scheduler's reason text."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from flotilla.runtime.scheduling import FilterStatus

from .builders import REGISTRY, NodeBuilder, PodBuilder, context, node, pod

A100 = "A100-40GB"


@dataclass
class Case:
    name: str
    plugin: str
    pod: PodBuilder
    node: NodeBuilder
    reasons: tuple[str, ...] | None  # None: fits
    retryable: bool = True


UNTOLERATED = "node(s) had untolerated taint {gpu: bad}"
AFFINITY = "node(s) didn't match Pod's node affinity/selector"

CASES = [
    # NodeName
    Case("nodeName unset", "NodeName", pod(), node("n1"), None),
    Case("nodeName matches", "NodeName", pod().on("n1"), node("n1"), None),
    Case("nodeName differs", "NodeName", pod().on("n2"), node("n1"), ("node(s) didn't match the requested node name",)),
    # NodeUnschedulable
    Case("schedulable node", "NodeUnschedulable", pod(), node("n1"), None),
    Case("cordoned node", "NodeUnschedulable", pod(), node("n1").cordon(), ("node(s) were unschedulable",)),
    Case(
        "cordoned node, pod tolerates it",
        "NodeUnschedulable",
        pod().tolerate("node.kubernetes.io/unschedulable", "Exists", effect="NoSchedule"),
        node("n1").cordon(),
        None,
    ),
    # TaintToleration
    Case("no taints", "TaintToleration", pod(), node("n1"), None),
    Case("untolerated NoSchedule", "TaintToleration", pod(), node("n1").taint("gpu", "bad"), (UNTOLERATED,)),
    Case(
        "untolerated NoExecute",
        "TaintToleration",
        pod(),
        node("n1").taint("gpu", "bad", "NoExecute"),
        (UNTOLERATED,),
    ),
    Case(
        "PreferNoSchedule is ignored",
        "TaintToleration",
        pod(),
        node("n1").taint("gpu", "bad", "PreferNoSchedule"),
        None,
    ),
    Case(
        "Equal with the value",
        "TaintToleration",
        pod().tolerate("gpu", value="bad"),
        node("n1").taint("gpu", "bad"),
        None,
    ),
    Case(
        "Equal with another value",
        "TaintToleration",
        pod().tolerate("gpu", value="good"),
        node("n1").taint("gpu", "bad"),
        (UNTOLERATED,),
    ),
    Case("Exists on the key", "TaintToleration", pod().tolerate("gpu", "Exists"), node("n1").taint("gpu", "bad"), None),
    Case(
        "Exists without a key tolerates all",
        "TaintToleration",
        pod().tolerate(None, "Exists"),
        node("n1").taint("a").taint("b", "x", "NoExecute"),
        None,
    ),
    Case(
        "toleration for another effect",
        "TaintToleration",
        pod().tolerate("gpu", "Exists", effect="NoExecute"),
        node("n1").taint("gpu", "bad"),
        (UNTOLERATED,),
    ),
    Case(
        "reason names the first untolerated taint; empty value",
        "TaintToleration",
        pod().tolerate("a", "Exists"),
        node("n1").taint("a").taint("dedicated").taint("gpu", "bad"),
        ("node(s) had untolerated taint {dedicated: }",),
    ),
    # NodeAffinity: nodeSelector and required affinity operators
    Case("selector matches", "NodeAffinity", pod().select(zone="a"), node("n1").label("zone", "a"), None),
    Case("selector differs", "NodeAffinity", pod().select(zone="a"), node("n1").label("zone", "b"), (AFFINITY,)),
    Case("selector label missing", "NodeAffinity", pod().select(zone="a"), node("n1"), (AFFINITY,)),
    Case("In", "NodeAffinity", pod().affinity([("zone", "In", ["a", "b"])]), node("n1").label("zone", "b"), None),
    Case(
        "In, other value",
        "NodeAffinity",
        pod().affinity([("zone", "In", ["a"])]),
        node("n1").label("zone", "b"),
        (AFFINITY,),
    ),
    Case("NotIn, missing label", "NodeAffinity", pod().affinity([("zone", "NotIn", ["a"])]), node("n1"), None),
    Case(
        "NotIn, listed",
        "NodeAffinity",
        pod().affinity([("zone", "NotIn", ["a"])]),
        node("n1").label("zone", "a"),
        (AFFINITY,),
    ),
    Case("Exists", "NodeAffinity", pod().affinity([("gpu", "Exists", [])]), node("n1").label("gpu", ""), None),
    Case("Exists, missing", "NodeAffinity", pod().affinity([("gpu", "Exists", [])]), node("n1"), (AFFINITY,)),
    Case("DoesNotExist", "NodeAffinity", pod().affinity([("gpu", "DoesNotExist", [])]), node("n1"), None),
    Case(
        "DoesNotExist, present",
        "NodeAffinity",
        pod().affinity([("gpu", "DoesNotExist", [])]),
        node("n1").label("gpu", "x"),
        (AFFINITY,),
    ),
    Case("Gt", "NodeAffinity", pod().affinity([("mem", "Gt", ["40"])]), node("n1").label("mem", "80"), None),
    Case(
        "Gt, equal", "NodeAffinity", pod().affinity([("mem", "Gt", ["40"])]), node("n1").label("mem", "40"), (AFFINITY,)
    ),
    Case(
        "Gt, not a number",
        "NodeAffinity",
        pod().affinity([("mem", "Gt", ["40"])]),
        node("n1").label("mem", "80Gi"),
        (AFFINITY,),
    ),
    Case("Lt", "NodeAffinity", pod().affinity([("mem", "Lt", ["40"])]), node("n1").label("mem", "8"), None),
    Case("Lt, missing", "NodeAffinity", pod().affinity([("mem", "Lt", ["40"])]), node("n1"), (AFFINITY,)),
    Case(
        "expressions are ANDed",
        "NodeAffinity",
        pod().affinity([("zone", "In", ["a"]), ("gpu", "Exists", [])]),
        node("n1").label("zone", "a"),
        (AFFINITY,),
    ),
    Case(
        "terms are ORed",
        "NodeAffinity",
        pod().affinity([("zone", "In", ["x"])], [("gpu", "Exists", [])]),
        node("n1").label("gpu", "1"),
        None,
    ),
    Case("an empty term matches nothing", "NodeAffinity", pod().affinity([]), node("n1"), (AFFINITY,)),
    Case(
        "selector and affinity must both hold",
        "NodeAffinity",
        pod().select(zone="a").affinity([("gpu", "Exists", [])]),
        node("n1").label("gpu", "1"),
        (AFFINITY,),
    ),
    # NodeResourcesFit
    Case("fits", "NodeResourcesFit", pod().cpu("4").memory("16Gi"), node("n1").used(cpu="4", memory="16Gi"), None),
    Case("cpu short", "NodeResourcesFit", pod().cpu("5"), node("n1").used(cpu="4"), ("Insufficient cpu",)),
    Case(
        "millicores count", "NodeResourcesFit", pod().cpu("100m"), node("n1").used(cpu="7950m"), ("Insufficient cpu",)
    ),
    Case(
        "memory short",
        "NodeResourcesFit",
        pod().memory("17Gi"),
        node("n1").used(memory="16Gi"),
        ("Insufficient memory",),
    ),
    Case(
        "cpu and memory short: both, cpu first",
        "NodeResourcesFit",
        pod().memory("40Gi").cpu("5"),
        node("n1").used(cpu="4"),
        ("Insufficient cpu", "Insufficient memory"),
        retryable=False,  # 40Gi is more than the node has at all
    ),
    Case("too many pods", "NodeResourcesFit", pod(), node("n1").max_pods(2).used(pods=2), ("Too many pods",)),
    Case(
        "larger than the node", "NodeResourcesFit", pod().cpu("9"), node("n1"), ("Insufficient cpu",), retryable=False
    ),
    # GPUHealth
    Case(
        "EVICT node, GPU pod: fits (its healthy GPUs are still used; GPUFit skips the EVICT ones)",
        "GPUHealth",
        pod().gpus(1),
        node("n1").label("autopilot.ibm.com/gpuhealth", "EVICT"),
        None,
    ),
    Case(
        "EVICT node rejected when configured to drain EVICT nodes whole",
        "GPUHealth:drain",
        pod().gpus(1),
        node("n1").label("autopilot.ibm.com/gpuhealth", "EVICT"),
        ("node(s) had GPU health EVICT",),
    ),
    Case(
        "ERR node, MIG pod",
        "GPUHealth",
        pod().mig("1g.5gb"),
        node("n1").label("autopilot.ibm.com/gpuhealth", "ERR"),
        ("node(s) had GPU health ERR",),
    ),
    Case(
        "EVICT node, CPU pod",
        "GPUHealth",
        pod().cpu("1"),
        node("n1").label("autopilot.ibm.com/gpuhealth", "EVICT"),
        None,
    ),
    Case(
        "WARN node, GPU pod", "GPUHealth", pod().gpus(1), node("n1").label("autopilot.ibm.com/gpuhealth", "WARN"), None
    ),
    # GPUFit (more in test_gpus.py)
    Case("CPU pod on a GPU-less node", "GPUFit", pod().cpu("1"), node("n1"), None),
    Case(
        "GPU pod on a GPU-less node",
        "GPUFit",
        pod().gpus(1),
        node("n1"),
        ("Insufficient nvidia.com/gpu",),
        retryable=False,
    ),
    Case("whole GPU", "GPUFit", pod().gpus(1), node("n1").gpus(A100, 1), None),
    Case(
        "whole GPU, GPU partitioned",
        "GPUFit",
        pod().gpus(1),
        node("n1").gpus(A100, 1).slice(0, "1g.5gb", 6),
        ("Insufficient nvidia.com/gpu",),
    ),
    Case("MIG slice", "GPUFit", pod().mig("3g.20gb"), node("n1").gpus(A100, 1).slice(0, "3g.20gb", 0), None),
    Case(
        "MIG slice, GPU full",
        "GPUFit",
        pod().mig("3g.20gb"),
        node("n1").gpus(A100, 1).slice(0, "3g.20gb", 0).slice(0, "3g.20gb", 4),
        ("Insufficient nvidia.com/mig-3g.20gb",),
    ),
    Case(
        "MIG profile the node's model lacks",
        "GPUFit",
        pod().mig("3g.20gb"),
        node("n1").gpus("H100-80GB", 1),
        ("Insufficient nvidia.com/mig-3g.20gb",),
        retryable=False,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.plugin}: {c.name}")
def test_filter(case: Case) -> None:
    name, _, variant = case.plugin.partition(":")
    plugin = REGISTRY.filter(name)
    params = plugin.params_model(**({"reject": ["EVICT", "ERR"]} if variant == "drain" else {}))
    status = plugin.fn(context(), case.pod.build(), case.node.build(), params)
    if case.reasons is None:
        assert status is None
    else:
        assert status == FilterStatus(case.reasons, case.retryable)


def test_ignored_resources_are_not_checked() -> None:
    plugin = REGISTRY.filter("NodeResourcesFit")
    p = pod().build()
    p = type(p)(key=p.key, requests={"example.com/foo": 1})
    assert plugin.fn(context(), p, node("n1").build(), plugin.params_model()) == FilterStatus(
        ("Insufficient example.com/foo",), retryable=False
    )
    params = plugin.params_model.model_validate({"ignored_resources": ["example.com/foo"]})
    assert plugin.fn(context(), p, node("n1").build(), params) is None
