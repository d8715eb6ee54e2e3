"""Small fluent builders for test objects (`cluster_queue("cq").quota("nvidia.com/gpu", 8)`)."""

from __future__ import annotations

import copy
from typing import Any

JSON = dict[str, Any]


class Builder:
    def __init__(self, body: JSON) -> None:
        self.body = body

    def label(self, key: str, value: str) -> Builder:
        self.body["metadata"].setdefault("labels", {})[key] = value
        return self

    def obj(self) -> JSON:
        return copy.deepcopy(self.body)


class ClusterQueueBuilder(Builder):
    def quota(
        self, resource: str, nominal: int | str, flavor: str = "default-flavor", **limits: Any
    ) -> ClusterQueueBuilder:
        groups = self.body["spec"].setdefault("resourceGroups", [])
        if not groups:
            groups.append({"coveredResources": [], "flavors": []})
        group = groups[0]
        if resource not in group["coveredResources"]:
            group["coveredResources"].append(resource)
        fl = next((f for f in group["flavors"] if f["name"] == flavor), None)
        if fl is None:
            fl = {"name": flavor, "resources": []}
            group["flavors"].append(fl)
        fl["resources"].append({"name": resource, "nominalQuota": nominal, **limits})
        return self

    def cohort(self, name: str) -> ClusterQueueBuilder:
        self.body["spec"]["cohortName"] = name
        return self

    def strategy(self, value: str) -> ClusterQueueBuilder:
        self.body["spec"]["queueingStrategy"] = value
        return self


def cluster_queue(name: str) -> ClusterQueueBuilder:
    return ClusterQueueBuilder(
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": name},
            "spec": {"namespaceSelector": {}},
        }
    )


def resource_flavor(name: str) -> Builder:
    return Builder({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": name}})


def local_queue(name: str, cluster_queue: str, namespace: str = "default") -> Builder:
    return Builder(
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "LocalQueue",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterQueue": cluster_queue},
        }
    )


def namespace(name: str) -> Builder:
    return Builder({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


class JobBuilder(Builder):
    def queue(self, name: str) -> JobBuilder:
        self.label("kueue.x-k8s.io/queue-name", name)
        return self

    def gpus(self, n: int, resource: str = "nvidia.com/gpu") -> JobBuilder:
        container = self.body["spec"]["template"]["spec"]["containers"][0]
        container.setdefault("resources", {}).setdefault("limits", {})[resource] = n
        return self

    def parallelism(self, n: int) -> JobBuilder:
        self.body["spec"]["parallelism"] = n
        return self


def job(name: str, namespace: str = "default") -> JobBuilder:
    return JobBuilder(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
                    }
                }
            },
        }
    )
