"""The cycle: message format, retryable or not, scoring and seeded tie-breaks, registry and config."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from flotilla.runtime.scheduling import (
    Bound,
    NodeInfo,
    PluginArgsError,
    PodInfo,
    SchedulerConfig,
    SchedulerRegistry,
    SchedulingContext,
    ScorerConfig,
    UnknownPluginError,
    Unschedulable,
    default_registry,
)
from flotilla.runtime.scheduling.types import DEFAULT_FILTERS

from .builders import REGISTRY, NodeBuilder, context, node, pod, run

A100 = "A100-40GB"


def test_the_message_counts_each_reason_and_sorts_like_kube_scheduler() -> None:
    result = run(
        pod().cpu("5"),
        node("n1").used(cpu="4"),
        node("n2").taint("gpu", "bad"),
        node("n3").taint("gpu", "bad"),
    )
    assert result == Unschedulable(
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {gpu: bad}.",
        {
            "n1": ("Insufficient cpu",),
            "n2": ("node(s) had untolerated taint {gpu: bad}",),
            "n3": ("node(s) had untolerated taint {gpu: bad}",),
        },
        retryable=True,
    )


def test_a_node_with_two_reasons_counts_in_both_and_strings_sort_as_kube_does() -> None:
    nodes = [node(f"n{i:02}").used(cpu="8") for i in range(10)] + [node("x").used(cpu="8", memory="32Gi")]
    result = run(pod().cpu("1").memory("1Gi"), *nodes)
    assert isinstance(result, Unschedulable)
    # sorted as strings ("<count> <reason>"), as kube-scheduler's sort.Strings: "1 I..." < "11 ..."
    assert result.message == "0/11 nodes are available: 1 Insufficient memory, 11 Insufficient cpu."
    assert result.reasons["x"] == ("Insufficient cpu", "Insufficient memory")


def test_the_first_failing_filter_gives_the_reason() -> None:
    result = run(pod().cpu("5").select(zone="a"), node("n1").cordon().used(cpu="8"))
    assert isinstance(result, Unschedulable)
    assert result.message == "0/1 nodes are available: 1 node(s) were unschedulable."


@pytest.mark.parametrize(
    ("nodes", "retryable"),
    [
        ([node("n1").cpu("2")], False),  # too small, ever
        ([node("n1").cpu("2"), node("n2").used(cpu="6")], True),  # n2 frees up
        ([node("n1").cpu("2").cordon()], False),  # cordoned first, but too small anyway
        ([node("n1").cordon()], True),  # uncordon helps
        ([node("n1").max_pods(0)], False),
    ],
)
def test_retryable_only_while_some_node_could_ever_hold_the_pod(nodes: list[NodeBuilder], retryable: bool) -> None:
    result = run(pod().cpu("4"), *nodes)
    assert isinstance(result, Unschedulable)
    assert result.retryable is retryable


def test_no_nodes() -> None:
    result = run(pod())
    assert result == Unschedulable("no nodes available to schedule pods", {}, retryable=True)


def test_node_name_pins_the_pod() -> None:
    result = run(pod().on("n2"), node("n1"), node("n2"), node("n3"))
    assert isinstance(result, Bound) and result.node == "n2"
    result = run(pod().on("gone"), node("n1"), node("n2"))
    assert isinstance(result, Unschedulable)
    assert result.message == "0/2 nodes are available: 2 node(s) didn't match the requested node name."


def test_least_allocated_spreads_by_default_and_most_allocated_packs_when_enabled() -> None:
    nodes = [node("busy").used(cpu="6", memory="24Gi"), node("idle")]
    spread = run(pod().cpu("1").memory("1Gi"), *nodes)
    assert isinstance(spread, Bound) and spread.node == "idle"
    # idle after placing: cpu 7/8 free, memory 31/32 free; GPUPacking gives 1.0 to a CPU pod
    assert spread.score == pytest.approx((7 / 8 + 31 / 32) / 2 + 1.0)
    config = SchedulerConfig(scorers=(ScorerConfig(name="NodeResourcesMostAllocated"),))
    packed = run(pod().cpu("1").memory("1Gi"), *nodes, config=config)
    assert isinstance(packed, Bound) and packed.node == "busy"


def test_ties_are_broken_by_the_seeded_rng_reproducibly() -> None:
    nodes = [node(f"n{i}") for i in range(4)]
    picks = {seed: run(pod(), *nodes, seed=seed) for seed in range(40)}
    assert all(isinstance(r, Bound) for r in picks.values())
    again = {seed: run(pod(), *reversed(nodes), seed=seed) for seed in range(40)}
    assert picks == again  # same seed, same node, whatever order the driver passes nodes in
    counts = Counter(r.node for r in picks.values() if isinstance(r, Bound))
    assert set(counts) == {"n0", "n1", "n2", "n3"}  # every tied node can win


def test_no_rng_draw_without_a_tie() -> None:
    ctx = context(seed=7)
    before = ctx.rng.getstate()
    result = REGISTRY.bind(ctx.config).schedule(
        ctx, pod().cpu("1").build(), [node("a").build(), node("b").used(cpu="1").build()]
    )
    assert isinstance(result, Bound) and result.node == "a"
    assert ctx.rng.getstate() == before


# -- registry and config --------------------------------------------------------------------------
def test_the_default_registry_and_config() -> None:
    assert REGISTRY.filter_names == tuple(sorted(DEFAULT_FILTERS))
    assert REGISTRY.scorer_names == ("GPUPacking", "NodeResourcesLeastAllocated", "NodeResourcesMostAllocated")
    config = SchedulerConfig()
    assert config.filters == DEFAULT_FILTERS
    assert [(s.name, s.weight) for s in config.scorers] == [("NodeResourcesLeastAllocated", 1), ("GPUPacking", 1)]
    assert default_registry() is not REGISTRY


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        (
            SchedulerConfig(filters=("NodeNme",)),
            UnknownPluginError,
            "unknown scheduler filter 'NodeNme'; known filters: GPUFit",
        ),
        (SchedulerConfig(filters=("GPUPacking",)), UnknownPluginError, "unknown scheduler filter 'GPUPacking'"),
        (SchedulerConfig(scorers=(ScorerConfig(name="GPUFit"),)), UnknownPluginError, "known scorers: GPUPacking"),
        (SchedulerConfig(args={"Nope": {}}), UnknownPluginError, "args for unknown scheduler plugin 'Nope'"),
        (
            SchedulerConfig(args={"GPUHealth": {"rejct": ["EVICT"]}}),
            PluginArgsError,
            "scheduler plugin 'GPUHealth': args.rejct: unknown field",
        ),
        (
            SchedulerConfig(args={"NodeResourcesLeastAllocated": {"resources": {}}}),
            PluginArgsError,
            "scheduler plugin 'NodeResourcesLeastAllocated': args.resources",
        ),
    ],
)
def test_bind_rejects_unknown_plugins_and_bad_args(
    config: SchedulerConfig, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        REGISTRY.bind(config)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"filters": ["NodeName", "NodeName"]}, "filters: NodeName listed more than once"),
        ({"scorers": [{"name": "GPUPacking", "weight": 0}]}, "greater than 0"),
        ({"scorer": []}, "scorer"),
    ],
)
def test_the_config_is_strict(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SchedulerConfig.model_validate(raw)


def test_args_change_a_plugin() -> None:
    config = SchedulerConfig(args={"GPUHealth": {"reject": ["EVICT", "ERR", "WARN"]}})
    result = run(pod().gpus(1), node("n1").gpus(A100, 1).label("autopilot.ibm.com/gpuhealth", "WARN"), config=config)
    assert isinstance(result, Unschedulable)
    assert result.message == "0/1 nodes are available: 1 node(s) had GPU health WARN."


def test_a_framework_refuses_a_context_with_another_config() -> None:
    framework = REGISTRY.bind(SchedulerConfig(filters=("NodeName",)))
    with pytest.raises(ValueError, match="not the one this framework was bound to"):
        framework.schedule(context(), pod().build(), [node("n1").build()])


@pytest.mark.parametrize("name", REGISTRY.filter_names + REGISTRY.scorer_names)
def test_every_plugin_has_frozen_strict_params_and_a_docstring_with_its_rule(name: str) -> None:
    plugin = REGISTRY.filter(name) if name in REGISTRY.filter_names else REGISTRY.scorer(name)
    assert plugin.params_model.model_config.get("frozen") is True
    assert plugin.params_model.model_config.get("extra") == "forbid"
    doc = (plugin.fn.__doc__ or "").lower()
    assert ("rule" in doc) or ("formula" in doc)
    if name in REGISTRY.scorer_names:
        assert "tie" in doc


class NoParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def out_of_range(ctx: SchedulingContext, pod: PodInfo, nodes: Sequence[NodeInfo], params: NoParams) -> list[float]:
    """Formula: 2.0 everywhere (a broken scorer). Ties: none."""
    return [2.0] * len(nodes)


def test_a_scorer_outside_0_1_is_a_bug_reported_by_name() -> None:
    registry = SchedulerRegistry()
    registry.register_scorer("Broken", NoParams, out_of_range)
    config = SchedulerConfig(filters=(), scorers=(ScorerConfig(name="Broken"),))
    ctx = context(config=config)
    with pytest.raises(ValueError, match="scorer 'Broken' must return one score in"):
        registry.bind(config).schedule(ctx, pod().build(), [node("n1").build()])


def test_registering_twice_or_without_a_docstring_fails() -> None:
    registry = SchedulerRegistry()
    registry.register_scorer("Broken", NoParams, out_of_range)
    with pytest.raises(ValueError, match="already registered"):
        registry.register_scorer("Broken", NoParams, out_of_range)
    with pytest.raises(ValueError, match="needs a docstring"):
        registry.register_filter("Silent", NoParams, lambda ctx, pod, node, params: None)


def test_the_context_checks_its_placement_policy() -> None:
    ctx = context(placement="packing")
    assert ctx.policy.name == "packing" and ctx.placement.rng is ctx.rng
    with pytest.raises(ValueError, match="bound policy is 'first-fit'"):
        SchedulingContext(ctx.rng, ctx.placement, context().policy)
