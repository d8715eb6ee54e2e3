"""Small builders for slicer tests: GPUs by profile names, decisions as compact tuples.

gpu("GPU-A", ("1g.5gb", 0), ("3g.20gb", 4))            # an A100-40GB with two slices
gpu("GPU-B", model="H100-80GB", healthy=False)
outcome(decision) -> ("GPU-A", 1) | "NoCapacity" | "UnsupportedProfile"
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from flotilla.slicer import (
    GPUState,
    NoPlacement,
    Placement,
    PlacementConfig,
    PlacementContext,
    PlacementDecision,
    PlacementRequest,
    SlotRange,
    default_registry,
    load_catalog,
)

CATALOG = load_catalog()
REGISTRY = default_registry()
POLICIES = ("first-fit", "best-fit", "packing")


def gpu(
    uuid: str, *slices: tuple[str, int], model: str = "A100-40GB", node: str = "node-0", healthy: bool = True
) -> GPUState:
    allocations = tuple(
        SlotRange(start, CATALOG.profile(model, profile).size, f"{uuid}/{profile}@{start}", profile)
        for profile, start in slices
    )
    return GPUState(uuid, node, model, allocations, healthy)


def context(policy: str = "first-fit", seed: int = 0) -> PlacementContext:
    return PlacementContext(random.Random(seed), CATALOG, PlacementConfig(policy=policy))


def place(policy: str, profile: str, gpus: Sequence[GPUState], owner: str = "req") -> PlacementDecision:
    return REGISTRY.decide(context(policy), PlacementRequest(profile, owner), gpus)


def outcome(decision: PlacementDecision) -> tuple[str, int] | str:
    if isinstance(decision, NoPlacement):
        return decision.reason
    return decision.gpu, decision.start


def apply(gpus: Sequence[GPUState], decision: PlacementDecision) -> list[GPUState]:
    """The GPUs after a placement (unchanged after a NoPlacement)."""
    if not isinstance(decision, Placement):
        return list(gpus)
    return [g.with_allocation(decision.allocation()) if g.uuid == decision.gpu else g for g in gpus]
