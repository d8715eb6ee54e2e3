"""GPU metrics under dcgm-exporter's and IBM Autopilot's names, from the health monitor's snapshot.

`GPUMetricsCollector` is a prometheus_client custom collector. It reads the latest snapshot the
monitor published (a callable returning `NodeHealth`s; no I/O at scrape time) and exports:

dcgm-exporter's series (DCGM field names; labels `gpu` (index), `UUID`, `device` (`nvidia<index>`),
`modelName` (product name) and `Hostname` (the node)), one per reachable GPU and field reported:

    DCGM_FI_DEV_GPU_UTIL (%)              DCGM_FI_DEV_FB_USED, DCGM_FI_DEV_FB_FREE (MiB)
    DCGM_FI_DEV_GPU_TEMP (C)              DCGM_FI_DEV_SLOWDOWN_TEMP (C)
    DCGM_FI_DEV_POWER_USAGE (W)           DCGM_FI_DEV_POWER_MGMT_LIMIT (W)
    DCGM_FI_DEV_PCIE_LINK_GEN             DCGM_FI_DEV_PCIE_MAX_LINK_GEN
    DCGM_FI_DEV_PCIE_LINK_WIDTH           DCGM_FI_DEV_PCIE_MAX_LINK_WIDTH
    DCGM_FI_DEV_XID_ERRORS (the last XID seen, 0 for none)
    DCGM_FI_DEV_ROW_REMAP_FAILURE         DCGM_FI_DEV_ROW_REMAP_PENDING (0/1)
    DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS, DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS
    DCGM_FI_DEV_ECC_DBE_VOL_TOTAL (volatile uncorrectable ECC errors)
    DCGM_FI_DEV_RETIRED_SBE, DCGM_FI_DEV_RETIRED_DBE (retired pages)

All are DCGM fields dcgm-exporter exports under these names when its counters file lists them
(the first group and the remapped rows are in its default file). All are declared gauges:
dcgm-exporter declares the remapped-row, ECC and retired-page ones counters, but prometheus_client
writes a counter family's TYPE line with a `_total` suffix these names lack; the samples (names,
labels, values) are the same, and PromQL treats them alike. Series are per physical GPU: MIG
instances get none of their own (no `GPU_I_PROFILE`/`GPU_I_ID` labels), as readings are per GPU.

Autopilot's gauge, as IBM/autopilot's daemon defines it (labels `health`, `node`, `cpu`, `gpu`,
`deviceid`; `cpu` and `gpu` are the CPU and GPU model names):

    autopilot_health_checks{health=<check>, node, cpu, gpu, deviceid=<GPU index>} 0 pass, 1 fail
    (the node check `ping` has deviceid = its target "host:port"; Autopilot's pciebw reports the
    measured bandwidth in GB/s, this one 0/1 like every other check)

and Flotilla's own one-hot health state:

    flotilla_gpu_health{node, gpu=<index>, uuid, state=PASS|WARN|TESTING|EVICT|ERR} 1 for the current state
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from flotilla.telemetry.checks import CheckResult, GPUVerdict, Verdict
from flotilla.telemetry.readings import GPUReadings


@dataclass(frozen=True, slots=True)
class GPUSample:
    """One GPU in the snapshot: who it is, what was read, what the checks said."""

    index: int
    uuid: str
    model_name: str
    readings: GPUReadings
    verdict: GPUVerdict
    last_xid: int = 0


@dataclass(frozen=True, slots=True)
class NodeHealth:
    """One node in the snapshot: its verdict, its GPUs and its node checks' results."""

    node: str
    verdict: Verdict
    gpus: tuple[GPUSample, ...] = ()
    node_results: tuple[CheckResult, ...] = ()
    ping_target: str | None = None


def _flag(value: bool | None) -> float | None:
    return None if value is None else float(value)


def _fb_free(r: GPUReadings) -> float | None:
    return None if r.fb_total_mib is None or r.fb_used_mib is None else float(r.fb_total_mib - r.fb_used_mib)


# (name, help, value from a sample; None: not reported)
DCGM_FIELDS: tuple[tuple[str, str, Callable[[GPUSample], float | None]], ...] = (
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", lambda s: s.readings.utilization_pct),
    ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", lambda s: s.readings.fb_used_mib),
    ("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", lambda s: _fb_free(s.readings)),
    ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", lambda s: s.readings.temperature_c),
    (
        "DCGM_FI_DEV_SLOWDOWN_TEMP",
        "Slowdown temperature threshold (in C).",
        lambda s: s.readings.temperature_slowdown_c,
    ),
    ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", lambda s: s.readings.power_w),
    ("DCGM_FI_DEV_POWER_MGMT_LIMIT", "Power management limit (in W).", lambda s: s.readings.power_limit_w),
    ("DCGM_FI_DEV_PCIE_LINK_GEN", "PCIe link generation.", lambda s: s.readings.pcie_gen),
    ("DCGM_FI_DEV_PCIE_MAX_LINK_GEN", "Maximum PCIe link generation.", lambda s: s.readings.pcie_gen_max),
    ("DCGM_FI_DEV_PCIE_LINK_WIDTH", "PCIe link width (lanes).", lambda s: s.readings.pcie_width),
    ("DCGM_FI_DEV_PCIE_MAX_LINK_WIDTH", "Maximum PCIe link width (lanes).", lambda s: s.readings.pcie_width_max),
    ("DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered.", lambda s: s.last_xid),
    (
        "DCGM_FI_DEV_ROW_REMAP_FAILURE",
        "Whether remapping of rows has failed.",
        lambda s: _flag(s.readings.remapped_rows_failure),
    ),
    (
        "DCGM_FI_DEV_ROW_REMAP_PENDING",
        "Whether remapping of rows is pending.",
        lambda s: _flag(s.readings.remapped_rows_pending),
    ),
    (
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        "Number of remapped rows for uncorrectable errors.",
        lambda s: s.readings.remapped_rows_uncorrectable,
    ),
    (
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "Number of remapped rows for correctable errors.",
        lambda s: s.readings.remapped_rows_correctable,
    ),
    (
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "Total number of double-bit volatile ECC errors.",
        lambda s: s.readings.ecc_volatile_uncorrected,
    ),
    (
        "DCGM_FI_DEV_RETIRED_SBE",
        "Total number of retired pages due to single-bit errors.",
        lambda s: s.readings.retired_pages_sbe,
    ),
    (
        "DCGM_FI_DEV_RETIRED_DBE",
        "Total number of retired pages due to double-bit errors.",
        lambda s: s.readings.retired_pages_dbe,
    ),
)
DCGM_LABELS = ("gpu", "UUID", "device", "modelName", "Hostname")
AUTOPILOT_LABELS = ("health", "node", "cpu", "gpu", "deviceid")
STATES: tuple[Verdict, ...] = ("PASS", "WARN", "TESTING", "EVICT", "ERR")


class GPUMetricsCollector(Collector):
    """Exports the monitor's latest snapshot (see the module docstring for the names).

    `source` returns the snapshot and must not block (the monitor swaps an immutable tuple);
    `cpu_model` fills Autopilot's `cpu` label."""

    def __init__(self, source: Callable[[], Sequence[NodeHealth]], cpu_model: str = "N/A") -> None:
        self._source = source
        self._cpu = cpu_model

    def collect(self) -> Iterable[Metric]:
        nodes = tuple(self._source())
        yield from self._dcgm(nodes)
        yield self._autopilot(nodes)
        yield self._health(nodes)

    def _dcgm(self, nodes: Sequence[NodeHealth]) -> Iterable[Metric]:
        samples = [(n.node, g) for n in sorted(nodes, key=lambda n: n.node) for g in n.gpus if g.readings.reachable]
        for name, doc, value in DCGM_FIELDS:
            family = GaugeMetricFamily(name, doc, labels=DCGM_LABELS)
            for node, gpu in samples:
                v = value(gpu)
                if v is not None:
                    family.add_metric([str(gpu.index), gpu.uuid, f"nvidia{gpu.index}", gpu.model_name, node], float(v))
            yield family

    def _autopilot(self, nodes: Sequence[NodeHealth]) -> Metric:
        family = GaugeMetricFamily(
            "autopilot_health_checks",
            "Summary of the health checks measurements on compute nodes (1: the check failed, 0: it passed).",
            labels=AUTOPILOT_LABELS,
        )
        for n in sorted(nodes, key=lambda n: n.node):
            for g in n.gpus:
                for r in g.verdict.results:
                    family.add_metric([r.check, n.node, self._cpu, g.model_name, str(g.index)], float(r.failed))
            gpu_model = n.gpus[0].model_name if n.gpus else "N/A"
            for r in n.node_results:
                family.add_metric([r.check, n.node, self._cpu, gpu_model, n.ping_target or n.node], float(r.failed))
        return family

    @staticmethod
    def _health(nodes: Sequence[NodeHealth]) -> Metric:
        family = GaugeMetricFamily(
            "flotilla_gpu_health",
            "GPU health state from Flotilla's health checks (1 for the current state, Autopilot's values).",
            labels=("node", "gpu", "uuid", "state"),
        )
        for n in sorted(nodes, key=lambda n: n.node):
            for g in n.gpus:
                for state in STATES:
                    family.add_metric([n.node, str(g.index), g.uuid, state], float(g.verdict.verdict == state))
        return family


def describe_names() -> tuple[str, ...]:
    """Every metric family name the collector exports."""
    return (*(name for name, _, _ in DCGM_FIELDS), "autopilot_health_checks", "flotilla_gpu_health")
