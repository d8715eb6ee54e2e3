"""One GPU's readings, and the readers that take them.

`GPUReadings` is what the health checks judge and the metrics export: NVML's view of one device
at one moment. Every numeric field is Optional, and None means "not available" (the device does
not support the query, or it did not answer), never zero. A check that lacks what it needs passes.

Two readers: `EmulatedReader` derives readings for an emulated GPU from its inventory entry (its
injected `faults`) and the share of its slots that is allocated; `NvmlReader` (in `nvml.py`) asks
the driver about a real one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

JSON = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class GPUReadings:
    """NVML's view of one GPU. None: not available. `xid_events`: XIDs seen since the last read."""

    uuid: str
    reachable: bool = True
    pcie_gen: int | None = None
    pcie_gen_max: int | None = None
    pcie_width: int | None = None
    pcie_width_max: int | None = None
    remapped_rows_correctable: int | None = None
    remapped_rows_uncorrectable: int | None = None
    remapped_rows_pending: bool | None = None
    remapped_rows_failure: bool | None = None
    retired_pages_sbe: int | None = None
    retired_pages_dbe: int | None = None
    ecc_volatile_uncorrected: int | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    temperature_c: float | None = None
    temperature_slowdown_c: float | None = None
    xid_events: tuple[int, ...] = ()
    utilization_pct: float | None = None
    fb_used_mib: int | None = None
    fb_total_mib: int | None = None


class Reader(Protocol):
    """Takes one GPU's readings. `gpu` is its inventory entry (a `GPUInfo` as JSON) as stored now;
    `busy_fraction` the share of its slots allocated (0..1), which only emulated readers use."""

    def read(self, gpu: JSON, busy_fraction: float) -> GPUReadings: ...


# A healthy emulated GPU at rest (figures of an A100 SXM4 40GB idling in a datacentre).
IDLE_POWER_W = 60.0
BUSY_POWER_W = 340.0  # at full load, under the limit
POWER_LIMIT_W = 400.0
IDLE_TEMPERATURE_C = 35.0
BUSY_TEMPERATURE_C = 65.0
SLOWDOWN_TEMPERATURE_C = 90.0
FB_RESERVED_MIB = 500  # what the driver holds on an idle device
EMULATED_XID = 79  # "GPU has fallen off the bus"


class EmulatedReader:
    """Readings of an emulated GPU: a healthy baseline (PCIe gen 4 x16 of gen 4 x16, no remapped
    rows or ECC errors, ~35 C, ~60 W of a 400 W limit) that load scales (utilisation and memory in
    proportion to `busy_fraction`, power and temperature linearly between idle and busy), changed
    by each injected fault:

    - `remapped-rows`: row remapping failed, 1 uncorrectable remapped row;
    - `pcie-degraded`: the link trained at gen 3 x8;
    - `xid`: XID 79 (fallen off the bus), reported on every read while the fault is set;
    - `offline`: the device does not answer (`reachable` False, nothing else available).

    Stateless and deterministic: the same entry and load give the same readings.
    """

    def read(self, gpu: JSON, busy_fraction: float) -> GPUReadings:
        uuid = str(gpu.get("uuid", ""))
        faults = set(gpu.get("faults") or ())
        if "offline" in faults:
            return GPUReadings(uuid=uuid, reachable=False)
        busy = min(max(busy_fraction, 0.0), 1.0)
        total = int(gpu.get("memoryMiB") or 0)
        used = min(total, FB_RESERVED_MIB + round((total - FB_RESERVED_MIB) * busy)) if total else 0
        degraded = "pcie-degraded" in faults
        remapped = "remapped-rows" in faults
        return GPUReadings(
            uuid=uuid,
            reachable=True,
            pcie_gen=3 if degraded else 4,
            pcie_gen_max=4,
            pcie_width=8 if degraded else 16,
            pcie_width_max=16,
            remapped_rows_correctable=0,
            remapped_rows_uncorrectable=1 if remapped else 0,
            remapped_rows_pending=False,
            remapped_rows_failure=remapped,
            retired_pages_sbe=None,  # A100 and later remap rows instead of retiring pages
            retired_pages_dbe=None,
            ecc_volatile_uncorrected=0,
            power_w=round(IDLE_POWER_W + (BUSY_POWER_W - IDLE_POWER_W) * busy, 1),
            power_limit_w=POWER_LIMIT_W,
            temperature_c=round(IDLE_TEMPERATURE_C + (BUSY_TEMPERATURE_C - IDLE_TEMPERATURE_C) * busy, 1),
            temperature_slowdown_c=SLOWDOWN_TEMPERATURE_C,
            xid_events=(EMULATED_XID,) if "xid" in faults else (),
            utilization_pct=round(100.0 * busy, 1),
            fb_used_mib=used,
            fb_total_mib=total,
        )
