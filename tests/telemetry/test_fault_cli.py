"""`flotilla fault inject|clear|list` against a live control plane on loopback."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from flotilla.api.catalog import build_registry
from flotilla.cli import fault
from flotilla.client import FlotillaClient
from flotilla.server.runner import ControlPlane

from .builders import gpu, node

runner = CliRunner()
NODES = build_registry().resolve("nodes")
cli_app = typer.Typer()
cli_app.add_typer(fault.app)  # as flotilla.cli registers it


def cli(plane: ControlPlane, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli_app, ["fault", *args, "--server", plane.url])
    return result.exit_code, result.stdout, result.stderr


def faults(client: FlotillaClient, name: str) -> list[list[str]]:
    return [g.get("faults") or [] for g in client.get(NODES, name)["status"]["gpus"]]


def test_inject_clear_list_round_trip(control_plane: ControlPlane, client: FlotillaClient) -> None:
    client.create(NODES, node("n1", gpu(0), gpu(1, uuid="GPU-bbb")))
    code, out, err = cli(control_plane, "inject", "n1/0", "remapped-rows")
    assert code == 0, err
    assert out.strip() == "n1/0 (GPU-0): fault remapped-rows injected"
    code, out, _ = cli(control_plane, "inject", "n1/GPU-bbb", "xid")
    assert code == 0 and "n1/1 (GPU-bbb): fault xid injected" in out
    assert faults(client, "n1") == [["remapped-rows"], ["xid"]]

    code, out, _ = cli(control_plane, "inject", "n1/0", "remapped-rows")
    assert code == 0 and "already has fault remapped-rows" in out
    code, out, _ = cli(control_plane, "inject", "n1", "offline")  # every GPU of the node
    assert code == 0 and out.count("fault offline injected") == 2
    assert faults(client, "n1") == [["remapped-rows", "offline"], ["xid", "offline"]]

    code, out, _ = cli(control_plane, "list")
    lines = out.splitlines()
    assert lines[0].split() == ["NODE", "GPU", "UUID", "EMULATED", "FAULTS", "HEALTH", "MESSAGE"]
    assert lines[1].split() == ["n1", "0", "GPU-0", "yes", "remapped-rows,offline", "<unknown>"]
    assert lines[2].split()[:5] == ["n1", "1", "GPU-bbb", "yes", "xid,offline"]

    code, out, _ = cli(control_plane, "clear", "n1", "offline")
    assert code == 0 and out.count("fault offline cleared") == 2
    code, out, _ = cli(control_plane, "clear", "n1/0")
    assert code == 0 and "n1/0 (GPU-0): fault remapped-rows cleared" in out
    assert faults(client, "n1") == [[], ["xid"]]
    code, out, _ = cli(control_plane, "clear", "n1/0")
    assert code == 0 and "n1/0: no faults to clear" in out
    code, out, _ = cli(control_plane, "list", "n1")
    assert "<none>" in out.splitlines()[1]


def test_refuses_real_gpus_and_touches_nothing(control_plane: ControlPlane, client: FlotillaClient) -> None:
    client.create(NODES, node("mixed", gpu(0), gpu(1, uuid="GPU-real", emulated=False)))
    before = client.get(NODES, "mixed")["metadata"]["resourceVersion"]
    code, _, err = cli(control_plane, "inject", "mixed/1", "xid")
    assert code == 1
    assert "refusing to touch real GPU(s) mixed/1 (GPU-real)" in err and "only be injected into emulated GPUs" in err
    code, _, err = cli(control_plane, "inject", "mixed", "xid")
    assert code == 1 and "name an emulated GPU as NODE/GPU" in err
    assert client.get(NODES, "mixed")["metadata"]["resourceVersion"] == before
    code, _, _ = cli(control_plane, "inject", "mixed/0", "xid")
    assert code == 0 and faults(client, "mixed") == [["xid"], []]


def test_clear_errors(control_plane: ControlPlane, client: FlotillaClient) -> None:
    client.create(NODES, node("n1", gpu(0)))
    code, _, err = cli(control_plane, "inject", "n1/0", "meltdown")
    assert code == 1 and 'unknown fault "meltdown"; use one of: remapped-rows, pcie-degraded, xid, offline' in err
    code, _, err = cli(control_plane, "inject", "n1/7", "xid")
    assert code == 1 and 'node n1 has no GPU "7"; its GPUs: 0 (GPU-0)' in err
    code, _, err = cli(control_plane, "inject", "ghost/0", "xid")
    assert code == 1 and "ghost" in err and "not found" in err
    client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cpu-only"}})
    code, _, err = cli(control_plane, "inject", "cpu-only", "xid")
    assert code == 1 and "node cpu-only has no GPUs in status.gpus" in err


def test_server_down_is_a_clear_error() -> None:
    result = runner.invoke(cli_app, ["fault", "list", "--server", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "no Flotilla control plane answers at http://127.0.0.1:9" in result.stderr


def test_injected_fault_reaches_the_node_label(control_plane: ControlPlane, client: FlotillaClient) -> None:
    from flotilla.telemetry.monitor import NODE_LABEL, HealthMonitor

    client.create(NODES, node("n1", gpu(0), gpu(1)))
    monitor = HealthMonitor(control_plane.service, ping_target=("127.0.0.1", control_plane.port))
    monitor.run_once()
    assert client.get(NODES, "n1")["metadata"]["labels"][NODE_LABEL] == "PASS"  # ping to the API port answers
    assert cli(control_plane, "inject", "n1/1", "pcie-degraded")[0] == 0
    (change,) = monitor.run_once()
    assert change.verdict == "WARN" and [g.index for g in change.gpus] == [1]
    code, out, _ = cli(control_plane, "list", "n1")
    assert code == 0 and "WARN" in out.splitlines()[2] and "pciebw: link gen 3 of 4, width x8 of x16 on GPU-1" in out
