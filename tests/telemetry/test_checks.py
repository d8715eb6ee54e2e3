"""The health checks' verdicts (table-driven), how verdicts combine, and the registry and config."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla.telemetry import (
    CheckResult,
    HealthConfig,
    HealthConfigError,
    NodeReadings,
    default_registry,
    evaluate_gpu,
    node_verdict,
    worst,
)
from flotilla.telemetry.checks import ALL_CHECKS, combine

from .builders import HEALTHY, readings

REGISTRY = default_registry()


def run(check: str, r: Any, **params: Any) -> CheckResult:
    plugin = REGISTRY.plugin(check)
    return plugin.fn(r, plugin.params_model.model_validate(params))


GPU_CASES = [
    # check, readings changes, params, verdict, message fragment
    ("reachable", {}, {}, "PASS", "reachable: ok"),
    ("reachable", {"reachable": False}, {}, "ERR", "reachable: GPU-0 does not answer"),
    ("pciebw", {}, {}, "PASS", "pciebw: ok"),
    ("pciebw", {"pcie_gen": 3}, {}, "WARN", "pciebw: link gen 3 of 4, width x16 of x16 on GPU-0"),
    ("pciebw", {"pcie_gen": 3, "utilization_pct": 0.0}, {}, "PASS", "pciebw: ok"),  # idle: gen drops to save power
    ("pciebw", {"pcie_gen": 1, "utilization_pct": None}, {}, "WARN", "link gen 1 of 4"),
    ("pciebw", {"pcie_width": 8}, {}, "WARN", "width x8 of x16 on GPU-0"),  # half: not below half
    ("pciebw", {"pcie_width": 8, "utilization_pct": 0.0}, {}, "WARN", "width x8 of x16"),
    ("pciebw", {"pcie_width": 4}, {}, "EVICT", "width x4 of x16 (below half width) on GPU-0"),
    ("pciebw", {"pcie_gen": None, "pcie_width": None}, {}, "PASS", "pciebw: ok"),
    ("remapped", {}, {}, "PASS", "remapped: ok"),
    (
        "remapped",
        {"remapped_rows_failure": True, "remapped_rows_uncorrectable": 1},
        {},
        "EVICT",
        "remapped: row remapping failure on GPU-0 (uncorrectable rows 1)",
    ),
    ("remapped", {"remapped_rows_pending": True}, {}, "EVICT", "row remapping pending on GPU-0 (needs a GPU reset"),
    ("remapped", {"remapped_rows_uncorrectable": 2}, {}, "WARN", "2 rows remapped for uncorrectable errors"),
    ("remapped", {"remapped_rows_uncorrectable": 2}, {"uncorrectable_warn_above": 2}, "PASS", "remapped: ok"),
    ("remapped", {"remapped_rows_correctable": 9}, {}, "PASS", "remapped: ok"),
    ("remapped", {"remapped_rows_failure": None, "remapped_rows_uncorrectable": None}, {}, "PASS", "ok"),
    ("ecc", {}, {}, "PASS", "ecc: ok"),
    ("ecc", {"ecc_volatile_uncorrected": 2}, {}, "WARN", "ecc: 2 uncorrectable ECC errors on GPU-0"),
    ("ecc", {"retired_pages_dbe": 61}, {}, "EVICT", "ecc: 61 pages retired for double-bit errors on GPU-0"),
    ("ecc", {"retired_pages_dbe": 60}, {}, "PASS", "ecc: ok"),
    ("ecc", {"retired_pages_dbe": 1}, {"retired_dbe_evict_above": 0}, "EVICT", "(more than 0)"),
    ("power", {}, {}, "PASS", "power: ok"),
    ("power", {"power_w": 420.0}, {}, "WARN", "power: 420.0 W above the 400.0 W limit on GPU-0"),
    ("power", {"power_w": 420.0}, {"tolerance_pct": 10}, "PASS", "power: ok"),
    ("power", {"power_w": 420.0, "power_limit_w": None}, {}, "PASS", "power: ok"),
    ("temperature", {}, {}, "PASS", "temperature: ok"),
    ("temperature", {"temperature_c": 90.0}, {}, "WARN", "temperature: 90 C at or above the 90 C slowdown"),
    ("temperature", {"temperature_c": 86.0}, {"margin_c": 5}, "WARN", "86 C"),
    ("temperature", {"temperature_c": 89.0}, {}, "PASS", "temperature: ok"),
    ("xid", {}, {}, "PASS", "xid: ok"),
    ("xid", {"xid_events": (79,)}, {}, "EVICT", "xid: critical XID 79 on GPU-0"),
    ("xid", {"xid_events": (13, 48)}, {}, "EVICT", "critical XID 48 on GPU-0 (XIDs seen: 13, 48)"),
    ("xid", {"xid_events": (13,)}, {}, "WARN", "xid: XID 13 on GPU-0"),
    ("xid", {"xid_events": (79,)}, {"critical": [48]}, "WARN", "xid: XID 79"),
]


@pytest.mark.parametrize(("check", "changes", "params", "verdict", "message"), GPU_CASES)
def test_gpu_check(check: str, changes: dict[str, Any], params: dict[str, Any], verdict: str, message: str) -> None:
    result = run(check, readings(**changes), **params)
    assert (result.check, result.verdict) == (check, verdict)
    assert message in result.message


@pytest.mark.parametrize("xid", [48, 61, 62, 63, 64, 68, 69, 73, 74, 79, 92, 94, 95, 119, 120])
def test_every_critical_xid_evicts(xid: int) -> None:
    assert run("xid", readings(xid_events=(xid,))).verdict == "EVICT"


@pytest.mark.parametrize(
    ("target", "latency", "params", "verdict", "message"),
    [
        (None, None, {}, "PASS", "ping: no target configured"),
        ("127.0.0.1:8470", 0.0004, {}, "PASS", "ping: ok"),
        ("127.0.0.1:8470", None, {}, "ERR", "ping: no answer from 127.0.0.1:8470 on node n1"),
        ("127.0.0.1:8470", 0.2, {"warn_above_s": 0.1}, "WARN", "ping: 200.0 ms to 127.0.0.1:8470 on node n1"),
    ],
)
def test_ping_check(
    target: str | None, latency: float | None, params: dict[str, Any], verdict: str, message: str
) -> None:
    result = run("ping", NodeReadings("n1", target, latency), **params)
    assert result.verdict == verdict and message in result.message


def test_verdict_order_and_worst_of() -> None:
    assert worst([]) == "PASS"
    assert worst(["WARN", "PASS"]) == "WARN"
    assert worst(["TESTING", "WARN"]) == "TESTING"
    assert worst(["EVICT", "TESTING", "WARN"]) == "EVICT"
    assert worst(["WARN", "ERR", "EVICT"]) == "ERR"


def test_gpu_verdict_is_the_worst_check_and_lists_failing_worst_first() -> None:
    verdict = evaluate_gpu(readings(pcie_gen=3, xid_events=(79,), reachable=True))
    assert verdict.verdict == "EVICT"
    assert [r.check for r in verdict.failing] == ["xid", "pciebw"]
    assert verdict.message == "xid: critical XID 79 on GPU-0 (XIDs seen: 79)"
    assert {r.check for r in verdict.results} == set(ALL_CHECKS) - {"ping"}
    assert evaluate_gpu(HEALTHY).verdict == "PASS" and evaluate_gpu(HEALTHY).message is None


def test_failing_ties_keep_config_order() -> None:
    results = [CheckResult("b", "WARN", "b"), CheckResult("a", "EVICT", "a"), CheckResult("c", "WARN", "c")]
    assert [r.check for r in combine(results).failing] == ["a", "b", "c"]


def test_node_verdict_is_the_worst_of_gpus_and_node_checks() -> None:
    gpus = [evaluate_gpu(HEALTHY), evaluate_gpu(readings(pcie_gen=3))]
    assert node_verdict(gpus) == "WARN"
    assert node_verdict(gpus, [CheckResult("ping", "ERR", "ping: no answer")]) == "ERR"
    assert node_verdict([]) == "PASS"


def test_config_enables_checks_and_sets_thresholds() -> None:
    config = HealthConfig(checks=("xid",), params={"xid": {"critical": [13]}})
    assert evaluate_gpu(readings(xid_events=(13,), pcie_gen=1), config).verdict == "EVICT"
    assert HealthConfig().interval == 10.0
    assert REGISTRY.bind(HealthConfig()).names == ALL_CHECKS


@pytest.mark.parametrize(
    ("config", "error"),
    [
        (HealthConfig(checks=("nope",)), "unknown health check 'nope'; known checks: ecc, pciebw, ping"),
        (HealthConfig(params={"nope": {}}), "unknown health check 'nope'"),
        (HealthConfig(checks=("xid",), params={"ecc": {}}), "params.ecc: check 'ecc' is not enabled"),
        (HealthConfig(params={"power": {"tolerance": 1}}), "health check 'power': params.power.tolerance"),
        (HealthConfig(params={"ecc": {"retired_dbe_evict_above": -1}}), "params.ecc.retired_dbe_evict_above"),
    ],
)
def test_bad_config_is_refused_with_the_field(config: HealthConfig, error: str) -> None:
    with pytest.raises(HealthConfigError, match=None) as info:
        REGISTRY.bind(config)
    assert error in str(info.value)


def test_registry_shape() -> None:
    assert REGISTRY.names == tuple(sorted(ALL_CHECKS))
    assert default_registry() is not REGISTRY
    with pytest.raises(ValueError, match="already registered"):
        REGISTRY.register("xid", REGISTRY.plugin("xid").params_model, REGISTRY.plugin("xid").fn)
    for name in REGISTRY.names:
        plugin = REGISTRY.plugin(name)
        assert plugin.doc.strip() and plugin.params_model.model_config.get("frozen") is True
    with pytest.raises(ValueError, match="docstring"):
        REGISTRY.register("bare", REGISTRY.plugin("xid").params_model, lambda r, p: CheckResult("x", "PASS", ""))
    with pytest.raises(Exception, match="extra"):
        HealthConfig(unknown=1)  # type: ignore[call-arg]
