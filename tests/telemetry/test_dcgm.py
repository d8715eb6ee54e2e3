"""The metrics exposition: dcgm-exporter's names and labels, Autopilot's gauge, Flotilla's health state."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from flotilla.telemetry.dcgm import DCGM_FIELDS, GPUMetricsCollector, describe_names
from flotilla.telemetry.monitor import HealthMonitor

from .builders import Env, gpu, node

A100 = "NVIDIA A100-SXM4-40GB"


def exposition(monitor: HealthMonitor) -> str:
    registry = CollectorRegistry()
    registry.register(monitor.collector(cpu_model="Xeon"))
    return generate_latest(registry).decode()


def dcgm_labels(index: int, node_name: str = "n1") -> str:
    return f'Hostname="{node_name}",UUID="GPU-{index}",device="nvidia{index}",gpu="{index}",modelName="{A100}"'


def test_exposition_has_dcgm_and_autopilot_names(env: Env) -> None:
    env.add(node("n1", gpu(0, "remapped-rows", "xid"), gpu(1), gpu(2, "offline")))
    monitor = HealthMonitor(env.service, busy=lambda n, u: 0.5, ping_target=("127.0.0.1", 1), ping=lambda h, p, t: None)
    monitor.run_once()
    text = exposition(monitor)
    for name in describe_names():
        assert f"# TYPE {name} gauge" in text, name
    assert f"DCGM_FI_DEV_XID_ERRORS{{{dcgm_labels(0)}}} 79.0" in text
    assert f"DCGM_FI_DEV_XID_ERRORS{{{dcgm_labels(1)}}} 0.0" in text
    assert f"DCGM_FI_DEV_ROW_REMAP_FAILURE{{{dcgm_labels(0)}}} 1.0" in text
    assert f"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS{{{dcgm_labels(0)}}} 1.0" in text
    assert f"DCGM_FI_DEV_GPU_UTIL{{{dcgm_labels(1)}}} 50.0" in text
    assert f"DCGM_FI_DEV_PCIE_LINK_GEN{{{dcgm_labels(1)}}} 4.0" in text
    assert f"DCGM_FI_DEV_POWER_USAGE{{{dcgm_labels(1)}}} 200.0" in text
    assert 'UUID="GPU-2"' not in "\n".join(line for line in text.splitlines() if line.startswith("DCGM_"))
    assert "DCGM_FI_DEV_RETIRED_DBE{" not in text  # not reported by an emulated A100: no series
    assert (
        'autopilot_health_checks{cpu="Xeon",deviceid="0",gpu="NVIDIA A100-SXM4-40GB",health="remapped",node="n1"} 1.0'
        in text
    )
    assert f'autopilot_health_checks{{cpu="Xeon",deviceid="1",gpu="{A100}",health="xid",node="n1"}} 0.0' in text
    assert 'deviceid="2",gpu="NVIDIA A100-SXM4-40GB",health="reachable",node="n1"} 1.0' in text
    assert 'autopilot_health_checks{cpu="Xeon",deviceid="127.0.0.1:1",gpu="NVIDIA A100-SXM4-40GB",health="ping"' in text
    assert 'flotilla_gpu_health{gpu="0",node="n1",state="EVICT",uuid="GPU-0"} 1.0' in text
    assert 'flotilla_gpu_health{gpu="0",node="n1",state="PASS",uuid="GPU-0"} 0.0' in text
    assert 'flotilla_gpu_health{gpu="2",node="n1",state="ERR",uuid="GPU-2"} 1.0' in text


def test_xid_gauge_keeps_the_last_xid_after_the_fault_clears(env: Env) -> None:
    env.add(node("n1", gpu(0, "xid")))
    monitor = HealthMonitor(env.service)
    monitor.run_once()
    env.set_faults("n1", 0)
    monitor.run_once()
    assert f"DCGM_FI_DEV_XID_ERRORS{{{dcgm_labels(0)}}} 79.0" in exposition(monitor)  # "the last XID encountered"


def test_an_empty_snapshot_exports_empty_families() -> None:
    registry = CollectorRegistry()
    registry.register(GPUMetricsCollector(lambda: ()))
    text = generate_latest(registry).decode()
    assert len(DCGM_FIELDS) == 19 and "# TYPE DCGM_FI_DEV_FB_USED gauge" in text and "{" not in text
