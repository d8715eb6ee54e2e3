"""Readers: the emulated GPU's baseline, load and faults (and the verdicts they lead to), and
NvmlReader over a fake NVML."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from flotilla.telemetry import EmulatedReader, evaluate_gpu
from flotilla.telemetry.monitor import default_reader
from flotilla.telemetry.nvml import NvmlReader

from .builders import gpu

READER = EmulatedReader()


def test_healthy_emulated_baseline_passes_every_check() -> None:
    r = READER.read(gpu(0), 0.0)
    assert (r.uuid, r.reachable, r.pcie_gen, r.pcie_gen_max, r.pcie_width, r.pcie_width_max) == (
        "GPU-0",
        True,
        4,
        4,
        16,
        16,
    )
    assert (r.remapped_rows_uncorrectable, r.remapped_rows_failure, r.xid_events) == (0, False, ())
    assert (r.temperature_c, r.power_w, r.power_limit_w, r.utilization_pct) == (35.0, 60.0, 400.0, 0.0)
    assert r.fb_total_mib == 40960 and r.fb_used_mib is not None and r.fb_used_mib < 1000
    assert evaluate_gpu(r).verdict == "PASS"


def test_load_scales_utilisation_memory_power_and_temperature() -> None:
    idle, half, full = (READER.read(gpu(0), b) for b in (0.0, 0.5, 1.0))
    assert (idle.utilization_pct, half.utilization_pct, full.utilization_pct) == (0.0, 50.0, 100.0)
    assert idle.fb_used_mib < half.fb_used_mib < full.fb_used_mib == 40960  # type: ignore[operator]
    assert idle.power_w < half.power_w < full.power_w < 400  # type: ignore[operator]
    assert idle.temperature_c < full.temperature_c < 90  # type: ignore[operator]
    assert READER.read(gpu(0), 7.0) == full  # clamped
    assert evaluate_gpu(full).verdict == "PASS"


@pytest.mark.parametrize(
    ("fault", "verdict", "message"),
    [
        ("remapped-rows", "EVICT", "remapped: row remapping failure on GPU-0 (uncorrectable rows 1)"),
        ("pcie-degraded", "WARN", "pciebw: link gen 3 of 4, width x8 of x16 on GPU-0"),
        ("xid", "EVICT", "xid: critical XID 79 on GPU-0 (XIDs seen: 79)"),
        ("offline", "ERR", "reachable: GPU-0 does not answer"),
    ],
)
def test_each_emulated_fault_gives_its_verdict(fault: str, verdict: str, message: str) -> None:
    result = evaluate_gpu(READER.read(gpu(0, fault), 0.5))
    assert (result.verdict, result.message) == (verdict, message)


def test_faults_combine_and_offline_reports_nothing_else() -> None:
    both = evaluate_gpu(READER.read(gpu(0, "pcie-degraded", "xid"), 0.5))
    assert both.verdict == "EVICT" and [r.check for r in both.failing] == ["xid", "pciebw"]
    offline = READER.read(gpu(0, "offline", "xid"), 0.5)
    assert not offline.reachable and offline.xid_events == () and offline.power_w is None
    assert READER.read(gpu(0, "xid"), 0) == READER.read(gpu(0, "xid"), 0)  # present while the fault is set


def test_default_reader_by_kind_of_gpu() -> None:
    assert isinstance(default_reader(gpu(0)), EmulatedReader)
    real = default_reader(gpu(1, emulated=False, uuid="GPU-real"))
    assert isinstance(real, NvmlReader) and real.uuid == "GPU-real"


# -- NvmlReader over a fake NVML ---------------------------------------------------------------------
class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


class FakeNvml:
    """The slice of pynvml's API NvmlReader uses; `unsupported` names queries raising NotSupported."""

    NVMLError = NVMLError
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_ERROR_TIMEOUT = 10
    NVML_ERROR_GPU_IS_LOST = 15
    NVML_ERROR_LIBRARY_NOT_FOUND = 12
    nvmlEventTypeXidCriticalError = 8

    def __init__(self, *, unsupported: tuple[str, ...] = (), events: list[int] | None = None) -> None:
        self.unsupported = set(unsupported)
        self.events = list(events or [])
        self.lost = False
        self.inits = 0
        self.shutdowns = 0
        self.missing_library = False

    def __getattr__(self, name: str) -> Any:
        values: dict[str, Any] = {
            "nvmlDeviceGetCurrPcieLinkGeneration": 3,
            "nvmlDeviceGetMaxPcieLinkGeneration": 4,
            "nvmlDeviceGetCurrPcieLinkWidth": 16,
            "nvmlDeviceGetMaxPcieLinkWidth": 16,
            "nvmlDeviceGetRemappedRows": (2, 1, 0, 1),
            "nvmlDeviceGetMemoryInfo": SimpleNamespace(used=2 * 2**30, total=80 * 2**30),
            "nvmlDeviceGetUtilizationRates": SimpleNamespace(gpu=75, memory=10),
            "nvmlDeviceGetRetiredPages": [],
            "nvmlDeviceGetPowerUsage": 250_000,
            "nvmlDeviceGetEnforcedPowerLimit": 700_000,
            "nvmlDeviceGetTemperature": 51,
            "nvmlDeviceGetTemperatureThreshold": 87,
            "nvmlDeviceGetTotalEccErrors": 0,
        }
        if name not in values:
            raise AttributeError(name)

        def query(handle: Any, *args: Any) -> Any:
            assert handle == "handle-GPU-real"
            if self.lost:
                raise NVMLError(self.NVML_ERROR_GPU_IS_LOST)
            if name in self.unsupported:
                raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
            return values[name]

        return query

    def nvmlInit(self) -> None:
        if self.missing_library:
            raise NVMLError(self.NVML_ERROR_LIBRARY_NOT_FOUND)
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        return f"handle-{uuid}"

    def nvmlEventSetCreate(self) -> str:
        if "events" in self.unsupported:
            raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        return "event-set"

    def nvmlDeviceRegisterEvents(self, handle: Any, kinds: int, event_set: Any) -> None:
        assert kinds == self.nvmlEventTypeXidCriticalError

    def nvmlEventSetWait_v2(self, event_set: Any, timeout_ms: int) -> Any:
        assert timeout_ms == 0
        if not self.events:
            raise NVMLError(self.NVML_ERROR_TIMEOUT)
        return SimpleNamespace(eventType=8, eventData=self.events.pop(0))

    def nvmlEventSetFree(self, event_set: Any) -> None:
        pass


def test_nvml_reader_maps_every_field() -> None:
    nv = FakeNvml(events=[13, 79])
    reader = NvmlReader("GPU-real", nvml=nv)
    r = reader.read({}, 0.0)
    assert r.reachable and (r.pcie_gen, r.pcie_gen_max, r.pcie_width, r.pcie_width_max) == (3, 4, 16, 16)
    assert (r.remapped_rows_correctable, r.remapped_rows_uncorrectable) == (2, 1)
    assert (r.remapped_rows_pending, r.remapped_rows_failure) == (False, True)
    assert (r.retired_pages_sbe, r.retired_pages_dbe, r.ecc_volatile_uncorrected) == (0, 0, 0)
    assert (r.power_w, r.power_limit_w, r.temperature_c, r.temperature_slowdown_c) == (250.0, 700.0, 51, 87)
    assert (r.utilization_pct, r.fb_used_mib, r.fb_total_mib) == (75.0, 2048, 81920)
    assert r.xid_events == (13, 79)
    assert reader.read({}, 0.0).xid_events == ()  # drained: only what came since the last read
    assert evaluate_gpu(r).verdict == "EVICT"
    reader.close()
    assert (nv.inits, nv.shutdowns) == (1, 1)


def test_nvml_unsupported_queries_are_not_available() -> None:
    names = ("nvmlDeviceGetRemappedRows", "nvmlDeviceGetUtilizationRates", "nvmlDeviceGetPowerUsage", "events")
    r = NvmlReader("GPU-real", nvml=FakeNvml(unsupported=names)).read({}, 0.0)
    assert r.reachable and r.remapped_rows_failure is None and r.utilization_pct is None and r.power_w is None
    assert r.xid_events == () and r.temperature_c == 51
    assert evaluate_gpu(r).verdict == "WARN"  # gen 3 of 4, judged because utilisation is unknown


def test_nvml_lost_gpu_or_missing_library_is_unreachable() -> None:
    nv = FakeNvml()
    reader = NvmlReader("GPU-real", nvml=nv)
    nv.lost = True
    assert reader.read({}, 0.0).reachable is False
    nv.lost = False
    assert reader.read({}, 0.0).reachable is True  # opened again: back after a reset
    broken = FakeNvml()
    broken.missing_library = True
    assert NvmlReader("GPU-real", nvml=broken).read({}, 0.0).reachable is False
