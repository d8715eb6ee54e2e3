"""The health monitor over a real store: what it writes, when it writes nothing, Conflict retries,
node checks, and the background thread."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from flotilla.telemetry import GPUReadings, HealthConfig, HealthConfigError
from flotilla.telemetry.monitor import NODE_LABEL, HealthMonitor, NodeVerdictChange

from .builders import Env, gpu, node

REMAPPED = "remapped: row remapping failure on GPU-0 (uncorrectable rows 1)"


def rv(env: Env, name: str) -> str:
    return str(env.get(name)["metadata"]["resourceVersion"])


def test_writes_health_and_label_once_then_nothing(env: Env) -> None:
    env.add(node("n1", gpu(0, "remapped-rows"), gpu(1)))
    monitor = HealthMonitor(env.service)
    changes = monitor.run_once()
    assert [(c.node, c.previous, c.verdict) for c in changes] == [("n1", None, "EVICT")]
    assert [(g.index, g.previous, g.verdict, g.message) for g in changes[0].gpus] == [
        (0, None, "EVICT", REMAPPED),
        (1, None, "PASS", None),
    ]
    assert [g.uuid for g in changes[0].turned_unusable] == ["GPU-0"]
    assert (env.gpu("n1", 0)["health"], env.gpu("n1", 0)["healthMessage"]) == ("EVICT", REMAPPED)
    assert env.gpu("n1", 1)["health"] == "PASS" and "healthMessage" not in env.gpu("n1", 1)
    assert env.gpu("n1", 0)["faults"] == ["remapped-rows"]  # the monitor leaves faults alone
    assert env.label("n1") == "EVICT"
    before = rv(env, "n1")
    assert monitor.run_once() == []
    assert rv(env, "n1") == before  # nothing written


def test_clearing_a_fault_brings_the_gpu_back_and_message_goes(env: Env) -> None:
    env.add(node("n1", gpu(0, "xid")))
    monitor = HealthMonitor(env.service)
    monitor.run_once()
    env.set_faults("n1", 0)
    (change,) = monitor.run_once()
    assert (change.previous, change.verdict) == ("EVICT", "PASS")
    assert [(g.previous, g.verdict) for g in change.gpus] == [("EVICT", "PASS")]
    assert change.turned_unusable == ()
    assert env.gpu("n1", 0)["health"] == "PASS" and "healthMessage" not in env.gpu("n1", 0)
    assert env.label("n1") == "PASS"


@pytest.mark.parametrize(
    ("fault", "verdict"),
    [(None, "PASS"), ("remapped-rows", "EVICT"), ("pcie-degraded", "WARN"), ("xid", "EVICT"), ("offline", "ERR")],
)
def test_emulated_fault_to_node_label(env: Env, fault: str | None, verdict: str) -> None:
    env.add(node("n1", gpu(0, *([fault] if fault else [])), gpu(1)))
    HealthMonitor(env.service).run_once()
    assert env.gpu("n1", 0)["health"] == verdict and env.label("n1") == verdict


def test_nodes_without_gpus_are_left_alone(env: Env) -> None:
    env.add({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cpu-only"}})
    env.add(node("n1", gpu(0)))
    monitor = HealthMonitor(env.service)
    assert [c.node for c in monitor.run_once()] == ["n1"]
    assert env.label("cpu-only") is None
    assert [n.node for n in monitor.snapshot] == ["n1"]


@pytest.mark.parametrize("race_on", ["update_status", "update"])
def test_conflict_reads_again_and_reapplies(env: Env, race_on: str) -> None:
    env.add(node("n1", gpu(0), gpu(1)))
    monitor = HealthMonitor(env.service)
    raced = []

    def someone_injects_a_fault() -> None:  # between the monitor's read and its write
        env.set_faults("n1", 1, "pcie-degraded")
        raced.append(True)

    env.service.race, env.service.race_on = someone_injects_a_fault, race_on
    (change,) = monitor.run_once()
    assert raced == [True]
    assert change.verdict == "PASS" and env.label("n1") == "PASS"  # the verdicts this pass read
    assert env.gpu("n1", 1)["faults"] == ["pcie-degraded"]  # the other writer's change survives
    assert [g["health"] for g in env.get("n1")["status"]["gpus"]] == ["PASS", "PASS"]
    (change,) = monitor.run_once()  # the next pass sees the fault
    assert change.verdict == "WARN" and env.gpu("n1", 1)["health"] == "WARN"


def test_ping_is_a_node_check(env: Env) -> None:
    env.add(node("n1", gpu(0)))
    answers: list[float | None] = [None, 0.001]
    probes: list[tuple[str, int, float]] = []

    def ping(host: str, port: int, timeout: float) -> float | None:
        probes.append((host, port, timeout))
        return answers.pop(0)

    monitor = HealthMonitor(env.service, ping_target=("127.0.0.1", 8470), ping=ping)
    (change,) = monitor.run_once()
    assert change.verdict == "ERR" and env.label("n1") == "ERR"
    assert env.gpu("n1", 0)["health"] == "PASS"  # the GPU is fine; the node is not
    assert monitor.snapshot[0].node_results[0].message == "ping: no answer from 127.0.0.1:8470 on node n1"
    (change,) = monitor.run_once()
    assert (change.previous, change.verdict, change.gpus) == ("ERR", "PASS", ())
    assert probes == [("127.0.0.1", 8470, 1.0)] * 2


def test_busy_fraction_and_readers_are_injected(env: Env) -> None:
    env.add(node("n1", gpu(0), gpu(1, uuid="GPU-real", emulated=False)))
    made: list[str] = []

    class Fixed:
        def read(self, g: Any, busy: float) -> GPUReadings:
            return GPUReadings(uuid=g["uuid"], reachable=True, utilization_pct=busy * 100)

    def readers(g: Any) -> Fixed:
        made.append(g["uuid"])
        return Fixed()

    monitor = HealthMonitor(env.service, readers=readers, busy=lambda n, u: 0.25 if u == "GPU-0" else 1.0)
    monitor.run_once()
    monitor.run_once()
    assert made == ["GPU-0", "GPU-real"]  # one reader per GPU, kept between passes
    assert [g.readings.utilization_pct for g in monitor.snapshot[0].gpus] == [25.0, 100.0]


def test_a_reader_that_fails_makes_the_gpu_unreachable(env: Env) -> None:
    env.add(node("n1", gpu(0)))

    class Broken:
        def read(self, g: Any, busy: float) -> GPUReadings:
            raise RuntimeError("boom")

    HealthMonitor(env.service, readers=lambda g: Broken()).run_once()
    assert env.gpu("n1", 0)["health"] == "ERR"


def test_config_is_validated_and_checks_can_be_disabled(env: Env) -> None:
    with pytest.raises(HealthConfigError):
        HealthMonitor(env.service, HealthConfig(checks=("nope",)))
    env.add(node("n1", gpu(0, "pcie-degraded")))
    HealthMonitor(env.service, HealthConfig(checks=("reachable", "xid"))).run_once()
    assert env.label("n1") == "PASS"


def test_background_passes_and_trigger(env: Env) -> None:
    env.add(node("n1", gpu(0)))
    seen: list[list[NodeVerdictChange]] = []
    passed = threading.Event()

    def on_change(changes: list[NodeVerdictChange]) -> None:
        seen.append(changes)
        passed.set()

    monitor = HealthMonitor(env.service, HealthConfig(interval=3600), on_change=on_change).start()
    try:
        assert passed.wait(10), "the first pass runs at start"
        passed.clear()
        env.set_faults("n1", 0, "offline")
        monitor.trigger()  # not an hour later
        assert passed.wait(10)
    finally:
        monitor.stop()
    assert [c[0].verdict for c in seen] == ["PASS", "ERR"]
    assert env.get("n1")["metadata"]["labels"][NODE_LABEL] == "ERR"
    assert monitor.last_pass_at is not None
