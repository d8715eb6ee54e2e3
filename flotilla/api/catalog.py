"""The kinds Flotilla serves, with their versions, short names and printer columns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flotilla.api import apps, batch, core, gaie, gatewayapi, kueue, kueue_v1beta1, pipelines, slicing
from flotilla.api.registry import Column, Kind, Registry, Version

JSON = dict[str, Any]


def get(obj: JSON, path: str, default: Any = None) -> Any:
    """Follow a dotted path through nested dicts (`status.admission.clusterQueue`)."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def condition_status(obj: JSON, ctype: str) -> str | None:
    for c in get(obj, "status.conditions", []) or []:
        if c.get("type") == ctype:
            return str(c.get("status"))
    return None


def age(obj: JSON, now: datetime | None = None) -> str:
    """kubectl's compact age (`45s`, `12m`, `3h`, `5d`)."""
    stamp = get(obj, "metadata.creationTimestamp")
    if not stamp:
        return "<unknown>"
    created = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = int(((now or datetime.now(UTC)) - created).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size or (unit == "m" and seconds >= 120):
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _path(p: str) -> Any:
    return lambda o: get(o, p)


AGE = Column("AGE", age)


def _job_status(o: JSON) -> str:
    for ctype in ("Complete", "Failed", "Suspended"):
        if condition_status(o, ctype) == "True":
            return ctype
    if get(o, "spec.suspend"):
        return "Suspended"
    return "Running" if get(o, "status.active") else "Pending"


def _job_completions(o: JSON) -> str:
    total = get(o, "spec.completions")
    return f"{get(o, 'status.succeeded', 0) or 0}/{total if total is not None else 1}"


def _node_status(o: JSON) -> str:
    ready = next((c for c in get(o, "status.conditions", []) or [] if c.get("type") == "Ready"), None)
    state = "Ready" if ready and ready.get("status") == "True" else "NotReady" if ready else "Unknown"
    return state + (",SchedulingDisabled" if get(o, "spec.unschedulable") else "")


def _node_gpus(o: JSON) -> str:
    gpus = get(o, "status.gpus", []) or []
    if not gpus:
        return "0"
    kind = "emulated" if all(g.get("emulated") for g in gpus) else "nvml"
    return f"{len(gpus)}x {gpus[0].get('product', '?')} ({kind})"


def _pod_status(o: JSON) -> str:
    """kubectl's STATUS: a terminating pod, a waiting container's reason, Completed, Error, ..."""
    if get(o, "metadata.deletionTimestamp"):
        return "Terminating"
    phase = get(o, "status.phase", "Pending") or "Pending"
    if get(o, "status.reason"):
        return str(get(o, "status.reason"))
    inits = get(o, "status.initContainerStatuses", []) or []
    done = sum(1 for cs in inits if ((cs.get("state") or {}).get("terminated") or {}).get("exitCode") == 0)
    if inits and done < len(inits) and phase == "Pending":
        return f"Init:{done}/{len(inits)}"
    for cs in get(o, "status.containerStatuses", []) or []:
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return str(waiting["reason"])
    if phase == "Succeeded":
        return "Completed"
    if phase == "Failed":
        return "Error"
    if phase == "Pending" and get(o, "spec.nodeName"):
        return "ContainerCreating"
    return str(phase)


def _pod_restarts(o: JSON) -> int:
    return sum(int(cs.get("restartCount") or 0) for cs in get(o, "status.containerStatuses", []) or [])


def _pod_devices(o: JSON) -> str:
    """The GPUs and MIG slices the pod holds: `GPU-3f6c…:1g.5gb` (UUID shortened)."""
    raw = (get(o, "metadata.annotations", {}) or {}).get("flotilla.dev/devices")
    if not raw:
        return "<none>"
    out = []
    for item in str(raw).split(","):
        uuid, _, profile = item.partition(":")
        out.append(f"{uuid[:12]}:{profile}")
    return ",".join(out)


def _pod_ready(o: JSON) -> str:
    statuses = get(o, "status.containerStatuses", []) or []
    total = len(get(o, "spec.containers", []) or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _data_count(o: JSON) -> int:
    return len(o.get("data") or {}) + len(o.get("binaryData") or {}) + len(o.get("stringData") or {})


def _pool_selector(o: JSON) -> str:
    labels = get(o, "spec.selector.matchLabels", {}) or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def build_registry() -> Registry:
    """A fresh registry of every kind Flotilla serves."""
    K = kueue.GROUP
    wl_ref = Column("PRIORITY", lambda o: get(o, "spec.priority"), wide=True)
    return Registry(
        [
            Kind(
                "",
                "Namespace",
                "namespaces",
                False,
                (Version("v1", core.Namespace),),
                ("ns",),
                columns=(Column("STATUS", lambda o: get(o, "status.phase", "Active")), AGE),
            ),
            Kind(
                "",
                "ConfigMap",
                "configmaps",
                True,
                (Version("v1", core.ConfigMap),),
                ("cm",),
                has_status=False,
                columns=(Column("DATA", _data_count), AGE),
            ),
            Kind(
                "",
                "Secret",
                "secrets",
                True,
                (Version("v1", core.Secret),),
                has_status=False,
                columns=(Column("TYPE", lambda o: o.get("type", "Opaque")), Column("DATA", _data_count), AGE),
                sensitive_fields=("data", "stringData"),
            ),
            Kind(
                "",
                "Node",
                "nodes",
                False,
                (Version("v1", core.Node),),
                ("no",),
                columns=(Column("STATUS", _node_status), Column("GPUS", _node_gpus), AGE),
            ),
            Kind(
                "",
                "Pod",
                "pods",
                True,
                (Version("v1", core.Pod),),
                ("po",),
                columns=(
                    Column("READY", _pod_ready),
                    Column("STATUS", _pod_status),
                    Column("RESTARTS", _pod_restarts),
                    AGE,
                    Column("NODE", lambda o: get(o, "spec.nodeName") or "<none>"),
                    Column("DEVICES", _pod_devices),
                    Column("IP", _path("status.podIP"), wide=True),
                ),
            ),
            Kind(
                "apps",
                "Deployment",
                "deployments",
                True,
                (Version("v1", apps.Deployment),),
                ("deploy",),
                columns=(
                    Column("READY", lambda o: f"{get(o, 'status.readyReplicas', 0) or 0}/{get(o, 'spec.replicas', 1)}"),
                    Column("UP-TO-DATE", lambda o: get(o, "status.updatedReplicas", 0) or 0),
                    Column("AVAILABLE", lambda o: get(o, "status.availableReplicas", 0) or 0),
                    AGE,
                ),
            ),
            Kind(
                "batch",
                "Job",
                "jobs",
                True,
                (Version("v1", batch.Job),),
                columns=(
                    Column("STATUS", _job_status),
                    Column("COMPLETIONS", _job_completions),
                    AGE,
                    Column(
                        "QUEUE",
                        lambda o: (get(o, "metadata.labels", {}) or {}).get(batch.QUEUE_NAME_LABEL),
                        wide=True,
                    ),
                ),
            ),
            Kind(
                K,
                "ResourceFlavor",
                "resourceflavors",
                False,
                (Version("v1beta2", kueue.ResourceFlavor), Version("v1beta1", kueue.ResourceFlavor)),
                ("rf", "flavor", "flavors"),
                has_status=False,
                columns=(AGE,),
            ),
            Kind(
                K,
                "ClusterQueue",
                "clusterqueues",
                False,
                (
                    Version("v1beta2", kueue.ClusterQueue),
                    Version(
                        "v1beta1",
                        kueue_v1beta1.ClusterQueueV1beta1,
                        kueue_v1beta1.cluster_queue_to_v1beta2,
                        kueue_v1beta1.cluster_queue_to_v1beta1,
                    ),
                ),
                ("cq",),
                columns=(
                    Column("COHORT", _path("spec.cohortName")),
                    Column("STRATEGY", _path("spec.queueingStrategy"), wide=True),
                    Column("PENDING WORKLOADS", _path("status.pendingWorkloads")),
                    Column("ADMITTED WORKLOADS", _path("status.admittedWorkloads"), wide=True),
                ),
            ),
            Kind(
                K,
                "LocalQueue",
                "localqueues",
                True,
                (Version("v1beta2", kueue.LocalQueue), Version("v1beta1", kueue.LocalQueue)),
                ("lq", "queue", "queues"),
                columns=(
                    Column("CLUSTERQUEUE", _path("spec.clusterQueue")),
                    Column("PENDING WORKLOADS", _path("status.pendingWorkloads")),
                    Column("ADMITTED WORKLOADS", _path("status.admittedWorkloads")),
                ),
            ),
            Kind(
                K,
                "Cohort",
                "cohorts",
                False,
                (Version("v1beta2", kueue.Cohort), Version("v1beta1", kueue.Cohort)),
                ("co",),
                columns=(Column("PARENT", _path("spec.parentName")), AGE),
            ),
            Kind(
                K,
                "WorkloadPriorityClass",
                "workloadpriorityclasses",
                False,
                (
                    Version("v1beta2", kueue.WorkloadPriorityClass),
                    Version("v1beta1", kueue.WorkloadPriorityClass),
                ),
                ("wpc",),
                has_status=False,
                columns=(Column("VALUE", lambda o: o.get("value")),),
            ),
            Kind(
                K,
                "Workload",
                "workloads",
                True,
                (
                    Version("v1beta2", kueue.Workload),
                    Version(
                        "v1beta1",
                        kueue_v1beta1.WorkloadV1beta1,
                        kueue_v1beta1.workload_to_v1beta2,
                        kueue_v1beta1.workload_to_v1beta1,
                    ),
                ),
                ("wl", "kwl", "kueueworkload", "kueueworkloads"),
                columns=(
                    Column("QUEUE", _path("spec.queueName")),
                    Column("RESERVED IN", _path("status.admission.clusterQueue")),
                    Column("ADMITTED", lambda o: condition_status(o, "Admitted")),
                    Column("FINISHED", lambda o: condition_status(o, "Finished")),
                    AGE,
                    wl_ref,
                ),
            ),
            Kind(
                gaie.GROUP,
                "InferencePool",
                "inferencepools",
                True,
                (Version("v1", gaie.InferencePool),),
                ("infpool", "ip"),
                columns=(
                    Column("SELECTOR", _pool_selector),
                    Column("PORTS", lambda o: ",".join(str(p["number"]) for p in get(o, "spec.targetPorts", []))),
                    Column("PICKER", lambda o: get(o, "spec.endpointPickerRef.name") or "<flotilla>"),
                    AGE,
                ),
            ),
            Kind(
                gaie.X_GROUP,
                "InferenceObjective",
                "inferenceobjectives",
                True,
                (Version("v1alpha2", gaie.InferenceObjective),),
                ("infobj",),
                columns=(
                    Column("POOL", _path("spec.poolRef.name")),
                    Column("PRIORITY", _path("spec.priority")),
                    AGE,
                ),
            ),
            Kind(
                gatewayapi.GROUP,
                "HTTPRoute",
                "httproutes",
                True,
                (Version("v1", gatewayapi.HTTPRoute),),
                columns=(Column("HOSTNAMES", lambda o: ",".join(get(o, "spec.hostnames", []) or []) or "*"), AGE),
            ),
            Kind(
                gatewayapi.GROUP,
                "Gateway",
                "gateways",
                True,
                (Version("v1", gatewayapi.Gateway),),
                ("gtw",),
                columns=(Column("CLASS", _path("spec.gatewayClassName")), AGE),
            ),
            Kind(
                slicing.GROUP,
                "AllocationClaim",
                "allocationclaims",
                True,
                (Version(slicing.VERSION, slicing.AllocationClaim),),
                ("alloc",),
                columns=(
                    Column("PROFILE", _path("spec.profile")),
                    Column("NODE", _path("spec.nodename")),
                    Column("GPU", _path("spec.gpuUUID")),
                    Column("START", _path("spec.migPlacement.start")),
                    Column("STATE", _path("status.state")),
                    Column(
                        "POD",
                        lambda o: "/".join(filter(None, (get(o, "spec.podRef.namespace"), get(o, "spec.podRef.name")))),
                    ),
                    AGE,
                    Column("DEVICE", _path("status.migUUID"), wide=True),
                ),
            ),
            Kind(
                pipelines.GROUP,
                "Pipeline",
                "pipelines",
                True,
                (Version(pipelines.VERSION, pipelines.Pipeline),),
                ("pl",),
                columns=(
                    Column("TEMPLATE", _path("spec.template")),
                    Column("PHASE", lambda o: get(o, "status.phase") or "Pending"),
                    Column("RECORDINGS", lambda o: get(o, "status.recordingsTotal", 0) or 0),
                    Column("TRANSCRIBED", lambda o: get(o, "status.transcribed", 0) or 0),
                    Column("SUMMARIZED", lambda o: get(o, "status.summarized", 0) or 0),
                    Column("FAILED", lambda o: get(o, "status.failed", 0) or 0),
                    AGE,
                    Column("OUTPUT", _path("spec.output"), wide=True),
                ),
            ),
        ]
    )
