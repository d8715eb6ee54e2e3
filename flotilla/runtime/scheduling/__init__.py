"""The node scheduler: a pure policy (kube-scheduler's filter-then-score framework) that picks a node,
and on it the GPUs and MIG slots, for one pod.

    ctx = SchedulingContext.of(random.Random(0), load_catalog())       # SchedulerConfig(), first-fit slices
    framework = default_registry().bind(ctx.config)                   # unknown plugins, bad args fail here
    result = framework.schedule(ctx, pod_info(pod_json), nodes)       # Bound | Unschedulable

types.py: the snapshot (NodeInfo, PodInfo), config, context, result; podinfo.py: Pod JSON -> PodInfo;
devices.py: the device plan on one node (the slicer places MIG slices); framework.py: registry and
cycle; plugins/: one module per filter and scorer, each stating its rule or formula.
"""

from flotilla.runtime.scheduling.devices import DevicePlan, DeviceShortfall, plan_devices
from flotilla.runtime.scheduling.framework import (
    Framework,
    PluginArgsError,
    SchedulerRegistry,
    UnknownPluginError,
)
from flotilla.runtime.scheduling.plugins import default_registry
from flotilla.runtime.scheduling.podinfo import PodSpecError, pod_info
from flotilla.runtime.scheduling.types import (
    Bound,
    DeviceAssignment,
    FilterStatus,
    NodeInfo,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    PodInfo,
    SchedulerConfig,
    ScheduleResult,
    SchedulingContext,
    ScorerConfig,
    Unschedulable,
    canonical_amount,
    mig_resource,
)

__all__ = [
    "Bound",
    "DeviceAssignment",
    "DevicePlan",
    "DeviceShortfall",
    "FilterStatus",
    "Framework",
    "NodeInfo",
    "NodeSelectorRequirement",
    "NodeSelectorTerm",
    "PluginArgsError",
    "PodInfo",
    "PodSpecError",
    "ScheduleResult",
    "SchedulerConfig",
    "SchedulerRegistry",
    "SchedulingContext",
    "ScorerConfig",
    "UnknownPluginError",
    "Unschedulable",
    "canonical_amount",
    "default_registry",
    "mig_resource",
    "plan_devices",
    "pod_info",
]
