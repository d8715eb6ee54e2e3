"""Session stickiness (the table, and a profile that uses it) and the saturation detector."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.gateway.scheduling import EndpointSnapshot, Pick, SaturationDetector, SessionTable, load_profiles

from .builders import context, ep, req


def test_a_session_sticks_to_its_endpoint_until_it_idles_past_the_ttl() -> None:
    table = SessionTable(ttl_seconds=10)
    table.record("s", "a:8000", now=100.0)
    assert table.endpoint_of("s") == "a:8000"
    assert table.endpoint_of("s", now=110.0) == "a:8000"
    assert table.endpoint_of("s", now=110.5) is None  # idle longer than the TTL
    table.record("s", "b:8000", now=111.0)  # served again (elsewhere): re-pinned
    assert table.endpoint_of("s") == "b:8000"
    assert table.endpoint_of("unknown") is None


def test_expiry_and_bounds() -> None:
    table = SessionTable(ttl_seconds=10, max_sessions=2)
    table.record("s1", "a", now=0.0)
    table.record("s2", "a", now=5.0)
    table.record("s3", "b", now=6.0)  # over max_sessions: the least recently used goes
    assert len(table) == 2 and table.endpoint_of("s1") is None
    assert table.expire(now=15.5) == 1 and table.endpoint_of("s3") == "b"
    table.forget_endpoint("b")
    assert len(table) == 0


def test_a_sticky_profile_keeps_a_conversation_on_one_endpoint(tmp_path: Path) -> None:
    path = tmp_path / "sticky.yaml"
    path.write_text(
        "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n"
        "plugins: [{type: queue-scorer}, {type: session-affinity-scorer}]\n"
        "schedulingProfiles: [{name: sticky, plugins: [{pluginRef: queue-scorer}, "
        "{pluginRef: session-affinity-scorer, weight: 10}]}]\n",
        encoding="utf-8",
    )
    sticky = load_profiles(path, builtins=False)["sticky"]
    table = SessionTable(ttl_seconds=60)
    endpoints = [ep("a", 0), ep("b", 3), ep("c", 6)]
    served = []
    for turn in range(4):
        now = float(turn)
        pick = sticky.pick(context(now=now, sessions=table), req(session="conv"), endpoints)
        assert isinstance(pick, Pick)
        table.record("conv", pick.endpoint.address, now)
        served.append(pick.endpoint.endpoint.name)
        endpoints = [ep("a", 5), ep("b", 0), ep("c", 6)]  # a gets busy after the first turn
    assert served == ["a", "a", "a", "a"]


FRESH = 100.0


@pytest.mark.parametrize(
    ("endpoints", "now", "saturated"),
    [
        ([], None, True),  # no endpoints: no capacity
        ([ep("a", 5, 0.8)], None, False),  # at the thresholds: headroom
        ([ep("a", 6, 0.1), ep("b", 0, 0.81)], None, True),
        ([ep("a", 6, 0.1), ep("b", 0, 0.5)], None, False),
        ([ep("a", 0, 0.0, fresh=False)], None, True),  # stale metrics: no headroom
        ([ep("a", 0, 0.0, scraped_at=FRESH - 1.0)], FRESH, True),  # older than staleness (0.2 s)
        ([ep("a", 0, 0.0, scraped_at=FRESH - 0.1)], FRESH, False),
    ],
)
def test_saturation_is_no_endpoint_with_headroom(
    endpoints: list[EndpointSnapshot], now: float | None, saturated: bool
) -> None:
    detector = SaturationDetector(queue_threshold=5, kv_threshold=0.8, staleness=0.2)
    assert detector.saturated(endpoints, now) is saturated
