"""The control plane runs the driver: `flotilla queue`, `describe wl`, --queue-config, /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from flotilla.api.catalog import build_registry
from flotilla.api.loader import load_paths
from flotilla.cli import app
from flotilla.client import FlotillaClient
from flotilla.demo import demo_manifests
from flotilla.queue.driver import QueueConfigError, load_queue_config
from flotilla.server.runner import ControlPlane, free_port

from .builders import GPU, cluster_queue, flavor, job, local_queue
from .fakes import fits_by_count

JSON = dict[str, Any]
runner = CliRunner()


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    """A control plane whose queue controller is driven by the test (run_once), not by its thread."""
    p = ControlPlane(tmp_path / "data", port=free_port(), queue_policy=fits_by_count).start_in_thread()
    p.queue.stop()
    try:
        yield p
    finally:
        p.stop()


def cli(plane: ControlPlane, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--server", plane.url])
    return result.exit_code, result.stdout, result.stderr


def apply(plane: ControlPlane, *objs: JSON) -> None:
    with FlotillaClient(plane.url) as client:
        client.apply([("test", i, o) for i, o in enumerate(objs, 1)])


@pytest.mark.parametrize(
    ("args", "kind", "name", "ns", "policy", "said"),
    [
        (("hold", "cq"), "clusterqueues", "cq", None, "Hold", "clusterqueue.kueue.x-k8s.io/cq held"),
        (("hold", "cq", "cq", "--drain"), "clusterqueues", "cq", None, "HoldAndDrain", "(draining admitted workloads)"),
        (
            ("hold", "lq", "lq", "-n", "default"),
            "localqueues",
            "lq",
            "default",
            "Hold",
            "localqueue.kueue.x-k8s.io/lq held",
        ),
        (("hold", "lq/lq", "--drain"), "localqueues", "lq", "default", "HoldAndDrain", "held (draining"),
        (("resume", "cq"), "clusterqueues", "cq", None, "None", "clusterqueue.kueue.x-k8s.io/cq resumed"),
        (("resume", "lq", "lq"), "localqueues", "lq", "default", "None", "localqueue.kueue.x-k8s.io/lq resumed"),
    ],
)
def test_queue_hold_and_resume(
    plane: ControlPlane, args: tuple[str, ...], kind: str, name: str, ns: str | None, policy: str, said: str
) -> None:
    apply(plane, flavor("default-flavor").obj(), cluster_queue("cq").quota(GPU, 1).stop("Hold").obj())
    apply(plane, local_queue("lq", "cq").obj())
    code, out, err = cli(plane, "queue", *args)
    assert code == 0, err
    assert said in out
    with FlotillaClient(plane.url) as client:
        assert client.get(build_registry().resolve(kind), name, ns)["spec"]["stopPolicy"] == policy


def test_queue_hold_rejects_other_kinds(plane: ControlPlane) -> None:
    code, _, err = cli(plane, "queue", "hold", "jobs", "x")
    assert code == 1 and "Job has no stopPolicy" in err


def test_describe_workload_explains_the_wait(plane: ControlPlane) -> None:
    apply(plane, flavor("default-flavor").obj(), cluster_queue("cq").quota(GPU, 1).obj(), local_queue("lq", "cq").obj())
    apply(plane, *(job(n).queue("lq").gpus(1).obj() for n in ("a", "b", "c")))
    plane.queue.run_once()
    with FlotillaClient(plane.url) as client:
        wls = {
            w["metadata"]["ownerReferences"][0]["name"]: w for w in client.list(build_registry().resolve("wl"))["items"]
        }
    admitted = next(n for n, w in wls.items() if w["status"].get("admission"))
    waiting = sorted(n for n in wls if n != admitted)
    code, out, err = cli(plane, "describe", "wl", wls[waiting[0]]["metadata"]["name"])
    assert code == 0, err
    assert "Queueing:" in out
    assert "Queue:        LocalQueue lq -> ClusterQueue cq" in out
    assert "Waiting:      Pending: couldn't assign flavors to pod set main: insufficient quota" in out
    assert "Position:     1 of 2 pending in ClusterQueue cq (1 of 2 in LocalQueue lq)" in out
    assert "nvidia.com/gpu (default-flavor): 1 / 1" in out
    code, out, _ = cli(plane, "describe", "wl", wls[admitted]["metadata"]["name"])
    assert "Reserved in:  ClusterQueue cq" in out and "Position:" not in out


def test_bad_queue_config_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "queue.yaml"
    bad.write_text("waitForPodsReady:\n  enable: true\n  timeout: -5\nmanageJobsWithoutQueueNam: true\n")
    with pytest.raises(QueueConfigError) as info:
        load_queue_config(bad)
    message = str(info.value)
    assert f"{bad}: waitForPodsReady.timeout: -5 must be greater than 0" in message
    typo = 'manageJobsWithoutQueueNam: unknown field "manageJobsWithoutQueueNam"'
    assert f'{bad}: {typo}; did you mean "manageJobsWithoutQueueName"?' in message
    result = runner.invoke(app, ["up", "--queue-config", str(bad), "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 2
    assert "invalid queue config" in result.stderr and "waitForPodsReady.timeout" in result.stderr


@pytest.mark.parametrize(
    ("text", "check"),
    [
        ("", lambda c: c.waitForPodsReady.enable is False),
        ("waitForPodsReady: {enable: true, timeout: 5m}\n", lambda c: c.waitForPodsReady.timeout == 300),
        (
            "admissionFairSharing: {usageHalfLifeTime: 1h30m, usageSamplingInterval: 90s}\n",
            lambda c: (
                (c.admissionFairSharing.usageHalfLifeTime, c.admissionFairSharing.usageSamplingInterval) == (5400, 90)
            ),
        ),
        ("manageJobsWithoutQueueName: true\n", lambda c: c.manageJobsWithoutQueueName),
    ],
)
def test_good_queue_configs(tmp_path: Path, text: str, check: Any) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(text)
    assert check(load_queue_config(path))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- a list\n", "expected a mapping of QueueConfig fields, got list"),
        ("waitForPodsReady: {timeout: soon}\n", 'waitForPodsReady.timeout: expected a number, got "soon"'),
        ("a: [\n", "malformed YAML at line"),
    ],
)
def test_bad_queue_configs(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(text)
    with pytest.raises(QueueConfigError, match=str(path)) as info:
        load_queue_config(path)
    assert fragment in str(info.value)


def test_missing_queue_config_file(tmp_path: Path) -> None:
    with pytest.raises(QueueConfigError, match="cannot read the queue config"):
        load_queue_config(tmp_path / "nope.yaml")


def test_demo_jobs_get_workloads_through_the_running_control_plane(tmp_path: Path) -> None:
    """End to end: `flotilla up`'s ControlPlane with the real policy; demo manifests over HTTP."""
    pytest.importorskip("flotilla.queue.cycle", reason="the admission policy (flotilla.queue.cycle) is not there yet")
    registry = build_registry()
    plane = ControlPlane(tmp_path / "data", port=free_port()).start_in_thread()
    try:
        with FlotillaClient(plane.url) as client:
            docs = [(o.source, o.doc_index, o.to_dict()) for o in load_paths([demo_manifests()], registry)]
            client.apply(docs)
            wl_kind = registry.resolve("workloads")
            seen: dict[str, JSON] = {}
            # Event-driven wait: the watch stream delivers the controller's writes as they happen.
            for event in client.watch(wl_kind, "whisper", timeout_seconds=30):
                wl = event["object"]
                if any(c["type"] == "QuotaReserved" for c in (wl.get("status") or {}).get("conditions") or []):
                    seen[wl["metadata"]["ownerReferences"][0]["name"]] = wl
                if len(seen) == 4:
                    break
            jobs = {j["metadata"]["name"]: j for j in client.list(registry.resolve("jobs"), "whisper")["items"]}
        assert set(seen) == set(jobs)
        for name, wl in seen.items():
            assert wl["spec"]["queueName"] == jobs[name]["metadata"]["labels"]["kueue.x-k8s.io/queue-name"]
            assert wl["spec"]["podSets"][0]["count"] == 1
        text = httpx.get(f"{plane.url}/metrics").text
        assert 'kueue_cluster_queue_nominal_quota{cluster_queue="cluster-queue",cohort="",flavor="gpu-flavor"' in text
        assert "kueue_pending_workloads" in text
    finally:
        plane.stop()
