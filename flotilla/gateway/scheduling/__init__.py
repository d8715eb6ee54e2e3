"""The endpoint picker's scheduling layer (pure): plugins, profiles, prefix indexes, sessions,
saturation and flow control. See docs/gateway.md."""

from __future__ import annotations

from flotilla.gateway.scheduling.config import (
    EndpointPickerConfig,
    ProfileConfigError,
    load_profiles,
    profiles_from_document,
)
from flotilla.gateway.scheduling.flowcontrol import FlowController, Shed, Ticket
from flotilla.gateway.scheduling.plugins import default_registry
from flotilla.gateway.scheduling.precise_index import PrecisePrefixIndex, emulator_tokenizer, prompt_tokenizer
from flotilla.gateway.scheduling.prefix_index import ApproximatePrefixIndex, approximate_index_for
from flotilla.gateway.scheduling.profile import PluginViolation, Profile, RoundRobinCounter
from flotilla.gateway.scheduling.registry import (
    BoundPlugin,
    PluginParams,
    PluginParamsError,
    PluginSpec,
    SchedulerRegistry,
    UnknownPluginError,
)
from flotilla.gateway.scheduling.saturation import SaturationDetector
from flotilla.gateway.scheduling.sessions import SessionTable
from flotilla.gateway.scheduling.types import (
    DESTINATION_HEADER,
    OBJECTIVE_HEADER,
    SERVED_HEADER,
    SESSION_HEADER,
    Endpoint,
    EndpointMetrics,
    EndpointSnapshot,
    InferenceRequest,
    NoEndpoint,
    Pick,
    PickResult,
    PrefixView,
    SchedulingContext,
    SessionView,
)

__all__ = [
    "DESTINATION_HEADER",
    "OBJECTIVE_HEADER",
    "SERVED_HEADER",
    "SESSION_HEADER",
    "ApproximatePrefixIndex",
    "BoundPlugin",
    "Endpoint",
    "EndpointMetrics",
    "EndpointPickerConfig",
    "EndpointSnapshot",
    "FlowController",
    "InferenceRequest",
    "NoEndpoint",
    "Pick",
    "PickResult",
    "PluginParams",
    "PluginParamsError",
    "PluginSpec",
    "PluginViolation",
    "PrecisePrefixIndex",
    "PrefixView",
    "Profile",
    "ProfileConfigError",
    "RoundRobinCounter",
    "SaturationDetector",
    "SchedulerRegistry",
    "SchedulingContext",
    "SessionTable",
    "SessionView",
    "Shed",
    "Ticket",
    "UnknownPluginError",
    "approximate_index_for",
    "default_registry",
    "emulator_tokenizer",
    "load_profiles",
    "profiles_from_document",
    "prompt_tokenizer",
]
