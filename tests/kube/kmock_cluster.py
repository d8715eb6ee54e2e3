"""A Kubernetes API emulator on 127.0.0.1 for the apply/status/delete tests: kmock's KubernetesEmulator
in a thread of its own, with two things kmock 0.8 lacks (docs/kubernetes.md, "Testing"):

- server-side apply's create: a `PATCH` with `application/apply-patch+yaml` of an object that does
  not exist creates it (kmock answers 404); an existing object is merged as kmock merges any patch
  (no field ownership, no conflicts, fields left out of the apply are not removed);
- `/api/v1/namespaces[/NAME]`: kmock reads `namespaces` as the namespace prefix of a path and fails
  (HTTP 500); the fixture reads those paths as the Namespace resource itself.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import kmock
from kmock._internal import parsing

APPLY_PATCH = "application/apply-patch+yaml"
# (group/version/plural, kind, namespaced): what a cluster with Kueue, DAS, GAIE, Gateway API and the
# Prometheus Operator serves, as far as the rendered manifests and `status` use it.
CLUSTER_RESOURCES = (
    ("v1/namespaces", "Namespace", False),
    ("v1/serviceaccounts", "ServiceAccount", True),
    ("v1/services", "Service", True),
    ("v1/configmaps", "ConfigMap", True),
    ("v1/secrets", "Secret", True),
    ("v1/pods", "Pod", True),
    ("rbac.authorization.k8s.io/v1/clusterroles", "ClusterRole", False),
    ("rbac.authorization.k8s.io/v1/clusterrolebindings", "ClusterRoleBinding", False),
    ("rbac.authorization.k8s.io/v1/roles", "Role", True),
    ("rbac.authorization.k8s.io/v1/rolebindings", "RoleBinding", True),
    ("apps/v1/deployments", "Deployment", True),
    ("apps/v1/daemonsets", "DaemonSet", True),
    ("batch/v1/jobs", "Job", True),
    ("kueue.x-k8s.io/v1beta2/resourceflavors", "ResourceFlavor", False),
    ("kueue.x-k8s.io/v1beta2/clusterqueues", "ClusterQueue", False),
    ("kueue.x-k8s.io/v1beta2/localqueues", "LocalQueue", True),
    ("kueue.x-k8s.io/v1beta2/workloads", "Workload", True),
    ("kueue.x-k8s.io/v1beta2/admissionchecks", "AdmissionCheck", False),
    ("kueue.x-k8s.io/v1beta2/multikueueconfigs", "MultiKueueConfig", False),
    ("kueue.x-k8s.io/v1beta2/multikueueclusters", "MultiKueueCluster", False),
    ("inference.networking.k8s.io/v1/inferencepools", "InferencePool", True),
    ("inference.networking.x-k8s.io/v1alpha2/inferenceobjectives", "InferenceObjective", True),
    ("gateway.networking.k8s.io/v1/gateways", "Gateway", True),
    ("gateway.networking.k8s.io/v1/httproutes", "HTTPRoute", True),
    ("monitoring.coreos.com/v1/podmonitors", "PodMonitor", True),
    ("monitoring.coreos.com/v1/servicemonitors", "ServiceMonitor", True),
    ("inference.redhat.com/v1alpha1/allocationclaims", "AllocationClaim", True),  # DAS
)
GAIE_GROUPS = ("inference.networking.k8s.io", "inference.networking.x-k8s.io")


class ApplyingEmulator(kmock.KubernetesEmulator):
    """kmock's emulator, plus create-on-apply (see the module docstring)."""

    async def _handle(self, request: Any) -> Any:
        content_type = str(request.headers.get("Content-Type", ""))
        if (
            request.resource is not None
            and request.action == kmock.action.UPDATE
            and content_type.startswith(APPLY_PATCH)
            and request.name
            and isinstance(request.data, dict)
        ):
            key = (request.resource, request.namespace, request.name)
            async with self._lock:
                if key not in self._objects:
                    self._objects[key] = request.data
                elif self._objects[key].deleted:
                    self._objects[key].create(request.data)
        return await super()._handle(request)


def _parse_path(path: str) -> parsing.ParsedPath:
    parts = path.strip("/").split("/")
    namespace_itself = len(parts) < 5 or parts[4] in ("status", "finalize")
    if len(parts) in (3, 4, 5) and parts[0] == "api" and parts[2] == "namespaces" and namespace_itself:
        name = parts[3] if len(parts) > 3 else None
        return parsing.ParsedPath("", parts[1], "namespaces", None, name, parts[4] if len(parts) > 4 else None)
    return _ORIGINAL_PARSE(path)


_ORIGINAL_PARSE = parsing.parse_path


@contextmanager
def emulated_cluster(exclude_groups: Iterable[str] = ()) -> Iterator[tuple[str, ApplyingEmulator]]:
    """(URL, emulator) of a running emulator that serves CLUSTER_RESOURCES (less `exclude_groups`)."""
    excluded = set(exclude_groups)
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        async with ApplyingEmulator() as emulator, kmock.Server(emulator) as server:
            for path, kind, namespaced in CLUSTER_RESOURCES:
                if path.split("/")[0] in excluded:
                    continue
                emulator.resources[path] = kmock.ResourceInfo(
                    kind=kind, namespaced=namespaced, verbs={"get", "list", "patch", "delete", "create"}
                )
            state.update(url=str(server.url).rstrip("/"), emulator=emulator, loop=asyncio.get_running_loop())
            state["stop"] = asyncio.Event()
            ready.set()
            await state["stop"].wait()

    parsing.parse_path = _parse_path
    thread = threading.Thread(target=lambda: asyncio.run(main()), name="kmock", daemon=True)
    thread.start()
    try:
        if not ready.wait(10):
            raise RuntimeError("the kmock emulator did not start")
        yield state["url"], state["emulator"]
    finally:
        if "loop" in state:
            state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)
        parsing.parse_path = _ORIGINAL_PARSE
