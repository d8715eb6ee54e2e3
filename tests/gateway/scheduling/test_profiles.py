"""Profiles: the built-ins, a pick end to end, custom EndpointPickerConfig files and their errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from flotilla.gateway.scheduling import (
    ApproximatePrefixIndex,
    NoEndpoint,
    Pick,
    PluginViolation,
    Profile,
    ProfileConfigError,
    SchedulerRegistry,
    approximate_index_for,
    default_registry,
    load_profiles,
)

from .builders import REGISTRY, context, ep, names, req

HEADER = "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n"


def test_the_registry_has_every_plugin_by_kind() -> None:
    assert REGISTRY.names_of("filter") == (
        "healthy-filter",
        "least-kv-cache-filter",
        "least-queue-filter",
        "lora-affinity-filter",
        "low-queue-filter",
    )
    assert REGISTRY.names_of("scorer") == (
        "active-request-scorer",
        "kv-cache-utilization-scorer",
        "lora-affinity-scorer",
        "precise-prefix-cache-scorer",
        "prefix-cache-scorer",
        "queue-scorer",
        "session-affinity-scorer",
    )
    assert REGISTRY.names_of("picker") == ("max-score-picker", "random-picker", "round-robin", "weighted-random-picker")
    assert default_registry() is not REGISTRY


def test_a_plugin_needs_a_docstring_and_a_unique_type() -> None:
    registry = SchedulerRegistry()
    with pytest.raises(ValueError, match="docstring"):
        registry.scorer("x", REGISTRY.plugin("queue-scorer").params_model, lambda c, r, e, p: [])
    with pytest.raises(ValueError, match="already registered"):
        default_registry().register("scorer", "queue-scorer", REGISTRY.plugin("queue-scorer").params_model, print)


def _describe(profile: Profile) -> tuple[list[str], list[tuple[str, float]], str]:
    return [f.type for f in profile.filters], [(s.type, w) for s, w in profile.scorers], profile.picker.type


def test_the_built_in_profiles() -> None:
    profiles = load_profiles()
    assert sorted(profiles) == ["default", "llm-d", "precise-prefix", "random", "round-robin"]
    llm_d = [("queue-scorer", 2), ("kv-cache-utilization-scorer", 2), ("prefix-cache-scorer", 3)]
    assert _describe(profiles["llm-d"]) == (["healthy-filter"], llm_d, "max-score-picker")
    assert _describe(profiles["default"]) == (
        ["healthy-filter"],
        [*llm_d, ("active-request-scorer", 2)],
        "max-score-picker",
    )
    assert _describe(profiles["precise-prefix"])[1][2:] == [
        ("precise-prefix-cache-scorer", 3),
        ("active-request-scorer", 2),
    ]
    assert _describe(profiles["round-robin"]) == (["healthy-filter"], [], "round-robin")
    assert _describe(profiles["random"]) == (["healthy-filter"], [], "random-picker")
    index = approximate_index_for(profiles.values())
    assert (index.block_chars, index.max_blocks, index.lru_capacity_per_server) == (64, 256, 31250)


def test_default_pick_weighs_load_and_prefix() -> None:
    default = load_profiles()["default"]
    index = ApproximatePrefixIndex()
    request = req(prompt="p" * 640)  # 10 blocks
    index.record(request, "busy:8000")
    endpoints = [ep("idle", 0, 0.0), ep("busy", 4, 0.5), ep("down", 0, 0.0, fresh=False)]
    pick = default.pick(context(prefix=index), request, endpoints)
    assert isinstance(pick, Pick) and pick.profile == "default"
    # idle: 2*1 + 2*1 + 3*0 + 2*1 = 6; busy: 2*0 + 2*0.5 + 3*1 + 2*1 = 6 (nothing in flight) -> a tie,
    # broken by the seeded rng
    assert pick.scores == {"idle:8000": 6.0, "busy:8000": 6.0}
    assert {pick.endpoint.endpoint.name, *names(pick.fallbacks)} == {"idle", "busy"}
    index.record(req(prompt="q" * 640), "idle:8000")
    pick = default.pick(context(prefix=index), req(prompt="q" * 640), endpoints)
    assert isinstance(pick, Pick) and pick.endpoint.endpoint.name == "idle" and names(pick.fallbacks) == ["busy"]


def test_default_spreads_cold_requests_that_llm_d_would_stack_on_the_prefix_holder() -> None:
    """Requests in flight that the scraped metrics do not show yet (no queue, little KV): llm-d's three
    scorers follow the shared prefix to the busy endpoint; the default's active-request scorer does not."""
    profiles = load_profiles()
    index = ApproximatePrefixIndex()
    index.record(req(prompt="s" * 640), "warm:8000")  # the shared system prompt: 10 blocks
    cold = req(prompt="s" * 640 + "t" * 640)  # the system prompt and a new transcript: half the blocks hit
    endpoints = [ep("warm", 0, 0.1, in_flight=3), ep("spare", 0, 0.0)]
    llm_d = profiles["llm-d"].pick(context(prefix=index), cold, endpoints)
    assert isinstance(llm_d, Pick) and llm_d.endpoint.endpoint.name == "warm"
    # warm: 2*1 + 2*0.9 + 3*0.5 = 5.3; spare: 2*1 + 2*1 + 3*0 = 4
    assert llm_d.scores == pytest.approx({"warm:8000": 5.3, "spare:8000": 4.0})
    default = profiles["default"].pick(context(prefix=index), cold, endpoints)
    assert isinstance(default, Pick) and default.endpoint.endpoint.name == "spare"
    # the same plus the active-request scorer at weight 2: warm 5.3 + 2*0 = 5.3; spare 4 + 2*1 = 6
    assert default.scores == pytest.approx({"warm:8000": 5.3, "spare:8000": 6.0})


def test_no_endpoint_says_why() -> None:
    default = load_profiles()["default"]
    assert default.pick(context(), req(), []) == NoEndpoint("no ready endpoint")
    result = default.pick(context(), req(), [ep("a", fresh=False)])
    assert isinstance(result, NoEndpoint) and "filtered out by 'healthy-filter'" in result.reason


def test_the_round_robin_profile_keeps_its_own_counter_unless_the_driver_passes_a_turn() -> None:
    rr = load_profiles()["round-robin"]
    endpoints = [ep("b"), ep("a"), ep("c")]
    picks = [rr.pick(context(), req(), endpoints) for _ in range(4)]
    assert [p.endpoint.endpoint.name for p in picks if isinstance(p, Pick)] == ["a", "b", "c", "a"]
    first = picks[0]
    assert isinstance(first, Pick) and names(first.fallbacks) == ["b", "c"]
    pinned = rr.pick(context(turn=2), req(), endpoints)
    assert isinstance(pinned, Pick) and pinned.endpoint.endpoint.name == "c"
    assert rr.turns.next_turn == 4  # a driver-given turn does not advance the profile's counter
    assert load_profiles()["round-robin"].turns.next_turn == 0  # each load: new counters


def _write(tmp_path: Path, body: str, name: str = "epp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


CUSTOM = """\
plugins:
- type: single-profile-handler
- type: low-queue-filter
  parameters: {threshold: 3}
- type: queue-scorer
  name: q
- type: session-affinity-scorer
- type: weighted-random-picker
  parameters: {maxNumOfEndpoints: 2}
schedulingProfiles:
- name: sticky
  plugins:
  - pluginRef: low-queue-filter
  - pluginRef: q
  - pluginRef: session-affinity-scorer
    weight: 10
  - pluginRef: weighted-random-picker
- name: default
  plugins:
  - pluginRef: q
"""


def test_a_custom_config_adds_profiles_and_replaces_built_ins_of_the_same_name(tmp_path: Path) -> None:
    path = _write(tmp_path, CUSTOM)
    profiles = load_profiles(path)
    assert sorted(profiles) == ["default", "llm-d", "precise-prefix", "random", "round-robin", "sticky"]
    sticky = profiles["sticky"]
    assert _describe(sticky) == (
        ["low-queue-filter"],
        [("queue-scorer", 1.0), ("session-affinity-scorer", 10)],
        "weighted-random-picker",
    )
    assert sticky.scorers[0][0].name == "q"
    assert _describe(profiles["default"]) == ([], [("queue-scorer", 1.0)], "max-score-picker")  # the default picker
    assert sorted(load_profiles(path, builtins=False)) == ["default", "sticky"]
    assert sorted(load_profiles(tmp_path, builtins=False)) == ["default", "sticky"]  # a folder of files
    pick = sticky.pick(context(), req(), [ep("a", 9), ep("b", 1), ep("c", 2), ep("d", 0)])
    assert isinstance(pick, Pick) and len(pick.fallbacks) == 1  # maxNumOfEndpoints: the pick and one fallback


def doc(plugins: str, profiles: str) -> str:
    return f"plugins: {plugins}\nschedulingProfiles: {profiles}\n"


def one(ref: str) -> str:
    """A profile `p` with one plugin reference (`ref` is the reference's fields)."""
    return f"[{{name: p, plugins: [{{{ref}}}]}}]"


QS = "[{type: queue-scorer}]"


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            doc(QS, one("pluginRef: queue-scorer, wieght: 2")),
            ['schedulingProfiles[0].plugins[0].wieght: unknown field "wieght"; did you mean "weight"?'],
        ),
        (f"plugins: {QS}\n", ["schedulingProfiles: required field is missing"]),
        (
            doc("[{type: no-such-scorer}]", one("pluginRef: no-such-scorer")),
            ["plugins[0].type: unknown plugin type 'no-such-scorer'; known types: active-request-scorer"],
        ),
        (
            doc(
                "[{type: prefix-cache-scorer, parameters: {blockSize: 0, lru: 3}}]",
                one("pluginRef: prefix-cache-scorer"),
            ),
            [
                "plugins[0].parameters.blockSize: 0 must be greater than or equal to 1",
                "plugins[0].parameters.lru: unknown field",
            ],
        ),
        (
            doc("[{type: queue-scorer}, {type: queue-scorer}]", one("pluginRef: queue-scorer")),
            ["plugins[1].name: 'queue-scorer' is already the name of another plugin"],
        ),
        (
            doc(QS, one("pluginRef: q")),
            ["schedulingProfiles[0].plugins[0].pluginRef: no plugin named 'q'; plugins: queue-scorer"],
        ),
        (
            doc("[{type: healthy-filter}]", one("pluginRef: healthy-filter, weight: 2")),
            ["schedulingProfiles[0].plugins[0].weight: only scorers take a weight; 'healthy-filter' is a filter"],
        ),
        (
            doc(
                "[{type: random-picker}, {type: max-score-picker}]",
                "[{name: p, plugins: [{pluginRef: random-picker}, {pluginRef: max-score-picker}]}]",
            ),
            ["schedulingProfiles[0].plugins: at most one picker per profile, got random-picker, max-score-picker"],
        ),
        (
            doc(
                QS, "[{name: p, plugins: [{pluginRef: queue-scorer}]}, {name: p, plugins: [{pluginRef: queue-scorer}]}]"
            ),
            ["schedulingProfiles[1].name: profile 'p' is defined twice"],
        ),
        (
            doc("[{type: single-profile-handler}]", one("pluginRef: single-profile-handler")),
            ["schedulingProfiles[0].plugins[0].pluginRef: 'single-profile-handler' is a profile handler"],
        ),
    ],
)
def test_config_errors_name_the_file_and_the_field(tmp_path: Path, body: str, errors: list[str]) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(ProfileConfigError) as info:
        load_profiles(path)
    assert len(info.value.issues) == len(errors), info.value.issues
    for issue, expected in zip(info.value.issues, errors, strict=True):
        assert issue.startswith(f"{path}: {expected}"), issue


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "apiVersion: v1\nkind: EndpointPickerConfig\nplugins: []\nschedulingProfiles: []\n",
            'apiVersion: "v1" is not allowed',
        ),
        ("- a list\n", "expected an EndpointPickerConfig (a mapping), got list"),
        ("plugins: [\n", "malformed YAML at line"),
    ],
)
def test_malformed_documents(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileConfigError, match=re.escape(error)):
        load_profiles(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ProfileConfigError, match=r"nope\.yaml: cannot read"):
        load_profiles(tmp_path / "nope.yaml")


def test_a_profile_defined_in_two_files_of_a_folder(tmp_path: Path) -> None:
    body = "plugins: [{type: queue-scorer}]\nschedulingProfiles: [{name: p, plugins: [{pluginRef: queue-scorer}]}]\n"
    _write(tmp_path, body, "a.yaml")
    _write(tmp_path, body, "b.yaml")
    with pytest.raises(
        ProfileConfigError, match=r"b.yaml: schedulingProfiles: profile 'p' is already defined in .*a.yaml"
    ):
        load_profiles(tmp_path)


def test_a_plugin_breaking_its_contract_is_caught() -> None:
    def bad_scorer(ctx: Any, request: Any, endpoints: Any, params: Any) -> list[float]:
        """Returns 2.0: out of range."""
        return [2.0] * len(endpoints)

    registry = default_registry()
    registry.scorer("bad", REGISTRY.plugin("queue-scorer").params_model, bad_scorer)
    profile = Profile("p", (), ((registry.bind("bad"), 1.0),), registry.bind("max-score-picker"))
    with pytest.raises(PluginViolation, match=r"scorer 'bad' returned 2\.0"):
        profile.pick(context(), req(), [ep("a")])
