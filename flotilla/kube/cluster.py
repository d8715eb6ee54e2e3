"""`flotilla kube apply | status | delete`: rendered manifests on a real cluster, with the `kubernetes`
client (imported when a command runs, so `flotilla --help` stays fast).

- apply: first every kind is looked up in the cluster's discovery (`/api/v1`, `/apis/<group>/<version>`);
  a kind the cluster does not serve stops the apply before anything is written, with the CRD to
  install (Kueue, GAIE, Gateway API, Prometheus Operator, DAS). Then each object is server-side
  applied (`PATCH` with `application/apply-patch+yaml`, field manager `flotilla`, `force=true`: the
  manifests are the source of truth for the fields they set) in dependency order (objects.APPLY_ORDER).
- delete: the same objects in reverse order (Jobs with their pods: propagationPolicy Background);
  objects already gone are reported, not errors.
- status: reads back the objects, and the Workloads and pods of their namespaces.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flotilla.kube.objects import (
    JSON,
    group_of,
    in_apply_order,
    kind_of,
    name_of,
    namespace_of,
    ref,
    version_of,
)

FIELD_MANAGER = "flotilla"
APPLY_PATCH = "application/apply-patch+yaml"
INSTALL_HINTS = {
    "kueue.x-k8s.io": "install Kueue (v0.15 or later serves v1beta2; for an older Kueue render with --kueue-version "
    "v1beta1): kubectl apply --server-side -f https://github.com/kubernetes-sigs/kueue/releases/download/"
    "<version>/manifests.yaml",
    "inference.networking.k8s.io": "install the Gateway API Inference Extension CRDs (v1.0 or later): kubectl apply "
    "-f https://github.com/kubernetes-sigs/gateway-api-inference-extension/releases/download/<version>/manifests.yaml",
    "inference.networking.x-k8s.io": "install the Gateway API Inference Extension CRDs (InferenceObjective is in "
    "its experimental manifests)",
    "gateway.networking.k8s.io": "install the Gateway API CRDs (standard channel, v1.3 or later) and a Gateway "
    "implementation (Istio, kgateway) that supports InferencePool backends",
    "monitoring.coreos.com": "install the Prometheus Operator (kube-prometheus-stack), or render without the "
    "monitors and scrape the pods another way",
    "inference.redhat.com": "some pods ask for nvidia.com/mig-* slices: install the Dynamic Accelerator Slicer, "
    "which carves them on demand (its CRD serves AllocationClaims)",
}


class KubeApiError(RuntimeError):
    """The API server refused a request (its status code, reason and message)."""

    def __init__(self, status: int, reason: str, message: str, what: str = "") -> None:
        self.status, self.reason, self.message = status, reason, message
        super().__init__(f"{what + ': ' if what else ''}{message or reason} (HTTP {status})")


class MissingKinds(RuntimeError):
    """Kinds the cluster does not serve (a CRD that is not installed): nothing was applied."""

    def __init__(self, missing: Sequence[tuple[str, str, str]]) -> None:
        self.missing = tuple(missing)  # (group, version, kind)
        lines = []
        for group in sorted({g for g, _, _ in self.missing}):
            kinds = ", ".join(f"{k} ({g}/{v})" for g, v, k in self.missing if g == group)
            hint = INSTALL_HINTS.get(group, f"install the CRDs of {group or 'the core API'}")
            lines.append(f"  {kinds}: {hint}")
        super().__init__("the cluster does not serve these kinds; nothing was applied:\n" + "\n".join(lines))


@dataclass(frozen=True)
class ApiResource:
    kind: str
    plural: str
    namespaced: bool


class KubeClient:
    """A thin JSON client of the Kubernetes API over `kubernetes.client.ApiClient`."""

    def __init__(self, api_client: Any) -> None:
        self._api = api_client
        self._discovery: dict[str, dict[str, ApiResource] | None] = {}

    @classmethod
    def for_url(cls, url: str) -> KubeClient:
        """An API server at `url` without credentials (a local emulator, or `kubectl proxy`)."""
        client: Any = importlib.import_module("kubernetes.client")
        configuration = client.Configuration()
        configuration.host = url.rstrip("/")
        return cls(client.ApiClient(configuration))

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None = None, context: str | None = None) -> KubeClient:
        """The cluster of a kubeconfig (default: $KUBECONFIG or ~/.kube/config), or the pod's own
        service account when running in a cluster."""
        config: Any = importlib.import_module("kubernetes.config")
        try:
            return cls(config.new_client_from_config(config_file=kubeconfig, context=context))
        except config.ConfigException:
            if kubeconfig is not None or context is not None:
                raise
        client: Any = importlib.import_module("kubernetes.client")
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return cls(client.ApiClient(configuration))

    def close(self) -> None:
        self._api.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Sequence[tuple[str, str]] = (),
        content_type: str = "application/json",
    ) -> JSON:
        """One call; the decoded JSON answer, or KubeApiError with the server's Status message."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        serialized = self._api.param_serialize(
            method, path, query_params=list(query), header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        exceptions: Any = importlib.import_module("kubernetes.client.exceptions")
        try:
            response = self._api.call_api(*serialized)
            response.read()
        except exceptions.ApiException as exc:  # transport-level failures the client raises itself
            raise KubeApiError(int(exc.status or 0), str(exc.reason or ""), str(exc.body or exc), path) from None
        text = response.data.decode("utf-8") if response.data else ""
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = {"message": text}
        if not 200 <= response.status <= 299:
            raise KubeApiError(response.status, str(data.get("reason") or ""), str(data.get("message") or text), path)
        return data if isinstance(data, dict) else {"items": data}

    def resources(self, group: str, version: str) -> dict[str, ApiResource] | None:
        """kind -> ApiResource the cluster serves in group/version; None when it serves none there."""
        key = f"{group}/{version}"
        if key not in self._discovery:
            path = f"/api/{version}" if not group else f"/apis/{group}/{version}"
            try:
                listing = self.request("GET", path)
            except KubeApiError as exc:
                if exc.status != 404:
                    raise
                self._discovery[key] = None
            else:
                self._discovery[key] = {
                    str(r["kind"]): ApiResource(str(r["kind"]), str(r["name"]), bool(r.get("namespaced")))
                    for r in listing.get("resources") or []
                    if "/" not in str(r.get("name", ""))  # not a subresource
                }
        return self._discovery[key]

    def resource_of(self, obj: JSON) -> ApiResource | None:
        return (self.resources(group_of(obj), version_of(obj)) or {}).get(kind_of(obj))

    def path(self, resource: ApiResource, group: str, version: str, namespace: str | None, name: str = "") -> str:
        base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
        scope = f"/namespaces/{namespace}" if resource.namespaced and namespace else ""
        return f"{base}{scope}/{resource.plural}" + (f"/{name}" if name else "")

    def object_path(self, obj: JSON) -> str:
        resource = self.resource_of(obj)
        if resource is None:
            raise MissingKinds([(group_of(obj), version_of(obj), kind_of(obj))])
        return self.path(resource, group_of(obj), version_of(obj), namespace_of(obj) or "default", name_of(obj))


DAS_KIND = ("inference.redhat.com", "v1alpha1", "AllocationClaim")
MIG_PREFIX = "nvidia.com/mig-"


def _asks_for_mig(obj: JSON) -> bool:
    """A Job or Deployment whose pods ask for a MIG slice (`nvidia.com/mig-*`): DAS must carve it."""
    pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]:
        resources = container.get("resources") or {}
        for section in ("limits", "requests"):
            if any(str(name).startswith(MIG_PREFIX) for name in resources.get(section) or {}):
                return True
    return False


def check_kinds(client: KubeClient, objects: Iterable[JSON]) -> None:
    """MissingKinds naming every kind (and the CRD to install) the cluster does not serve, and the
    Dynamic Accelerator Slicer's AllocationClaim when some pod asks for a MIG slice."""
    missing: set[tuple[str, str, str]] = set()
    mig = False
    for obj in objects:
        if client.resource_of(obj) is None:
            missing.add((group_of(obj), version_of(obj), kind_of(obj)))
        mig = mig or _asks_for_mig(obj)
    group, version, kind = DAS_KIND
    if mig and kind not in (client.resources(group, version) or {}):
        missing.add(DAS_KIND)
    if missing:
        raise MissingKinds(sorted(missing))


@dataclass(frozen=True)
class Outcome:
    ref: str
    action: str  # serverside-applied, deleted, not found


def apply(client: KubeClient, objects: Sequence[JSON], dry_run: bool = False) -> list[Outcome]:
    """Server-side apply every object, in dependency order, after checking every kind is served."""
    ordered = in_apply_order(objects)
    check_kinds(client, ordered)
    query = [("fieldManager", FIELD_MANAGER), ("force", "true")] + ([("dryRun", "All")] if dry_run else [])
    out = []
    for obj in ordered:
        body = dict(obj)
        resource = client.resource_of(obj)
        if resource is not None and resource.namespaced and not namespace_of(obj):
            body["metadata"] = {**(obj.get("metadata") or {}), "namespace": "default"}
        client.request("PATCH", client.object_path(body), body, query, APPLY_PATCH)
        out.append(Outcome(ref(body), "serverside-applied" + (" (dry run)" if dry_run else "")))
    return out


def delete(client: KubeClient, objects: Sequence[JSON]) -> list[Outcome]:
    """Delete the objects in reverse dependency order; kinds the cluster lacks are skipped."""
    out = []
    for obj in reversed(in_apply_order(objects)):
        if client.resource_of(obj) is None:
            out.append(Outcome(ref(obj), "not found (kind not served)"))
            continue
        try:
            client.request("DELETE", client.object_path(obj), query=[("propagationPolicy", "Background")])
        except KubeApiError as exc:
            if exc.status != 404:
                raise
            out.append(Outcome(ref(obj), "not found"))
            continue
        out.append(Outcome(ref(obj), "deleted"))
    return out


@dataclass
class Status:
    """What `status` read: objects by kind (in apply order), and kinds it could not read."""

    objects: dict[tuple[str, str], list[JSON]] = field(default_factory=dict)  # (group, kind) -> live objects
    unavailable: list[str] = field(default_factory=list)


STATUS_EXTRAS = (("kueue.x-k8s.io", "v1beta2", "Workload"), ("", "v1", "Pod"))
STATUS_KINDS = (
    ("kueue.x-k8s.io", "ClusterQueue"),
    ("kueue.x-k8s.io", "LocalQueue"),
    ("kueue.x-k8s.io", "Workload"),
    ("batch", "Job"),
    ("", "Pod"),
    ("apps", "Deployment"),
    ("inference.networking.k8s.io", "InferencePool"),
)


def status(client: KubeClient, objects: Sequence[JSON]) -> Status:
    """The live state of the objects' queues, jobs, model servers and pools, and of the Workloads and
    pods in their namespaces."""
    out = Status()
    wanted = {(group_of(o), kind_of(o)) for o in objects}
    namespaces = sorted({namespace_of(o) for o in objects if namespace_of(o)})
    versions = {(group_of(o), kind_of(o)): version_of(o) for o in objects}
    for group, version, kind in STATUS_EXTRAS:
        versions.setdefault((group, kind), version)
        wanted.add((group, kind))
    for group, kind in STATUS_KINDS:
        if (group, kind) not in wanted:
            continue
        version = versions[(group, kind)]
        resource = (client.resources(group, version) or {}).get(kind)
        if resource is None:
            out.unavailable.append(f"{kind} ({group + '/' if group else ''}{version}): not served by the cluster")
            continue
        names = {(namespace_of(o), name_of(o)) for o in objects if (group_of(o), kind_of(o)) == (group, kind)}
        items: list[JSON] = []
        scopes: list[str | None] = list(namespaces) if resource.namespaced else [None]
        for ns in scopes:
            listing = client.request("GET", client.path(resource, group, version, ns))
            for item in listing.get("items") or []:
                item.setdefault("apiVersion", f"{group}/{version}" if group else version)
                item.setdefault("kind", kind)
                ident = (namespace_of(item), name_of(item))
                if (group, kind) in {(g, k) for g, _, k in STATUS_EXTRAS} or ident in names:
                    items.append(item)
        out.objects[(group, kind)] = sorted(items, key=lambda o: (namespace_of(o), name_of(o)))
    return out
