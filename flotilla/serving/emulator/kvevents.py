"""vLLM's KV-cache events (vllm/distributed/kv_events.py): what an engine tells a KV-aware router.

    BlockStored(block_hashes, parent_block_hash, token_ids, block_size, lora_id, medium, lora_name)
        full blocks just cached, in chain order: block_hashes[0]'s parent is parent_block_hash (None
        for a prompt's first block); token_ids are the blocks' tokens, block_size per hash
    BlockRemoved(block_hashes, medium)   blocks evicted from the prefix cache
    AllBlocksCleared()                   the prefix cache was reset

vLLM publishes them in batches (KVEventBatch: ts, events, data_parallel_rank) over ZMQ as msgpack,
tagged array-like structs (`["BlockStored", [hashes], parent, [tokens], 16, null, "GPU"]`) with a
sequence number per batch. The emulator keeps the batches in a `KVEventLog` (sequence numbers,
bounded) that the server exposes over HTTP (`GET /v1/kv_events?since=SEQ`, long-poll) as JSON
objects with a `type` field; `to_wire` gives vLLM's array-like form.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

MEDIUM = "GPU"


@dataclass(frozen=True, slots=True)
class BlockStored:
    block_hashes: tuple[int, ...]
    parent_block_hash: int | None
    token_ids: tuple[int, ...]
    block_size: int
    lora_id: int | None
    lora_name: str | None = None
    medium: str = MEDIUM

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "BlockStored",
            "block_hashes": list(self.block_hashes),
            "parent_block_hash": self.parent_block_hash,
            "token_ids": list(self.token_ids),
            "block_size": self.block_size,
            "lora_id": self.lora_id,
            "lora_name": self.lora_name,
            "medium": self.medium,
        }

    def to_wire(self) -> list[Any]:
        return [
            "BlockStored",
            list(self.block_hashes),
            self.parent_block_hash,
            list(self.token_ids),
            self.block_size,
            self.lora_id,
            self.medium,
            self.lora_name,
        ]


@dataclass(frozen=True, slots=True)
class BlockRemoved:
    block_hashes: tuple[int, ...]
    medium: str = MEDIUM

    def to_json(self) -> dict[str, Any]:
        return {"type": "BlockRemoved", "block_hashes": list(self.block_hashes), "medium": self.medium}

    def to_wire(self) -> list[Any]:
        return ["BlockRemoved", list(self.block_hashes), self.medium]


@dataclass(frozen=True, slots=True)
class AllBlocksCleared:
    def to_json(self) -> dict[str, Any]:
        return {"type": "AllBlocksCleared"}

    def to_wire(self) -> list[Any]:
        return ["AllBlocksCleared"]


KVCacheEvent = BlockStored | BlockRemoved | AllBlocksCleared


@dataclass(frozen=True, slots=True)
class KVEventBatch:
    """One engine step's events: `seq` counts batches from 1 (ZMQ's sequence frame), `ts` is engine time."""

    seq: int
    ts: float
    events: tuple[KVCacheEvent, ...]
    data_parallel_rank: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "ts": self.ts,
            "events": [e.to_json() for e in self.events],
            "data_parallel_rank": self.data_parallel_rank,
        }

    def to_wire(self) -> list[Any]:
        return [self.ts, [e.to_wire() for e in self.events], self.data_parallel_rank]


class KVEventLog:
    """The last `capacity` batches, by sequence number (vLLM's publisher keeps a replay buffer too)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._batches: deque[KVEventBatch] = deque(maxlen=capacity)
        self.last_seq = 0

    def append(self, ts: float, events: list[KVCacheEvent]) -> KVEventBatch | None:
        """Record one step's events (nothing for an empty list)."""
        if not events:
            return None
        self.last_seq += 1
        batch = KVEventBatch(self.last_seq, ts, tuple(events))
        self._batches.append(batch)
        return batch

    def since(self, seq: int, limit: int = 1000) -> list[KVEventBatch]:
        """Batches with a sequence number above `seq`, oldest first (those already dropped are gone)."""
        if seq >= self.last_seq:
            return []
        first = self.last_seq - len(self._batches) + 1
        start = max(seq + 1, first) - first
        return [self._batches[i] for i in range(start, min(len(self._batches), start + limit))]

    @property
    def first_seq(self) -> int:
        """The oldest sequence number still kept (last_seq + 1 when empty)."""
        return self.last_seq - len(self._batches) + 1
