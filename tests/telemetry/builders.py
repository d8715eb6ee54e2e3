"""Builders for the telemetry tests: GPU inventory entries, Nodes, readings, and a store harness."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flotilla.api.catalog import build_registry
from flotilla.store import Store
from flotilla.store.service import ResourceService
from flotilla.telemetry import GPUReadings

JSON = dict[str, Any]
HEALTHY = GPUReadings(
    uuid="GPU-0",
    reachable=True,
    pcie_gen=4,
    pcie_gen_max=4,
    pcie_width=16,
    pcie_width_max=16,
    remapped_rows_correctable=0,
    remapped_rows_uncorrectable=0,
    remapped_rows_pending=False,
    remapped_rows_failure=False,
    retired_pages_sbe=0,
    retired_pages_dbe=0,
    ecc_volatile_uncorrected=0,
    power_w=60.0,
    power_limit_w=400.0,
    temperature_c=35.0,
    temperature_slowdown_c=90.0,
    utilization_pct=50.0,
    fb_used_mib=1000,
    fb_total_mib=40960,
)


def readings(**changes: Any) -> GPUReadings:
    """Healthy readings of GPU-0 with `changes`."""
    return dataclasses.replace(HEALTHY, **changes)


def gpu(index: int = 0, *faults: str, uuid: str | None = None, emulated: bool = True, **extra: Any) -> JSON:
    """A `status.gpus[]` entry of an emulated A100 40GB (UUID `GPU-<index>` unless given)."""
    out: JSON = {
        "index": index,
        "uuid": uuid or f"GPU-{index}",
        "product": "NVIDIA A100-SXM4-40GB",
        "model": "A100-40GB",
        "memoryMiB": 40960,
        "migCapable": True,
        "emulated": emulated,
        **extra,
    }
    if faults:
        out["faults"] = list(faults)
    return out


def node(name: str, *gpus: JSON) -> JSON:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "status": {"gpus": list(gpus)}}


class RacingService(ResourceService):
    """A real service in which, before the next `update_status` (or `update`), someone else writes
    the Node first (`race`), so the caller's resourceVersion is stale and the store says Conflict."""

    race: Callable[[], None] | None = None
    race_on: str = "update_status"

    def _maybe_race(self, method: str) -> None:
        if self.race is not None and method == self.race_on:
            race, self.race = self.race, None
            race()

    def update_status(self, body: Any, kind: Any = None) -> JSON:
        self._maybe_race("update_status")
        return super().update_status(body, kind)

    def update(self, body: Any, kind: Any = None) -> JSON:
        self._maybe_race("update")
        return super().update(body, kind)


class Env:
    """A real store and resource service with Nodes."""

    def __init__(self, path: Path) -> None:
        self.store = Store.open(path)
        self.service = RacingService(self.store, build_registry())
        self.kind = self.service.registry.resolve("nodes")

    def close(self) -> None:
        self.store.close()

    def add(self, obj: JSON) -> JSON:
        return self.service.create(obj)

    def get(self, name: str) -> JSON:
        return self.service.get(self.kind, name)

    def set_faults(self, name: str, index: int, *faults: str) -> None:
        obj = self.get(name)
        entry = obj["status"]["gpus"][index]
        if faults:
            entry["faults"] = list(faults)
        else:
            entry.pop("faults", None)
        self.service.update_status(obj, self.kind)

    def gpu(self, name: str, index: int) -> JSON:
        return dict(self.get(name)["status"]["gpus"][index])

    def label(self, name: str) -> str | None:
        return (self.get(name)["metadata"].get("labels") or {}).get("autopilot.ibm.com/gpuhealth")
