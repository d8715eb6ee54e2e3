"""Broken manifests: each error names the document, the object, the exact field path and the fix."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from flotilla.api.catalog import build_registry
from flotilla.api.errors import ManifestErrors
from flotilla.api.loader import load_text

REGISTRY = build_registry()

# -- builders ---------------------------------------------------------------------------------


def cluster_queue(spec: str, *, version: str = "v1beta2", name: str = "cq", meta: str = "") -> str:
    """A ClusterQueue document; `spec` is the YAML body of spec, indented by two spaces."""
    return f"apiVersion: kueue.x-k8s.io/{version}\nkind: ClusterQueue\nmetadata:\n  name: {name}\n{meta}spec:\n{spec}"


def quotas(*resources: str, covered: str = "[cpu]", flavor: str = "default") -> str:
    """One resource group with one flavor; each resource is a flow mapping like `{name: cpu, nominalQuota: 8}`."""
    lines = "".join(f"      - {r}\n" for r in resources)
    return (
        f"  resourceGroups:\n  - coveredResources: {covered}\n    flavors:\n    - name: {flavor}\n"
        f"      resources:\n{lines}"
    )


def job(
    *,
    containers: str = "      - {name: c, image: busybox}\n",
    spec: str = "",
    restart: str = "Never",
    volumes: str = "",
    meta: str = "",
) -> str:
    """A batch/v1 Job named j; `containers` are list items indented for template.spec.containers."""
    restart_line = f"      restartPolicy: {restart}\n" if restart else ""
    return (
        f"apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\n{meta}spec:\n{spec}  template:\n    spec:\n"
        f"{restart_line}      containers:\n{containers}{volumes}"
    )


def pool(spec: str) -> str:
    return f"apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\nmetadata:\n  name: pool\nspec:\n{spec}"


POOL_OK = (
    "  selector: {matchLabels: {app: vllm}}\n  targetPorts: [{number: 8000}]\n"
    "  endpointPickerRef: {name: epp, port: {number: 9002}}\n"
)


def workload(pod_sets: str, *, version: str = "v1beta2", extra: str = "") -> str:
    return (
        f"apiVersion: kueue.x-k8s.io/{version}\nkind: Workload\nmetadata:\n  name: wl\n  namespace: default\n"
        f"spec:\n{extra}  podSets:\n{pod_sets}"
    )


def pod_set(name: str, count: int, min_count: int | None = None) -> str:
    minimum = f"    minCount: {min_count}\n" if min_count is not None else ""
    return (
        f"  - name: {name}\n    count: {count}\n{minimum}    template:\n      spec:\n"
        "        containers: [{name: c, image: busybox}]\n"
    )


RG0 = "spec.resourceGroups[0]"
Q = f"{RG0}.flavors[0].resources"
CONTAINER = "spec.template.spec.containers[0]"
CQ = "doc 1 ClusterQueue/cq"
JOB = "doc 1 Job/j"
LONG = "a" * 254


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    # (where, field path, fragment of the message); a document's issues are listed in full.
    expected: tuple[tuple[str, str, str], ...]


CASES = [
    # -- YAML and document shape ----------------------------------------------------------------
    Case(
        "malformed-yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: [a\n",
        (("doc 1", "", "malformed YAML at line 6"),),
    ),
    Case(
        "malformed-yaml-in-doc-2",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\n"
        "metadata:\n  name: b\n   bad: indent\n",
        (("doc 2", "", "malformed YAML at line 9"),),
    ),
    Case(
        "tab-indentation", "apiVersion: v1\nkind: Namespace\nmetadata:\n\tname: x\n", (("doc 1", "", "malformed YAML"),)
    ),
    Case("list-document", "- a\n- b\n", (("doc 1", "", "expected an object with apiVersion and kind, got list"),)),
    Case("scalar-document", "hello\n", (("doc 1", "", "expected an object with apiVersion and kind, got str"),)),
    Case(
        "missing-apiversion",
        "kind: Namespace\nmetadata: {name: x}\n",
        (("doc 1 Namespace/x", "apiVersion", "required field is missing"),),
    ),
    Case("missing-kind", "apiVersion: v1\nmetadata: {name: x}\n", (("doc 1", "kind", "required field is missing"),)),
    Case(
        "missing-apiversion-and-kind",
        "metadata: {name: x}\n",
        (("doc 1", "apiVersion", "required field is missing"), ("doc 1", "kind", "required field is missing")),
    ),
    Case(
        "apiversion-not-a-string",
        "apiVersion: 1\nkind: Namespace\nmetadata: {name: x}\n",
        (("doc 1 Namespace/x", "apiVersion", 'expected a string such as "batch/v1", got 1'),),
    ),
    Case(
        "unknown-kind-with-suggestion",
        "apiVersion: kueue.x-k8s.io/v1beta2\nkind: ClusterQueu\nmetadata: {name: x}\n",
        (("doc 1 ClusterQueu/x", "kind", 'did you mean "ClusterQueue" (kueue.x-k8s.io/v1beta2)?'),),
    ),
    Case(
        "unknown-kind",
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\n",
        (("doc 1 StatefulSet/x", "kind", 'unknown kind "StatefulSet" in apiVersion "apps/v1"; known kinds: '),),
    ),
    Case(
        "kind-in-the-wrong-group",
        "apiVersion: v1\nkind: Job\nmetadata: {name: x}\n",
        (("doc 1 Job/x", "kind", 'Job is not in apiVersion "v1"; use apiVersion: batch/v1'),),
    ),
    Case(
        "kind-not-served-in-version",
        "apiVersion: kueue.x-k8s.io/v1alpha1\nkind: ClusterQueue\nmetadata: {name: x}\n",
        (
            (
                "doc 1 ClusterQueue/x",
                "kind",
                'ClusterQueue is not served in apiVersion "kueue.x-k8s.io/v1alpha1"; use one of: '
                "kueue.x-k8s.io/v1beta2, kueue.x-k8s.io/v1beta1",
            ),
        ),
    ),
    Case(
        "missing-name",
        "apiVersion: v1\nkind: Namespace\nmetadata: {labels: {a: b}}\n",
        (("doc 1 Namespace/<unnamed>", "metadata.name", "required field is missing; set metadata.name"),),
    ),
    # -- unknown fields, at several depths --------------------------------------------------------
    Case(
        "unknown-field-top-level",
        cluster_queue("  cohortName: team\n").replace("spec:", "specs:"),
        (("doc 1 ClusterQueue/cq", "specs", 'unknown field "specs"; did you mean "spec"?'),),
    ),
    Case(
        "unknown-field-in-metadata",
        cluster_queue("  stopPolicy: None\n", meta="  lables: {team: a}\n"),
        ((CQ, "metadata.lables", 'unknown field "lables"; did you mean "labels"?'),),
    ),
    Case(
        "unknown-field-nominalQuta",
        cluster_queue(quotas("{name: cpu, nominalQuta: 8}")),
        # One mistake, one issue: the misspelling is not also reported as a missing nominalQuota.
        ((CQ, f"{Q}[0].nominalQuta", 'unknown field "nominalQuta"; did you mean "nominalQuota"?'),),
    ),
    Case(
        "unknown-field-in-container",
        job(containers="      - {name: c, image: busybox, imagePullPolcy: Always}\n"),
        ((JOB, f"{CONTAINER}.imagePullPolcy", 'unknown field "imagePullPolcy"; did you mean "imagePullPolicy"?'),),
    ),
    Case(
        "unknown-field-without-close-match",
        cluster_queue("  weather: sunny\n"),
        ((CQ, "spec.weather", 'unknown field "weather"; allowed fields here: admissionChecksStrategy, '),),
    ),
    Case(
        "v1beta2-field-in-v1beta1",
        cluster_queue("  cohortName: team\n", version="v1beta1"),
        ((CQ, "spec.cohortName", 'unknown field "cohortName"; did you mean "cohort"?'),),
    ),
    Case(
        "v1beta1-field-in-v1beta2",
        cluster_queue("  cohort: team\n"),
        ((CQ, "spec.cohort", 'unknown field "cohort"; did you mean "cohortName"?'),),
    ),
    Case(
        "v1beta1-fungibility-value-in-v1beta2",
        cluster_queue("  flavorFungibility: {whenCanBorrow: Borrow}\n"),
        ((CQ, "spec.flavorFungibility.whenCanBorrow", "\"Borrow\" is not allowed; use one of: 'MayStopSearch'"),),
    ),
    # -- wrong types ------------------------------------------------------------------------------
    Case(
        "quoted-integer",
        job(spec='  parallelism: "3"\n'),
        ((JOB, "spec.parallelism", 'expected an integer, got "3"; remove the quotes'),),
    ),
    Case("boolean-for-integer", job(spec="  completions: true\n"), ((JOB, "spec.completions", "expected an integer"),)),
    Case(
        "float-for-integer",
        job(spec="  parallelism: 1.5\n"),
        ((JOB, "spec.parallelism", "expected an integer, got 1.5"),),
    ),
    Case(
        "string-for-boolean",
        job(spec="  suspend: yes please\n"),
        ((JOB, "spec.suspend", 'expected true or false, got "yes please"'),),
    ),
    Case(
        "label-value-not-a-string",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  labels: {gpu: true}\n",
        (("doc 1 Namespace/x", "metadata.labels[gpu]", 'expected a string, got true; quote it ("true")'),),
    ),
    Case(
        "string-for-list",
        cluster_queue(quotas("{name: cpu, nominalQuota: 8}", covered="cpu")),
        ((CQ, f"{RG0}.coveredResources", 'expected a list, got "cpu"'),),
    ),
    Case(
        "string-for-object",
        cluster_queue("  preemption: LowerPriority\n"),
        ((CQ, "spec.preemption", 'expected an object (a mapping of fields), got "LowerPriority"'),),
    ),
    # -- quantities -------------------------------------------------------------------------------
    Case(
        "bad-quantity-suffix",
        cluster_queue(
            quotas("{name: cpu, nominalQuota: 8}", "{name: memory, nominalQuota: 8Gx}", covered="[cpu, memory]")
        ),
        ((CQ, f"{Q}[1].nominalQuota", '"8Gx" is not a quantity (a quantity looks like 2, 500m, 36Gi or 1e3)'),),
    ),
    Case(
        "bad-quantity-two-points",
        cluster_queue(quotas('{name: cpu, nominalQuota: "1.2.3"}')),
        ((CQ, f"{Q}[0].nominalQuota", '"1.2.3" is not a quantity'),),
    ),
    Case(
        "empty-quantity",
        cluster_queue(quotas('{name: cpu, nominalQuota: ""}')),
        ((CQ, f"{Q}[0].nominalQuota", '"" is not a quantity'),),
    ),
    Case(
        "bad-quantity-in-container-requests",
        job(containers='      - {name: c, image: x, resources: {requests: {nvidia.com/gpu: "one"}}}\n'),
        ((JOB, f"{CONTAINER}.resources.requests[nvidia.com/gpu]", '"one" is not a quantity'),),
    ),
    Case(
        "negative-nominalQuota",
        cluster_queue(quotas("{name: cpu, nominalQuota: -1}")),
        ((CQ, f"{Q}[0].nominalQuota", '"-1" must be greater than or equal to 0'),),
    ),
    Case(
        "negative-borrowingLimit",
        cluster_queue("  cohortName: team\n" + quotas("{name: cpu, nominalQuota: 4, borrowingLimit: -2}")),
        ((CQ, f"{Q}[0].borrowingLimit", '"-2" must be greater than or equal to 0'),),
    ),
    Case(
        "negative-lendingLimit",
        cluster_queue("  cohortName: team\n" + quotas("{name: cpu, nominalQuota: 4, lendingLimit: -500m}")),
        ((CQ, f"{Q}[0].lendingLimit", '"-500m" must be greater than or equal to 0'),),
    ),
    # -- quota rules (Kueue's CEL rules and webhook) ----------------------------------------------
    Case(
        "lendingLimit-above-nominalQuota",
        cluster_queue(
            "  cohortName: team\n" + quotas("{name: memory, nominalQuota: 1Gi, lendingLimit: 2Gi}", covered="[memory]")
        ),
        ((CQ, f"{Q}[0].lendingLimit", '"2Gi" must be at most nominalQuota (1Gi)'),),
    ),
    Case(
        "borrowingLimit-without-cohort",
        cluster_queue(quotas("{name: cpu, nominalQuota: 4, borrowingLimit: 2}")),
        ((CQ, f"{Q}[0].borrowingLimit", "must be omitted when there is no cohort to borrow from"),),
    ),
    Case(
        "lendingLimit-without-cohort",
        cluster_queue(quotas("{name: cpu, nominalQuota: 4, lendingLimit: 2}")),
        ((CQ, f"{Q}[0].lendingLimit", "must be omitted when there is no cohort to lend to"),),
    ),
    Case(
        "resources-not-matching-coveredResources",
        cluster_queue(
            quotas("{name: memory, nominalQuota: 1Gi}", "{name: cpu, nominalQuota: 4}", covered="[cpu, memory]")
        ),
        (
            (
                CQ,
                f"{RG0}.flavors[0].resources",
                "must list exactly the coveredResources ['cpu', 'memory'] in that order",
            ),
        ),
    ),
    Case(
        "resource-missing-from-flavor",
        cluster_queue(quotas("{name: cpu, nominalQuota: 4}", covered="[cpu, nvidia.com/gpu]")),
        ((CQ, f"{RG0}.flavors[0].resources", "got ['cpu']"),),
    ),
    Case(
        "duplicate-flavor-across-groups",
        cluster_queue(
            quotas("{name: cpu, nominalQuota: 4}")
            + "  - coveredResources: [memory]\n    flavors:\n    - name: default\n      resources:\n"
            "      - {name: memory, nominalQuota: 1Gi}\n"
        ),
        ((CQ, "spec.resourceGroups[1].flavors[0].name", 'flavor "default" already appears in resourceGroups[0]'),),
    ),
    Case(
        "resource-covered-twice",
        cluster_queue(
            quotas("{name: cpu, nominalQuota: 4}")
            + "  - coveredResources: [cpu]\n    flavors:\n    - name: spot\n      resources:\n"
            "      - {name: cpu, nominalQuota: 8}\n"
        ),
        ((CQ, "spec.resourceGroups[1].coveredResources", '"cpu" is already covered by resourceGroups[0]'),),
    ),
    Case(
        "empty-coveredResources",
        cluster_queue("  resourceGroups:\n  - coveredResources: []\n    flavors: []\n"),
        (
            (CQ, f"{RG0}.coveredResources", "must have at least 1 item, got 0"),
            (CQ, f"{RG0}.flavors", "must have at least 1 item, got 0"),
        ),
    ),
    # -- enums and preemption ----------------------------------------------------------------------
    Case(
        "bad-queueingStrategy",
        cluster_queue("  queueingStrategy: FIFO\n"),
        ((CQ, "spec.queueingStrategy", "\"FIFO\" is not allowed; use one of: 'StrictFIFO' or 'BestEffortFIFO'"),),
    ),
    Case(
        "bad-stopPolicy",
        cluster_queue("  stopPolicy: Stop\n"),
        ((CQ, "spec.stopPolicy", "\"Stop\" is not allowed; use one of: 'None', 'Hold' or 'HoldAndDrain'"),),
    ),
    Case(
        "bad-withinClusterQueue",
        cluster_queue("  preemption: {withinClusterQueue: Always}\n"),
        ((CQ, "spec.preemption.withinClusterQueue", '"Always" is not allowed; use one of: '),),
    ),
    Case(
        "bad-reclaimWithinCohort",
        cluster_queue("  preemption: {reclaimWithinCohort: Sometimes}\n"),
        ((CQ, "spec.preemption.reclaimWithinCohort", "'Never', 'LowerPriority' or 'Any'"),),
    ),
    Case(
        "borrowWithinCohort-without-reclaim",
        cluster_queue("  preemption: {borrowWithinCohort: {policy: LowerPriority}}\n"),
        ((CQ, "spec.preemption.borrowWithinCohort.policy", "must be Never when reclaimWithinCohort is Never"),),
    ),
    Case(
        "negative-fairSharing-weight",
        cluster_queue("  fairSharing: {weight: -1}\n"),
        ((CQ, "spec.fairSharing.weight", '"-1" must be greater than or equal to 0'),),
    ),
    Case(
        "v1beta1-admissionChecks-and-strategy",
        cluster_queue(
            "  admissionChecks: [prov]\n  admissionChecksStrategy: {admissionChecks: [{name: prov}]}\n",
            version="v1beta1",
        ),
        ((CQ, "spec.admissionChecks", "set either admissionChecks or admissionChecksStrategy, not both"),),
    ),
    Case(
        "cohort-is-its-own-parent",
        "apiVersion: kueue.x-k8s.io/v1beta2\nkind: Cohort\nmetadata: {name: team}\nspec: {parentName: team}\n",
        (("doc 1 Cohort/team", "spec.parentName", "a Cohort cannot be its own parent"),),
    ),
    # -- LocalQueue, names and scopes --------------------------------------------------------------
    Case(
        "localqueue-missing-clusterQueue",
        "apiVersion: kueue.x-k8s.io/v1beta2\nkind: LocalQueue\nmetadata: {name: lq, namespace: team}\n"
        "spec: {stopPolicy: Hold}\n",
        (("doc 1 LocalQueue/lq", "spec.clusterQueue", "required field is missing; add it"),),
    ),
    Case(
        "localqueue-misspelt-clusterQueue",
        "apiVersion: kueue.x-k8s.io/v1beta2\nkind: LocalQueue\nmetadata: {name: lq, namespace: team}\n"
        "spec: {clusterQueu: cq}\n",
        (("doc 1 LocalQueue/lq", "spec.clusterQueu", 'unknown field "clusterQueu"; did you mean "clusterQueue"?'),),
    ),
    Case(
        "localqueue-missing-spec",
        "apiVersion: kueue.x-k8s.io/v1beta2\nkind: LocalQueue\nmetadata: {name: lq, namespace: team}\n",
        (("doc 1 LocalQueue/lq", "spec", "required field is missing; add it"),),
    ),
    Case(
        "uppercase-name",
        cluster_queue("  stopPolicy: None\n", name="TeamQueue"),
        (("doc 1 ClusterQueue/TeamQueue", "metadata.name", '"TeamQueue" is not a valid name: use lower-case letters'),),
    ),
    Case(
        "name-too-long",
        cluster_queue("  stopPolicy: None\n", name=LONG),
        ((f"doc 1 ClusterQueue/{LONG}", "metadata.name", "(at most 253 characters)"),),
    ),
    Case(
        "uppercase-namespace",
        "apiVersion: kueue.x-k8s.io/v1beta2\nkind: LocalQueue\nmetadata: {name: lq, namespace: Team-A}\n"
        "spec: {clusterQueue: cq}\n",
        (("doc 1 LocalQueue/lq", "metadata.namespace", '"Team-A" is not a valid namespace'),),
    ),
    Case(
        "namespace-too-long",
        "apiVersion: kueue.x-k8s.io/v1beta2\nkind: LocalQueue\nmetadata: {name: lq, namespace: " + "n" * 64 + "}\n"
        "spec: {clusterQueue: cq}\n",
        (("doc 1 LocalQueue/lq", "metadata.namespace", "(at most 63 characters)"),),
    ),
    Case(
        "namespace-on-cluster-scoped-kind",
        cluster_queue("  stopPolicy: None\n", meta="  namespace: default\n"),
        ((CQ, "metadata.namespace", "ClusterQueue is cluster-scoped; remove metadata.namespace"),),
    ),
    # -- Jobs -------------------------------------------------------------------------------------
    Case(
        "job-restartPolicy-always",
        job(restart="Always"),
        ((JOB, "spec.template.spec.restartPolicy", '"Always" is not allowed for a Job; use Never or OnFailure'),),
    ),
    Case(
        "job-restartPolicy-unset",
        job(restart=""),
        (
            (
                JOB,
                "spec.template.spec.restartPolicy",
                "required for a Job (the Pod default, Always, is not allowed); set Never or OnFailure",
            ),
        ),
    ),
    Case(
        "indexed-without-completions",
        job(spec="  completionMode: Indexed\n"),
        ((JOB, "spec.completions", "required when completionMode is Indexed; set it"),),
    ),
    Case(
        "negative-backoffLimit",
        job(spec="  backoffLimit: -1\n"),
        ((JOB, "spec.backoffLimit", "-1 must be greater than or equal to 0"),),
    ),
    Case(
        "min-parallelism-not-a-number",
        job(meta="  annotations: {kueue.x-k8s.io/job-min-parallelism: two}\n", spec="  parallelism: 4\n"),
        (
            (
                JOB,
                "metadata.annotations[kueue.x-k8s.io/job-min-parallelism]",
                '"two" is not a positive integer',
            ),
        ),
    ),
    Case(
        "min-parallelism-not-below-parallelism",
        job(meta='  annotations: {kueue.x-k8s.io/job-min-parallelism: "4"}\n', spec="  parallelism: 4\n"),
        (
            (
                JOB,
                "metadata.annotations[kueue.x-k8s.io/job-min-parallelism]",
                "must be less than spec.parallelism (4)",
            ),
        ),
    ),
    Case(
        "extended-resource-in-requests-only",
        job(containers="      - {name: c, image: x, resources: {requests: {nvidia.com/gpu: 1}}}\n"),
        (
            (
                JOB,
                f"{CONTAINER}.resources.requests[nvidia.com/gpu]",
                "nvidia.com/gpu is an extended resource: set it in limits",
            ),
        ),
    ),
    Case(
        "request-above-limit",
        job(containers="      - {name: c, image: x, resources: {requests: {memory: 2Gi}, limits: {memory: 1Gi}}}\n"),
        ((JOB, f"{CONTAINER}.resources.requests[memory]", '"2Gi" must be less than or equal to the limit (1Gi)'),),
    ),
    Case(
        "volumeMount-to-undefined-volume",
        job(containers="      - {name: c, image: x, volumeMounts: [{name: data, mountPath: /data}]}\n"),
        (
            (
                JOB,
                f"{CONTAINER}.volumeMounts[0].name",
                'volume "data" is not defined; add it to spec.template.spec.volumes',
            ),
        ),
    ),
    Case(
        "duplicate-container-names",
        job(containers="      - {name: c, image: x}\n      - {name: c, image: y}\n"),
        ((JOB, "spec.template.spec.containers[1].name", 'duplicate container name "c"'),),
    ),
    Case(
        "empty-containers",
        job(containers="        []\n"),
        ((JOB, "spec.template.spec.containers", "must have at least 1 item, got 0"),),
    ),
    Case(
        "container-port-out-of-range",
        job(containers="      - {name: c, image: x, ports: [{containerPort: 0}]}\n"),
        ((JOB, f"{CONTAINER}.ports[0].containerPort", "0 must be greater than or equal to 1"),),
    ),
    # -- Gateway API Inference Extension ------------------------------------------------------------
    Case(
        "inferencepool-duplicate-ports",
        pool(POOL_OK.replace("[{number: 8000}]", "[{number: 8000}, {number: 8000}]")),
        (("doc 1 InferencePool/pool", "spec.targetPorts", "port numbers must be unique, got [8000, 8000]"),),
    ),
    Case(
        "inferencepool-missing-targetPorts",
        pool("  selector: {matchLabels: {app: vllm}}\n"),
        (("doc 1 InferencePool/pool", "spec.targetPorts", "required field is missing; add it"),),
    ),
    Case(
        "inferencepool-empty-selector",
        pool(POOL_OK.replace("{app: vllm}", "{}")),
        (("doc 1 InferencePool/pool", "spec.selector.matchLabels", "must have at least 1 entry, got 0"),),
    ),
    Case(
        "inferencepool-too-many-ports",
        pool(POOL_OK.replace("[{number: 8000}]", "[" + ", ".join(f"{{number: {8000 + i}}}" for i in range(9)) + "]")),
        (("doc 1 InferencePool/pool", "spec.targetPorts", "must have at most 8 items, got 9"),),
    ),
    Case(
        "inferencepool-port-out-of-range",
        pool(POOL_OK.replace("8000", "70000")),
        (("doc 1 InferencePool/pool", "spec.targetPorts[0].number", "70000 must be less than or equal to 65535"),),
    ),
    Case(
        "inferencepool-service-picker-without-port",
        pool(POOL_OK.replace(", port: {number: 9002}", "")),
        (("doc 1 InferencePool/pool", "spec.endpointPickerRef.port", "required when kind is Service"),),
    ),
    Case(
        "inferenceobjective-missing-poolRef",
        "apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceObjective\n"
        "metadata: {name: chat, namespace: default}\nspec: {priority: 1}\n",
        (("doc 1 InferenceObjective/chat", "spec.poolRef", "required field is missing; add it"),),
    ),
    # -- Workloads --------------------------------------------------------------------------------
    Case(
        "workload-duplicate-podset-names",
        workload(pod_set("main", 1) + pod_set("main", 2)),
        (("doc 1 Workload/wl", "spec.podSets[1].name", 'duplicate pod set name "main"'),),
    ),
    Case(
        "workload-minCount-above-count",
        workload(pod_set("main", 2, min_count=3)),
        (("doc 1 Workload/wl", "spec.podSets[0].minCount", "must be at most count (2)"),),
    ),
    Case(
        "workload-v1beta1-bad-priorityClassSource",
        workload(
            pod_set("main", 1), version="v1beta1", extra="  priorityClassName: high\n  priorityClassSource: kueue\n"
        ),
        (("doc 1 Workload/wl", "spec.priorityClassSource", '"kueue" is not allowed; use one of: '),),
    ),
    Case(
        "workload-no-podsets",
        workload("    []\n"),
        (("doc 1 Workload/wl", "spec.podSets", "must have at least 1 item, got 0"),),
    ),
    # -- other core kinds -------------------------------------------------------------------------
    Case(
        "configmap-key-in-data-and-binaryData",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {a: x}\nbinaryData: {a: eA==}\n",
        (("doc 1 ConfigMap/cm", "binaryData[a]", "key also appears in data; keys must be unique"),),
    ),
    Case(
        "resourceflavor-bad-taint-effect",
        "apiVersion: kueue.x-k8s.io/v1beta2\nkind: ResourceFlavor\nmetadata: {name: spot}\n"
        "spec: {nodeTaints: [{key: spot, effect: NoRun}]}\n",
        (("doc 1 ResourceFlavor/spot", "spec.nodeTaints[0].effect", '"NoRun" is not allowed; use one of: '),),
    ),
    # -- several documents, several errors ----------------------------------------------------------
    Case(
        "multi-document-doc-3-bad",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n"
        "apiVersion: kueue.x-k8s.io/v1beta2\nkind: ResourceFlavor\nmetadata: {name: default}\n---\n"
        "apiVersion: kueue.x-k8s.io/v1beta2\nkind: LocalQueue\nmetadata: {name: lq, namespace: a}\nspec: {}\n---\n"
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
        (("doc 3 LocalQueue/lq", "spec.clusterQueue", "required field is missing"),),
    ),
    Case(
        "two-bad-documents",
        cluster_queue("  stopPolicy: Stop\n") + "---\n" + job(restart="Always"),
        (
            (CQ, "spec.stopPolicy", '"Stop" is not allowed'),
            ("doc 2 Job/j", "spec.template.spec.restartPolicy", '"Always" is not allowed for a Job'),
        ),
    ),
    Case(
        "several-errors-in-one-document",
        cluster_queue(
            "  queueingStrategy: FIFO\n  cohort: team\n"
            + quotas("{name: cpu, nominalQuota: 8Gx}", "{name: memory, nominalQuta: 1Gi}", covered="[cpu, memory]")
        ),
        (
            (CQ, f"{Q}[0].nominalQuota", '"8Gx" is not a quantity'),
            (CQ, f"{Q}[1].nominalQuta", 'did you mean "nominalQuota"?'),
            (CQ, "spec.cohort", 'did you mean "cohortName"?'),
            (CQ, "spec.queueingStrategy", '"FIFO" is not allowed'),
        ),
    ),
    Case(
        "several-rule-violations-in-one-document",
        cluster_queue(
            quotas("{name: cpu, nominalQuota: -1, borrowingLimit: 2}", "{name: gpu, nominalQuota: 1}", covered="[cpu]")
            + "  preemption: {borrowWithinCohort: {policy: LowerPriority}}\n"
        ),
        (
            (CQ, f"{RG0}.flavors[0].resources", "must list exactly the coveredResources ['cpu']"),
            (CQ, f"{Q}[0].nominalQuota", '"-1" must be greater than or equal to 0'),
            (CQ, f"{Q}[0].borrowingLimit", "must be omitted when there is no cohort"),
            (CQ, "spec.preemption.borrowWithinCohort.policy", "must be Never when reclaimWithinCohort is Never"),
        ),
    ),
]


def _errors(text: str) -> ManifestErrors:
    with pytest.raises(ManifestErrors) as info:
        load_text(text, REGISTRY, source="bad.yaml")
    return info.value


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 45
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_broken_manifest_is_reported_precisely(case: Case) -> None:
    issues = _errors(case.text).issues
    assert len(issues) == len(case.expected), "\n".join(issues)
    for where, path, fragment in case.expected:
        prefix = f"bad.yaml {where}: {path}: " if path else f"bad.yaml {where}: "
        matching = [i for i in issues if i.startswith(prefix) and fragment in i[len(prefix) :]]
        assert matching, f"no issue starts with {prefix!r} and contains {fragment!r}; got:\n" + "\n".join(issues)


def test_multi_document_error_names_only_the_bad_document() -> None:
    case = next(c for c in CASES if c.id == "multi-document-doc-3-bad")
    errors = _errors(case.text)
    assert [(e.doc_index, e.kind, e.name) for e in errors.errors] == [(3, "LocalQueue", "lq")]
    assert "doc 3" in str(errors) and "doc 1" not in str(errors) and "doc 4" not in str(errors)


def test_a_bad_document_returns_nothing_from_the_good_ones() -> None:
    good = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"
    assert len(load_text(good, REGISTRY, source="good.yaml")) == 1
    with pytest.raises(ManifestErrors):
        load_text(good + "---\n" + job(restart="Always"), REGISTRY, source="bad.yaml")


def test_error_message_format_matches_the_documented_shape() -> None:
    text = cluster_queue(
        quotas("{name: cpu, nominalQuota: 8}", "{name: memory, nominalQuota: 8Gx}", covered="[cpu, memory]")
    )
    text = text.replace("name: cq", "name: cluster-queue")
    assert str(_errors(text).errors[0]).replace("bad.yaml", "cluster-queue.yml") == (
        "cluster-queue.yml doc 1 ClusterQueue/cluster-queue: "
        "spec.resourceGroups[0].flavors[0].resources[1].nominalQuota: "
        '"8Gx" is not a quantity (a quantity looks like 2, 500m, 36Gi or 1e3)'
    )


def test_errors_from_several_sources_are_all_reported() -> None:
    from flotilla.api.loader import load_sources

    with pytest.raises(ManifestErrors) as info:
        load_sources([("a.yaml", "- 1\n"), ("b.yaml", job(restart="Always"))], REGISTRY)
    assert [e.source for e in info.value.errors] == ["a.yaml", "b.yaml"]
