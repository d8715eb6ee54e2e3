"""LoRA adapter residency, as vLLM's LRU worker LoRA manager keeps it.

An engine serves the adapters registered at start (`--lora-modules`), each with an id >= 1. A step's
batch may use at most `max_loras` distinct adapters (the scheduler enforces it). Before the step runs,
every adapter of the batch must sit in one of the `max_loras` GPU slots: one that does not is copied
in (bytes / PCIe bandwidth), replacing the least recently used adapter the batch does not need, and
read from disk first (a fixed load overhead) unless it is among the `max_cpu_loras` adapters kept in
host memory (also LRU). Those load times add to the step's time.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence

from flotilla.serving.emulator.request import LoraRequest


class UnknownLoraError(LookupError):
    """A request named an adapter the engine does not serve."""


class LoraAdapters:
    """The registered adapters and which of them are on the GPU and in host memory."""

    def __init__(self, names: Sequence[str], max_loras: int, max_cpu_loras: int | None = None) -> None:
        if names and max_loras < 1:
            raise ValueError("max_loras must be >= 1 when LoRA adapters are served")
        if len(set(names)) != len(names):
            raise ValueError(f"LoRA adapter names repeat: {list(names)}")
        self.adapters = {name: LoraRequest(name, i + 1) for i, name in enumerate(names)}
        self.max_loras = max_loras
        self.max_cpu_loras = max(max_cpu_loras or max_loras, max_loras)
        self.gpu: OrderedDict[str, None] = OrderedDict()
        self.cpu: OrderedDict[str, None] = OrderedDict()

    def get(self, name: str) -> LoraRequest:
        try:
            return self.adapters[name]
        except KeyError:
            raise UnknownLoraError(f"no LoRA adapter {name!r}; served: {sorted(self.adapters)}") from None

    def activate(self, names: Iterable[str]) -> list[tuple[str, bool]]:
        """Make `names` resident on the GPU; returns the loads done as (name, read from disk)."""
        needed = set(names)
        loads: list[tuple[str, bool]] = []
        for name in sorted(needed):
            if name in self.gpu:
                self.gpu.move_to_end(name)
                continue
            from_disk = name not in self.cpu
            self._keep(self.cpu, name, self.max_cpu_loras, set())
            self._keep(self.gpu, name, self.max_loras, needed)
            loads.append((name, from_disk))
        return loads

    @staticmethod
    def _keep(cache: OrderedDict[str, None], name: str, capacity: int, pinned: set[str]) -> None:
        if name in cache:
            cache.move_to_end(name)
            return
        while len(cache) >= capacity:
            victim = next((n for n in cache if n not in pinned), None)
            if victim is None:
                break
            del cache[victim]
        cache[name] = None
