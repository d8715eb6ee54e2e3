"""The scheduling pieces the front door drives, as the seams it calls them through.

The policies live in `flotilla.gateway.scheduling` (pure, shared with the simulator and the Envoy
picker); the front door only needs these shapes, so tests and other pickers can stand in:

    Picker          .pick(ctx, request, endpoints) -> Pick | NoEndpoint   (a scheduling Profile)
    PrefixRecorder  a PrefixView the driver feeds: .record(request, address) after each pick
    KVEventIndex    a PrefixView fed by engines' KV events: .apply(address, events)
    SessionRecorder a SessionView the driver feeds: .record(session, address, now)
    Saturation      .saturated(endpoints) -> bool   (GAIE's saturation detector)
    FlowControl     await .acquire(request, tenant, saturated) (raises on shedding), .release();
                    the front door keeps one per pool (GAIE: one per endpoint picker), made by `flow`

`default_scheduling()` builds the real ones from `flotilla.gateway.scheduling`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from flotilla.gateway.scheduling.types import (
    EndpointSnapshot,
    InferenceRequest,
    PickResult,
    PrefixView,
    SchedulingContext,
    SessionView,
)


class Picker(Protocol):
    def pick(
        self, ctx: SchedulingContext, request: InferenceRequest, endpoints: Sequence[EndpointSnapshot]
    ) -> PickResult: ...


class PrefixRecorder(PrefixView, Protocol):
    def record(self, request: InferenceRequest, address: str) -> None: ...


class KVEventIndex(PrefixView, Protocol):
    def apply(self, address: str, events: Sequence[Mapping[str, Any]]) -> None: ...


class SessionRecorder(SessionView, Protocol):
    def record(self, session: str, address: str, now: float) -> None: ...


class Saturation(Protocol):
    def saturated(self, endpoints: Sequence[EndpointSnapshot]) -> bool: ...


class FlowControl(Protocol):
    async def acquire(self, request: InferenceRequest, tenant: str, saturated: Callable[[], bool]) -> None: ...

    def release(self) -> None: ...


@dataclass
class Scheduling:
    """Everything the front door consults to route one request; None: that piece is off."""

    profiles: Mapping[str, Picker]
    prefix: PrefixRecorder | None = None
    precise_prefix: KVEventIndex | None = None
    sessions: SessionRecorder | None = None
    saturation: Saturation | None = None
    flow: Callable[[], FlowControl] | None = None  # makes one pool's flow controller
    shed_errors: tuple[type[BaseException], ...] = field(default=())


def default_scheduling(
    profile_file: Path | None = None,
    *,
    kv_events_vocab: int | None = None,
    queue_threshold: int = 5,
    kv_threshold: float = 0.8,
    max_queue: int = 1000,
    max_wait_seconds: float = 30.0,
) -> Scheduling:
    """The built-in profiles (plus those in `profile_file`), the approximate prefix index (configured
    by the profiles' prefix-cache-scorer), the session table, GAIE's saturation detector and flow
    control. With `kv_events_vocab`, also the precise prefix index, tokenizing prompts as the vLLM
    emulator does for a model with that many token ids (Qwen3: 151936, SmolLM2: 49152)."""
    from flotilla.gateway import scheduling as s

    profiles = s.load_profiles(profile_file)
    precise = None
    if kv_events_vocab is not None:
        sizes = {
            int(getattr(plugin.params, "blockSize", 16))
            for profile in profiles.values()
            if (plugin := profile.plugin("precise-prefix-cache-scorer")) is not None
        }
        block_size = sizes.pop() if len(sizes) == 1 else 16
        precise = s.PrecisePrefixIndex(s.emulator_tokenizer(kv_events_vocab), block_size=block_size)
    return Scheduling(
        profiles=profiles,
        prefix=s.approximate_index_for(profiles.values()),
        precise_prefix=precise,
        sessions=s.SessionTable(),
        saturation=s.SaturationDetector(queue_threshold=queue_threshold, kv_threshold=kv_threshold),
        flow=lambda: s.FlowController(max_queue=max_queue, max_wait_seconds=max_wait_seconds),
        shed_errors=(s.Shed,),
    )


def retain(index: object, addresses: Iterable[str]) -> None:
    """Drop what an index holds for servers no longer in the topology (when it can)."""
    method = getattr(index, "retain", None)
    if callable(method):
        method(list(addresses))


def forget_endpoints(sessions: object, addresses: Iterable[str]) -> None:
    """Unpin the sessions of endpoints that left (when the table can)."""
    method = getattr(sessions, "forget_endpoint", None)
    if callable(method):
        for address in addresses:
            method(address)
