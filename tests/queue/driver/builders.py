"""Fluent builders for the driver tests: API objects as users write them.

job("train").queue("lq").gpus(2).parallelism(4).min_parallelism(2).priority_class("high")
cluster_queue("cq").quota("nvidia.com/gpu", 8, flavor="a100").preempt_within("LowerPriority")
flavor("a100").node_label("gpu", "a100").toleration("gpu", "a100")
"""

from __future__ import annotations

import copy
from typing import Any

from tests.builders import ClusterQueueBuilder, local_queue, namespace
from tests.builders import job as _job

JSON = dict[str, Any]
GPU = "nvidia.com/gpu"

__all__ = ["GPU", "cluster_queue", "flavor", "job", "local_queue", "namespace", "priority_class"]


class JobBuilder:
    def __init__(self, name: str, ns: str) -> None:
        self.body = _job(name, ns).obj()

    def label(self, key: str, value: str) -> JobBuilder:
        self.body["metadata"].setdefault("labels", {})[key] = value
        return self

    def annotate(self, key: str, value: str) -> JobBuilder:
        self.body["metadata"].setdefault("annotations", {})[key] = value
        return self

    def queue(self, name: str) -> JobBuilder:
        return self.label("kueue.x-k8s.io/queue-name", name)

    def priority_class(self, name: str) -> JobBuilder:
        return self.label("kueue.x-k8s.io/priority-class", name)

    def gpus(self, n: int) -> JobBuilder:
        self._container().setdefault("resources", {}).setdefault("limits", {})[GPU] = n
        return self

    def cpu(self, amount: str) -> JobBuilder:
        self._container().setdefault("resources", {}).setdefault("requests", {})["cpu"] = amount
        return self

    def parallelism(self, n: int, completions: int | None = None) -> JobBuilder:
        self.body["spec"]["parallelism"] = n
        if completions is not None:
            self.body["spec"]["completions"] = completions
        return self

    def min_parallelism(self, n: int) -> JobBuilder:
        return self.annotate("kueue.x-k8s.io/job-min-parallelism", str(n))

    def node_selector(self, **labels: str) -> JobBuilder:
        self.body["spec"]["template"]["spec"]["nodeSelector"] = dict(labels)
        return self

    def _container(self) -> JSON:
        container: JSON = self.body["spec"]["template"]["spec"]["containers"][0]
        return container

    def obj(self) -> JSON:
        return copy.deepcopy(self.body)


def job(name: str, ns: str = "default") -> JobBuilder:
    return JobBuilder(name, ns)


class FlavorBuilder:
    def __init__(self, name: str) -> None:
        self.body: JSON = {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ResourceFlavor",
            "metadata": {"name": name},
            "spec": {},
        }

    def node_label(self, key: str, value: str) -> FlavorBuilder:
        self.body["spec"].setdefault("nodeLabels", {})[key] = value
        return self

    def toleration(self, key: str, value: str, effect: str = "NoSchedule") -> FlavorBuilder:
        tol = {"key": key, "operator": "Equal", "value": value, "effect": effect}
        self.body["spec"].setdefault("tolerations", []).append(tol)
        return self

    def obj(self) -> JSON:
        return copy.deepcopy(self.body)


def flavor(name: str) -> FlavorBuilder:
    return FlavorBuilder(name)


class CQBuilder(ClusterQueueBuilder):
    def quota(self, resource: str, nominal: int | str, flavor: str = "default-flavor", **limits: Any) -> CQBuilder:
        super().quota(resource, nominal, flavor, **limits)
        return self

    def cohort(self, name: str) -> CQBuilder:
        super().cohort(name)
        return self

    def preempt_within(self, policy: str) -> CQBuilder:
        self.body["spec"].setdefault("preemption", {})["withinClusterQueue"] = policy
        return self

    def stop(self, policy: str) -> CQBuilder:
        self.body["spec"]["stopPolicy"] = policy
        return self

    def no_namespace_selector(self) -> CQBuilder:
        self.body["spec"].pop("namespaceSelector", None)
        return self

    def admission_fair_sharing(self) -> CQBuilder:
        self.body["spec"]["admissionScope"] = {"admissionMode": "UsageBasedAdmissionFairSharing"}
        return self


def cluster_queue(name: str) -> CQBuilder:
    return CQBuilder(
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": name},
            "spec": {"namespaceSelector": {}},
        }
    )


def priority_class(name: str, value: int) -> JSON:
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "WorkloadPriorityClass",
        "metadata": {"name": name},
        "value": value,
    }
