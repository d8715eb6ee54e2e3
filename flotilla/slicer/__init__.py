"""Accelerator partitioning: MIG profile tables, placement policies (pure) and the fragmentation metric.

    ctx = PlacementContext(random.Random(0), load_catalog(), PlacementConfig(policy="packing"))
    policy = default_registry().bind(ctx.config)               # unknown names and bad params fail here
    decision = policy.place(ctx, PlacementRequest("3g.20gb", "pod-a"), gpus)   # Placement | NoPlacement

See placement.py for the contract, plugins/ for the policies and their formulas.
"""

from flotilla.slicer.fragmentation import Fragmentation, fragmentation, stranded_slots
from flotilla.slicer.placement import (
    BoundPolicy,
    Choice,
    GPUState,
    NoPlacement,
    Placement,
    PlacementConfig,
    PlacementContext,
    PlacementDecision,
    PlacementRegistry,
    PlacementRequest,
    PolicyParamsError,
    PolicyViolation,
    SlotRange,
    UnknownPolicyError,
    stable_order,
)
from flotilla.slicer.plugins import default_registry
from flotilla.slicer.profiles import (
    GPUModel,
    MigProfile,
    ProfileCatalog,
    ProfileDataError,
    UnknownGPUModelError,
    UnknownProfileError,
    load_catalog,
    load_profile_file,
)

__all__ = [
    "BoundPolicy",
    "Choice",
    "Fragmentation",
    "GPUModel",
    "GPUState",
    "MigProfile",
    "NoPlacement",
    "Placement",
    "PlacementConfig",
    "PlacementContext",
    "PlacementDecision",
    "PlacementRegistry",
    "PlacementRequest",
    "PolicyParamsError",
    "PolicyViolation",
    "ProfileCatalog",
    "ProfileDataError",
    "SlotRange",
    "UnknownGPUModelError",
    "UnknownPolicyError",
    "UnknownProfileError",
    "default_registry",
    "fragmentation",
    "load_catalog",
    "load_profile_file",
    "stable_order",
    "stranded_slots",
]
