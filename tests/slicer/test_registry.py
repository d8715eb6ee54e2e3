"""The placement policy registry: names, params validation, plugin shape, and the bound policy's guard."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from flotilla.slicer import (
    Choice,
    GPUState,
    Placement,
    PlacementConfig,
    PlacementContext,
    PlacementRegistry,
    PlacementRequest,
    PolicyParamsError,
    PolicyViolation,
    UnknownPolicyError,
    default_registry,
)

from .builders import REGISTRY, context, gpu


def test_the_default_registry_has_every_built_in_policy() -> None:
    assert REGISTRY.names == ("best-fit", "first-fit", "packing")
    assert default_registry() is not REGISTRY  # a new registry each time: no singleton
    assert PlacementConfig().policy == "first-fit"  # what DAS does


@pytest.mark.parametrize("name", ["firstfit", "best_fit", "", "Packing"])
def test_an_unknown_policy_lists_the_known_ones(name: str) -> None:
    with pytest.raises(UnknownPolicyError, match="known policies: best-fit, first-fit, packing"):
        REGISTRY.bind(PlacementConfig(policy=name))


@pytest.mark.parametrize(
    ("policy", "params", "message"),
    [
        ("first-fit", {"order": "random"}, "placement policy 'first-fit': params.order: unknown field"),
        ("packing", {"weights": {"7g.40gb": 0}}, "placement policy 'packing': params.weights: unknown field"),
        ("best-fit", {"x": 1, "y": 2}, "params.x: unknown field .*; params.y: unknown field"),
    ],
)
def test_params_are_validated_by_the_policy(policy: str, params: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyParamsError, match=message):
        REGISTRY.bind(PlacementConfig(policy=policy, params=params))


def test_decide_binds_the_context_config_and_a_bound_policy_refuses_another() -> None:
    request = PlacementRequest("3g.20gb", "r")
    decision = REGISTRY.decide(context("packing"), request, [gpu("GPU-A")])
    assert isinstance(decision, Placement) and decision.start == 4
    with pytest.raises(ValueError, match="context config names placement policy 'packing', not 'first-fit'"):
        REGISTRY.bind(PlacementConfig(policy="first-fit")).place(context("packing"), request, [gpu("GPU-A")])


def test_the_config_itself_forbids_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="polcy"):
        PlacementConfig.model_validate({"polcy": "packing"})


@pytest.mark.parametrize("name", REGISTRY.names)
def test_every_plugin_has_frozen_strict_params_and_states_its_formula_and_ties(name: str) -> None:
    plugin = REGISTRY.plugin(name)
    assert plugin.params_model.model_config.get("frozen") is True
    assert plugin.params_model.model_config.get("extra") == "forbid"
    doc = plugin.doc.lower()
    assert "formula" in doc or "c(m)" in doc
    assert "tie" in doc


class EmptyParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def unhealthy_first(
    ctx: PlacementContext, request: PlacementRequest, gpus: Sequence[GPUState], params: EmptyParams
) -> Choice | None:
    """Always GPU 0, start 0 (a broken policy for the guard test). Ties: none."""
    return Choice(0, 0)


def test_registering_twice_or_without_a_docstring_is_refused() -> None:
    registry = PlacementRegistry()
    registry.register("broken", EmptyParams, unhealthy_first)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("broken", EmptyParams, unhealthy_first)

    def undocumented(*args: object) -> Choice | None:
        return None

    with pytest.raises(ValueError, match="needs a docstring"):
        registry.register("undocumented", EmptyParams, undocumented)


@pytest.mark.parametrize(
    "gpus",
    [
        [gpu("GPU-A", healthy=False)],  # unhealthy
        [gpu("GPU-A", ("1g.5gb", 0))],  # slot 0 taken
        [gpu("GPU-A", model="H100-80GB")],  # the model has no 3g.20gb
    ],
)
def test_a_policy_that_breaks_the_contract_is_caught(gpus: list[GPUState]) -> None:
    registry = PlacementRegistry()
    registry.register("broken", EmptyParams, unhealthy_first)
    policy = registry.bind(PlacementConfig(policy="broken"))
    with pytest.raises(PolicyViolation, match="placement policy 'broken' chose GPU GPU-A start 0"):
        policy.place(context("broken"), PlacementRequest("3g.20gb", "r"), gpus)
