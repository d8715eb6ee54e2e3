"""The control plane's HTTP API, over real HTTP on loopback."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

import httpx
import pytest

from flotilla.server.runner import DEFAULT_HOST, ControlPlane
from tests.builders import cluster_queue, job, local_queue, namespace, resource_flavor

KUEUE = "/apis/kueue.x-k8s.io/v1beta2"
KUEUE_V1B1 = "/apis/kueue.x-k8s.io/v1beta1"


@pytest.fixture
def http(control_plane: ControlPlane) -> Any:
    with httpx.Client(base_url=control_plane.url, timeout=10) as c:
        yield c


def status_of(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert body["kind"] == "Status" and body["status"] == "Failure" and body["code"] == r.status_code
    return body


def test_binds_loopback_by_default() -> None:
    assert DEFAULT_HOST == "127.0.0.1"
    assert ControlPlane.__dataclass_fields__["host"].default == "127.0.0.1"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/livez"])
def test_health_endpoints(http: httpx.Client, path: str) -> None:
    r = http.get(path)
    assert (r.status_code, r.text) == (200, "ok")


def test_metrics_are_prometheus_text(http: httpx.Client) -> None:
    http.post(f"{KUEUE}/clusterqueues", json=cluster_queue("cq").quota("cpu", 1).obj())
    r = http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert 'flotilla_apiserver_request_total{code="201",resource="clusterqueues",verb="post"} 1.0' in r.text
    assert "flotilla_apiserver_request_duration_seconds_bucket" in r.text
    assert 'flotilla_store_objects{resource="clusterqueues.kueue.x-k8s.io"} 1.0' in r.text


def test_openapi_document_lists_resource_paths(http: httpx.Client) -> None:
    doc = http.get("/openapi.json").json()
    assert doc["info"]["title"] == "Flotilla control plane"
    for path in (
        "/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}",
        "/apis/{group}/{version}/{plural}/{name}/status",
        "/api/{version}/{plural}",
        "/apis/flotilla.dev/v1/apply",
    ):
        assert path in doc["paths"], path


def test_discovery(http: httpx.Client) -> None:
    groups = {g["name"]: g for g in http.get("/apis").json()["groups"]}
    kueue = groups["kueue.x-k8s.io"]
    assert kueue["preferredVersion"]["version"] == "v1beta2"
    assert {v["version"] for v in kueue["versions"]} == {"v1beta2", "v1beta1"}
    assert "inference.networking.k8s.io" in groups
    core = {r["name"]: r for r in http.get("/api/v1").json()["resources"]}
    assert core["namespaces"]["namespaced"] is False and core["configmaps"]["namespaced"] is True
    kq = {r["name"]: r for r in http.get(f"{KUEUE}").json()["resources"]}
    assert kq["clusterqueues"]["shortNames"] == ["cq"] and "watch" in kq["workloads"]["verbs"]
    assert status_of(http.get("/apis/kueue.x-k8s.io/v9"))["reason"] == "NotFound"


def test_create_fills_kueue_defaults_and_serves_both_versions(http: httpx.Client) -> None:
    r = http.post(f"{KUEUE}/clusterqueues", json=cluster_queue("cq").quota("nvidia.com/gpu", 8).cohort("all").obj())
    assert r.status_code == 201
    created = r.json()
    assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
    assert created["spec"]["queueingStrategy"] == "BestEffortFIFO"
    assert created["spec"]["preemption"]["withinClusterQueue"] == "Never"
    v1b1 = http.get(f"{KUEUE_V1B1}/clusterqueues/cq").json()
    assert v1b1["apiVersion"] == "kueue.x-k8s.io/v1beta1"
    assert v1b1["spec"]["cohort"] == "all" and "cohortName" not in v1b1["spec"]


def test_v1beta1_body_is_converted(http: httpx.Client) -> None:
    body = {
        "apiVersion": "kueue.x-k8s.io/v1beta1",
        "kind": "ClusterQueue",
        "metadata": {"name": "old"},
        "spec": {"cohort": "team", "flavorFungibility": {"whenCanBorrow": "Borrow"}},
    }
    assert http.post(f"{KUEUE_V1B1}/clusterqueues", json=body).status_code == 201
    spec = http.get(f"{KUEUE}/clusterqueues/old").json()["spec"]
    assert spec["cohortName"] == "team"
    assert spec["flavorFungibility"]["whenCanBorrow"] == "MayStopSearch"


def test_errors_are_kubernetes_status_objects(http: httpx.Client) -> None:
    cq = cluster_queue("cq").quota("cpu", 4).obj()
    assert http.post(f"{KUEUE}/clusterqueues", json=cq).status_code == 201
    dup = status_of(http.post(f"{KUEUE}/clusterqueues", json=cq))
    assert (dup["code"], dup["reason"]) == (409, "AlreadyExists")
    missing = status_of(http.get(f"{KUEUE}/clusterqueues/nope"))
    assert (missing["code"], missing["reason"]) == (404, "NotFound")
    bad = cluster_queue("bad").obj()
    bad["spec"]["queueingStrategy"] = "Fastest"
    invalid = status_of(http.post(f"{KUEUE}/clusterqueues", json=bad))
    assert (invalid["code"], invalid["reason"]) == (422, "Invalid")
    assert invalid["details"]["causes"][0]["field"] == "spec.queueingStrategy"
    malformed = status_of(
        http.post(f"{KUEUE}/clusterqueues", content=b"{not json", headers={"content-type": "application/json"})
    )
    assert (malformed["code"], malformed["reason"]) == (400, "BadRequest")
    assert status_of(http.get("/apis/kueue.x-k8s.io/v1beta2/widgets"))["code"] == 404
    assert status_of(http.get("/apis/kueue.x-k8s.io/v1alpha9/clusterqueues"))["code"] == 404


def test_unknown_field_error_names_the_path(http: httpx.Client) -> None:
    body = cluster_queue("cq").quota("cpu", 4).obj()
    body["spec"]["resourceGroups"][0]["flavors"][0]["resources"][0]["nominalQuta"] = 1
    causes = status_of(http.post(f"{KUEUE}/clusterqueues", json=body))["details"]["causes"]
    fields = {c["field"]: c["message"] for c in causes}
    path = "spec.resourceGroups[0].flavors[0].resources[0].nominalQuta"
    assert 'did you mean "nominalQuota"' in fields[path]


def test_update_with_stale_resource_version_conflicts(http: httpx.Client) -> None:
    created = http.post(f"{KUEUE}/clusterqueues", json=cluster_queue("cq").quota("cpu", 4).obj()).json()
    first = dict(created, spec={**created["spec"], "stopPolicy": "Hold"})
    assert http.put(f"{KUEUE}/clusterqueues/cq", json=first).status_code == 200
    stale = dict(created, spec={**created["spec"], "stopPolicy": "HoldAndDrain"})
    conflict = status_of(http.put(f"{KUEUE}/clusterqueues/cq", json=stale))
    assert (conflict["code"], conflict["reason"]) == (409, "Conflict")
    assert http.get(f"{KUEUE}/clusterqueues/cq").json()["spec"]["stopPolicy"] == "Hold"


def test_status_subresource(http: httpx.Client) -> None:
    created = http.post(f"{KUEUE}/clusterqueues", json=cluster_queue("cq").quota("cpu", 4).obj()).json()
    with_status = dict(created, status={"pendingWorkloads": 3})
    r = http.put(f"{KUEUE}/clusterqueues/cq/status", json=with_status)
    assert r.status_code == 200 and r.json()["status"]["pendingWorkloads"] == 3
    assert r.json()["metadata"]["generation"] == created["metadata"]["generation"]
    # A main-resource update never changes status.
    current = r.json()
    r2 = http.put(f"{KUEUE}/clusterqueues/cq", json=dict(current, status={"pendingWorkloads": 99}))
    assert r2.json()["status"]["pendingWorkloads"] == 3
    assert http.get(f"{KUEUE}/clusterqueues/cq/status").json()["status"]["pendingWorkloads"] == 3


def test_merge_patch_and_invalid_patch_leaves_state(http: httpx.Client) -> None:
    http.post(f"{KUEUE}/clusterqueues", json=cluster_queue("cq").quota("cpu", 4).obj())
    merge = {"content-type": "application/merge-patch+json"}
    r = http.patch(f"{KUEUE}/clusterqueues/cq", content=b'{"metadata":{"labels":{"team":"a"}}}', headers=merge)
    assert r.status_code == 200 and r.json()["metadata"]["labels"] == {"team": "a"}
    before = http.get(f"{KUEUE}/clusterqueues/cq").json()
    quota = {"name": "cpu", "nominalQuota": "-1"}
    bad = json.dumps(
        {"spec": {"resourceGroups": [{"coveredResources": ["cpu"], "flavors": [{"name": "f", "resources": [quota]}]}]}}
    ).encode()
    assert status_of(http.patch(f"{KUEUE}/clusterqueues/cq", content=bad, headers=merge))["code"] == 422
    assert http.get(f"{KUEUE}/clusterqueues/cq").json() == before


def test_delete(http: httpx.Client) -> None:
    http.post(f"{KUEUE}/resourceflavors", json=resource_flavor("rf").obj())
    assert http.delete(f"{KUEUE}/resourceflavors/rf").status_code == 200
    assert http.get(f"{KUEUE}/resourceflavors/rf").status_code == 404


def test_finalizers_delay_deletion(http: httpx.Client) -> None:
    rf = resource_flavor("rf").obj()
    rf["metadata"]["finalizers"] = ["example.com/hold"]
    http.post(f"{KUEUE}/resourceflavors", json=rf)
    deleting = http.delete(f"{KUEUE}/resourceflavors/rf").json()
    assert deleting["metadata"]["deletionTimestamp"]
    assert http.get(f"{KUEUE}/resourceflavors/rf").status_code == 200
    merge = {"content-type": "application/merge-patch+json"}
    http.patch(f"{KUEUE}/resourceflavors/rf", content=b'{"metadata":{"finalizers":null}}', headers=merge)
    assert http.get(f"{KUEUE}/resourceflavors/rf").status_code == 404


def test_namespaced_objects_need_their_namespace(http: httpx.Client) -> None:
    lq = local_queue("lq", "cq", namespace="team-a").obj()
    r = http.post(f"{KUEUE}/namespaces/team-a/localqueues", json=lq)
    assert r.status_code == 404 and 'namespace "team-a" not found' in r.json()["message"]
    http.post("/api/v1/namespaces", json=namespace("team-a").obj())
    assert http.post(f"{KUEUE}/namespaces/team-a/localqueues", json=lq).status_code == 201
    mismatch = status_of(http.post(f"{KUEUE}/namespaces/default/localqueues", json=lq))
    assert mismatch["code"] == 400 and "does not match" in mismatch["message"]
    # Cluster-scoped kinds are not addressed under a namespace, and vice versa.
    assert http.get(f"{KUEUE}/namespaces/team-a/clusterqueues/x").status_code == 404
    assert http.get(f"{KUEUE}/localqueues/lq").status_code == 404


def test_deleting_a_namespace_deletes_its_objects(http: httpx.Client) -> None:
    http.post("/api/v1/namespaces", json=namespace("team-a").obj())
    http.post(f"{KUEUE}/namespaces/team-a/localqueues", json=local_queue("lq", "cq", "team-a").obj())
    assert http.delete("/api/v1/namespaces/team-a").status_code == 200
    assert http.get(f"{KUEUE}/namespaces/team-a/localqueues/lq").status_code == 404


def test_list_with_label_selector_and_all_namespaces(http: httpx.Client) -> None:
    http.post("/api/v1/namespaces", json=namespace("b").obj())
    http.post("/apis/batch/v1/namespaces/default/jobs", json=job("a1").label("app", "asr").obj())
    http.post("/apis/batch/v1/namespaces/default/jobs", json=job("a2").label("app", "llm").obj())
    http.post("/apis/batch/v1/namespaces/b/jobs", json=job("b1", "b").label("app", "asr").obj())
    everything = http.get("/apis/batch/v1/jobs").json()
    assert everything["kind"] == "JobList" and len(everything["items"]) == 3
    asr = http.get("/apis/batch/v1/jobs", params={"labelSelector": "app=asr"}).json()["items"]
    assert sorted(o["metadata"]["name"] for o in asr) == ["a1", "b1"]
    in_default = http.get("/apis/batch/v1/namespaces/default/jobs", params={"labelSelector": "app!=asr"}).json()
    assert [o["metadata"]["name"] for o in in_default["items"]] == ["a2"]
    assert status_of(http.get("/apis/batch/v1/jobs", params={"labelSelector": "app in (a"}))["code"] == 400


def test_secret_string_data_is_folded_into_data(http: httpx.Client) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tok"}, "stringData": {"token": "s3cret"}}
    created = http.post("/api/v1/namespaces/default/secrets", json=secret).json()
    assert "stringData" not in created
    assert base64.b64decode(created["data"]["token"]) == b"s3cret"


def apply_docs(http: httpx.Client, *objs: dict[str, Any]) -> httpx.Response:
    items = [{"source": "test.yaml", "index": i + 1, "object": o} for i, o in enumerate(objs)]
    return http.post("/apis/flotilla.dev/v1/apply", json={"items": items})


def test_apply_is_idempotent_and_reports_actions(http: httpx.Client) -> None:
    docs = [
        local_queue("lq", "cq").obj(),  # out of order on purpose: apply sorts by dependency
        cluster_queue("cq").quota("cpu", 4).obj(),
        resource_flavor("default-flavor").obj(),
    ]
    first = apply_docs(http, *docs).json()["items"]
    assert [(i["kind"], i["action"]) for i in first] == [
        ("ResourceFlavor", "created"),
        ("ClusterQueue", "created"),
        ("LocalQueue", "created"),
    ]
    again = apply_docs(http, *docs).json()["items"]
    assert {i["action"] for i in again} == {"unchanged"}
    assert [i["resourceVersion"] for i in again] == [i["resourceVersion"] for i in first]
    docs[1] = cluster_queue("cq").quota("cpu", 8).obj()
    third = {i["kind"]: i["action"] for i in apply_docs(http, *docs).json()["items"]}
    assert third == {"ResourceFlavor": "unchanged", "ClusterQueue": "configured", "LocalQueue": "unchanged"}


def test_apply_stores_nothing_when_any_document_is_invalid(http: httpx.Client) -> None:
    bad = cluster_queue("cq").quota("cpu", "8Gx").obj()
    r = apply_docs(http, resource_flavor("rf").obj(), bad)
    st = status_of(r)
    assert st["code"] == 422
    assert (
        "test.yaml doc 2 ClusterQueue/cq: "
        'spec.resourceGroups[0].flavors[0].resources[0].nominalQuota: "8Gx" is not a quantity' in st["message"]
    )
    assert http.get(f"{KUEUE}/resourceflavors").json()["items"] == []
    # A missing namespace also stops the whole apply.
    r = apply_docs(http, resource_flavor("rf").obj(), local_queue("lq", "cq", "nowhere").obj())
    assert r.status_code == 404 and http.get(f"{KUEUE}/resourceflavors").json()["items"] == []


def _collect(url: str, params: dict[str, str], n: int, out: list[dict[str, Any]], ready: threading.Event) -> None:
    with httpx.Client(timeout=20) as c, c.stream("GET", url, params=params) as r:
        ready.set()
        for line in r.iter_lines():
            if line.strip():
                out.append(httpx.Response(200, content=line).json())
                if len(out) >= n:
                    return


def test_watch_replays_then_streams(control_plane: ControlPlane, http: httpx.Client) -> None:
    http.post(f"{KUEUE}/resourceflavors", json=resource_flavor("existing").obj())
    events: list[dict[str, Any]] = []
    ready = threading.Event()
    t = threading.Thread(
        target=_collect,
        args=(
            f"{control_plane.url}{KUEUE}/resourceflavors",
            {"watch": "true", "timeoutSeconds": "15"},
            4,
            events,
            ready,
        ),
    )
    t.start()
    ready.wait(10)
    http.post(f"{KUEUE}/resourceflavors", json=resource_flavor("new").label("a", "b").obj())
    merge = {"content-type": "application/merge-patch+json"}
    http.patch(f"{KUEUE}/resourceflavors/new", content=b'{"metadata":{"labels":{"a":"c"}}}', headers=merge)
    http.delete(f"{KUEUE}/resourceflavors/new")
    t.join(20)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "existing"),
        ("ADDED", "new"),
        ("MODIFIED", "new"),
        ("DELETED", "new"),
    ]
    assert events[2]["object"]["metadata"]["labels"] == {"a": "c"}


def test_watch_from_resource_version(control_plane: ControlPlane, http: httpx.Client) -> None:
    rv = http.post(f"{KUEUE}/resourceflavors", json=resource_flavor("one").obj()).json()["metadata"]["resourceVersion"]
    http.post(f"{KUEUE}/resourceflavors", json=resource_flavor("two").obj())
    events: list[dict[str, Any]] = []
    _collect(
        f"{control_plane.url}{KUEUE_V1B1}/resourceflavors",
        {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "5"},
        1,
        events,
        threading.Event(),
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "two")]
    assert events[0]["object"]["apiVersion"] == "kueue.x-k8s.io/v1beta1"


def test_watch_keeps_up_with_a_burst_in_order(control_plane: ControlPlane, http: httpx.Client) -> None:
    """Events that are already there go out together (one chunk per batch), in revision order."""
    rv = http.get(f"{KUEUE}/resourceflavors").json()["metadata"]["resourceVersion"]
    names = [f"rf-{i:03d}" for i in range(120)]
    for name in names:
        http.post(f"{KUEUE}/resourceflavors", json=resource_flavor(name).obj())
    events: list[dict[str, Any]] = []
    _collect(
        f"{control_plane.url}{KUEUE}/resourceflavors",
        {"watch": "true", "resourceVersion": rv, "timeoutSeconds": "10"},
        len(names),
        events,
        threading.Event(),
    )
    assert [e["object"]["metadata"]["name"] for e in events] == names
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions)
