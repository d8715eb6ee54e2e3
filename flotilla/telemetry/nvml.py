"""`NvmlReader`: readings of a real GPU from the NVIDIA driver, through `pynvml` (nvidia-ml-py).

`pynvml` is imported on the first read, so Flotilla runs without it. Every query is guarded: a
query the device does not support (NVMLError_NotSupported, and any other NVML error but a lost
GPU) leaves its field None; a lost GPU, a missing library or driver, or an unknown UUID makes
the GPU unreachable. XIDs come from an NVML event set registered for
`nvmlEventTypeXidCriticalError` and drained without waiting on each read; where events are not
supported (some MIG and virtualised setups) no XIDs are reported.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import logging
from collections.abc import Callable
from typing import Any

from flotilla.telemetry.readings import JSON, GPUReadings

log = logging.getLogger(__name__)
MAX_EVENTS_PER_READ = 64
_GPU_IS_LOST = 15  # NVML_ERROR_GPU_IS_LOST
_TIMEOUT = 10  # NVML_ERROR_TIMEOUT


class _Lost(Exception):
    """The GPU stopped answering during a read."""


class NvmlReader:
    """Reads one real GPU, found by UUID. Pass `nvml` (a module-like object with pynvml's API) to
    read through something else than `pynvml` (tests use a fake). Call `close()` when done."""

    def __init__(self, uuid: str, nvml: Any | None = None) -> None:
        self.uuid = uuid
        self._nvml = nvml
        self._initialised = False
        self._handle: Any = None
        self._events: Any = None
        self._events_supported = True

    # -- plumbing ----------------------------------------------------------------------------------
    def _module(self) -> Any | None:
        if self._nvml is None:
            try:
                self._nvml = importlib.import_module("pynvml")
            except ImportError:
                log.warning("pynvml (nvidia-ml-py) is not installed: real GPU %s reads as unreachable", self.uuid)
                return None
        return self._nvml

    def _open(self, nv: Any) -> Any | None:
        """The device handle (initialising NVML first), or None when NVML or the GPU is not there."""
        if self._handle is not None:
            return self._handle
        try:
            if not self._initialised:
                nv.nvmlInit()
                self._initialised = True
            try:
                self._handle = nv.nvmlDeviceGetHandleByUUID(self.uuid)
            except (TypeError, ctypes.ArgumentError):  # old bindings want bytes
                self._handle = nv.nvmlDeviceGetHandleByUUID(self.uuid.encode())
        except nv.NVMLError as exc:
            log.debug("NVML cannot open GPU %s: %s", self.uuid, exc)
            return None
        return self._handle

    def _query(self, nv: Any, name: str, *args: Any) -> Any:
        """`nv.<name>(handle, *args)`, None when unsupported or failing; raises _Lost if the GPU is lost."""
        fn: Callable[..., Any] | None = getattr(nv, name, None)
        if fn is None:
            return None
        try:
            return fn(self._handle, *args)
        except nv.NVMLError as exc:
            if getattr(exc, "value", None) == getattr(nv, "NVML_ERROR_GPU_IS_LOST", _GPU_IS_LOST):
                raise _Lost from None
            return None

    def _xids(self, nv: Any) -> tuple[int, ...]:
        """XIDs reported since the last read (registers the event set on first use)."""
        if not self._events_supported:
            return ()
        kind = getattr(nv, "nvmlEventTypeXidCriticalError", None)
        if self._events is None:
            try:
                if kind is None:
                    raise AttributeError("nvmlEventTypeXidCriticalError")
                self._events = nv.nvmlEventSetCreate()
                nv.nvmlDeviceRegisterEvents(self._handle, kind, self._events)
            except (nv.NVMLError, AttributeError) as exc:
                log.info("GPU %s: XID events not available (%s); the xid check sees none", self.uuid, exc)
                self._events_supported = False
                return ()
        wait = getattr(nv, "nvmlEventSetWait_v2", None) or nv.nvmlEventSetWait
        xids: list[int] = []
        for _ in range(MAX_EVENTS_PER_READ):
            try:
                data = wait(self._events, 0)
            except nv.NVMLError as exc:
                if getattr(exc, "value", None) not in (getattr(nv, "NVML_ERROR_TIMEOUT", _TIMEOUT), None):
                    log.debug("GPU %s: waiting for events failed: %s", self.uuid, exc)
                break
            if getattr(data, "eventType", kind) == kind:
                xids.append(int(data.eventData))
        return tuple(xids)

    # -- the reading -------------------------------------------------------------------------------
    def read(self, gpu: JSON, busy_fraction: float = 0.0) -> GPUReadings:
        """The GPU's readings now (`gpu` and `busy_fraction` are not used: NVML knows better)."""
        nv = self._module()
        if nv is None or self._open(nv) is None:
            return GPUReadings(uuid=self.uuid, reachable=False)
        try:
            return self._read(nv)
        except _Lost:
            self._handle = None  # open again next time: the GPU may come back after a reset
            self._events = None
            return GPUReadings(uuid=self.uuid, reachable=False)

    def _read(self, nv: Any) -> GPUReadings:
        q = self._query
        remap = q(nv, "nvmlDeviceGetRemappedRows")  # (correctable, uncorrectable, pending, failure)
        memory = q(nv, "nvmlDeviceGetMemoryInfo")
        util = q(nv, "nvmlDeviceGetUtilizationRates")
        sbe = q(
            nv, "nvmlDeviceGetRetiredPages", getattr(nv, "NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS", 0)
        )
        dbe = q(nv, "nvmlDeviceGetRetiredPages", getattr(nv, "NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR", 1))
        power = q(nv, "nvmlDeviceGetPowerUsage")
        limit = q(nv, "nvmlDeviceGetEnforcedPowerLimit")
        return GPUReadings(
            uuid=self.uuid,
            reachable=True,
            pcie_gen=q(nv, "nvmlDeviceGetCurrPcieLinkGeneration"),
            pcie_gen_max=q(nv, "nvmlDeviceGetMaxPcieLinkGeneration"),
            pcie_width=q(nv, "nvmlDeviceGetCurrPcieLinkWidth"),
            pcie_width_max=q(nv, "nvmlDeviceGetMaxPcieLinkWidth"),
            remapped_rows_correctable=int(remap[0]) if remap else None,
            remapped_rows_uncorrectable=int(remap[1]) if remap else None,
            remapped_rows_pending=bool(remap[2]) if remap else None,
            remapped_rows_failure=bool(remap[3]) if remap else None,
            retired_pages_sbe=len(sbe) if sbe is not None else None,
            retired_pages_dbe=len(dbe) if dbe is not None else None,
            ecc_volatile_uncorrected=q(
                nv,
                "nvmlDeviceGetTotalEccErrors",
                getattr(nv, "NVML_MEMORY_ERROR_TYPE_UNCORRECTED", 1),
                getattr(nv, "NVML_VOLATILE_ECC", 0),
            ),
            power_w=power / 1000.0 if power is not None else None,
            power_limit_w=limit / 1000.0 if limit is not None else None,
            temperature_c=q(nv, "nvmlDeviceGetTemperature", getattr(nv, "NVML_TEMPERATURE_GPU", 0)),
            temperature_slowdown_c=q(
                nv, "nvmlDeviceGetTemperatureThreshold", getattr(nv, "NVML_TEMPERATURE_THRESHOLD_SLOWDOWN", 1)
            ),
            xid_events=self._xids(nv),
            utilization_pct=float(util.gpu) if util is not None else None,
            fb_used_mib=int(memory.used) // 2**20 if memory is not None else None,
            fb_total_mib=int(memory.total) // 2**20 if memory is not None else None,
        )

    def close(self) -> None:
        """Free the event set and release NVML (it counts initialisations)."""
        nv = self._nvml
        if nv is None or not self._initialised:
            return
        if self._events is not None:
            with contextlib.suppress(nv.NVMLError):
                nv.nvmlEventSetFree(self._events)
            self._events = None
        with contextlib.suppress(nv.NVMLError):
            nv.nvmlShutdown()
        self._initialised = False
        self._handle = None
