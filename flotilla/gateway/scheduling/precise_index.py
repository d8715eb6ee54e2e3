"""The precise prefix-cache index: what each engine reports it holds (llm-d's precise prefix-cache scorer).

Fed by vLLM's KV-cache events, per endpoint, in the JSON form the emulator serves
(`GET /v1/kv_events`; see flotilla/serving/emulator/kvevents.py):

    {"type": "BlockStored", "block_hashes": [h...], "parent_block_hash": p | None, "token_ids": [...],
     "block_size": 16, "lora_id": 1 | None, "lora_name": "adapter" | None}
    {"type": "BlockRemoved", "block_hashes": [h...]}
    {"type": "AllBlocksCleared"}

The engine's hash function is never reproduced. A stored block is indexed by what the gateway can
compute itself: (its parent's hash, its adapter, its block_size token ids) -> its hash. To match a
request, tokenize it, cut the tokens into full blocks of `block_size`, and walk from the root
(parent None): block i is cached on the endpoint iff (hash of block i-1, adapter, tokens of block i)
is indexed there. The walk's length is the endpoint's matched blocks; the prompt's full blocks are
the total. Events with another block size than the index's never match (their token runs differ).

A hash stored twice (two requests filled the same block at once: vLLM caches both) is counted, and
leaves the index when it has been removed as many times. The adapter a request uses is its model
name when some endpoint has reported blocks under that adapter name, else none (the base model).

The default tokenizer is the vLLM emulator's (flotilla.serving.emulator.tokenizer, imported lazily:
the picker does not depend on a model server): `request.prompt` is encoded as is, so a driver routing
chat requests to the emulator puts `chat_prompt(messages)` in `prompt`. Inject another tokenizer
for other engines (the one their model uses).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flotilla.gateway.scheduling.types import InferenceRequest

Tokenize = Callable[[InferenceRequest], Sequence[int]]
BlockKey = tuple[int | None, str | None, tuple[int, ...]]
QWEN3_VOCAB = 151936  # the emulator's Qwen3 models


def emulator_tokenizer(vocab_size: int = QWEN3_VOCAB) -> Tokenize:
    """The vLLM emulator's tokenizer for a model with `vocab_size` ids, applied to `request.prompt`."""
    from flotilla.serving.emulator.tokenizer import Tokenizer

    return prompt_tokenizer(Tokenizer(vocab_size).encode)


def prompt_tokenizer(encode: Callable[[str], Sequence[int]]) -> Tokenize:
    """A request tokenizer from a text encoder (`tokenizer.encode`): it encodes `request.prompt`."""

    def tokenize(request: InferenceRequest) -> Sequence[int]:
        return encode(request.prompt)

    return tokenize


@dataclass
class _EngineBlocks:
    """One endpoint's cached blocks: how to find each (by parent, adapter, tokens), and how often it is stored."""

    children: dict[BlockKey, int] = field(default_factory=dict)
    blocks: dict[int, tuple[BlockKey, int]] = field(default_factory=dict)  # hash -> (key, times stored)


class PrecisePrefixIndex:
    """Per endpoint, the KV blocks its engine reported (implements PrefixView)."""

    def __init__(self, tokenize: Tokenize | None = None, block_size: int = 16) -> None:
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.block_size = block_size
        self._tokenize = tokenize
        self._engines: dict[str, _EngineBlocks] = {}
        self._adapters: set[str] = set()
        self._last: tuple[InferenceRequest, list[tuple[int, ...]]] | None = None
        self.ignored_events = 0  # events of an unknown type

    # -- driver side ----------------------------------------------------------------------------------
    def apply(self, address: str, events: Iterable[Mapping[str, Any]]) -> None:
        """Apply one endpoint's events, in order."""
        engine = self._engines.setdefault(address, _EngineBlocks())
        for event in events:
            kind = event.get("type")
            if kind == "BlockStored":
                self._stored(engine, event)
            elif kind == "BlockRemoved":
                for h in event.get("block_hashes") or ():
                    self._removed(engine, int(h))
            elif kind == "AllBlocksCleared":
                engine.children.clear()
                engine.blocks.clear()
            else:
                self.ignored_events += 1

    def _stored(self, engine: _EngineBlocks, event: Mapping[str, Any]) -> None:
        hashes = [int(h) for h in event.get("block_hashes") or ()]
        tokens: Sequence[int] = event.get("token_ids") or ()
        size = int(event.get("block_size") or self.block_size)
        adapter = event.get("lora_name")
        if adapter is None and event.get("lora_id") is not None:
            adapter = f"lora-id:{event['lora_id']}"  # an adapter only its id names: never a request's model
        if adapter is not None:
            self._adapters.add(adapter)
        parent = event.get("parent_block_hash")
        parent = None if parent is None else int(parent)
        for i, h in enumerate(hashes):
            run = tuple(tokens[i * size : (i + 1) * size])
            if len(run) < size:
                break  # the event carried fewer tokens than blocks: index what it described
            key: BlockKey = (parent, adapter, run)
            engine.children[key] = h
            _, count = engine.blocks.get(h, (key, 0))
            engine.blocks[h] = (key, count + 1)
            parent = h

    @staticmethod
    def _removed(engine: _EngineBlocks, h: int) -> None:
        entry = engine.blocks.get(h)
        if entry is None:
            return
        key, count = entry
        if count > 1:
            engine.blocks[h] = (key, count - 1)
            return
        del engine.blocks[h]
        if engine.children.get(key) == h:
            del engine.children[key]

    def forget(self, address: str) -> None:
        """Drop an endpoint (it left the pool; a restarted engine also sends AllBlocksCleared)."""
        self._engines.pop(address, None)

    def retain(self, addresses: Iterable[str]) -> None:
        """Keep only these endpoints."""
        keep = set(addresses)
        for address in [a for a in self._engines if a not in keep]:
            del self._engines[address]

    def size(self, address: str) -> int:
        """How many distinct block hashes the endpoint holds."""
        engine = self._engines.get(address)
        return len(engine.blocks) if engine else 0

    # -- PrefixView ---------------------------------------------------------------------------------
    def _blocks(self, request: InferenceRequest) -> list[tuple[int, ...]]:
        last = self._last
        if last is not None and last[0] is request:
            return last[1]
        if self._tokenize is None:
            self._tokenize = emulator_tokenizer()
        tokens = list(self._tokenize(request))
        size = self.block_size
        blocks = [tuple(tokens[i : i + size]) for i in range(0, len(tokens) - size + 1, size)]
        self._last = (request, blocks)
        return blocks

    def total_blocks(self, request: InferenceRequest) -> int:
        return len(self._blocks(request))

    def matched_blocks(self, request: InferenceRequest, addresses: Sequence[str]) -> Mapping[str, int]:
        """Per address, the length of the walk from the root through blocks its engine reported."""
        blocks = self._blocks(request)
        adapter = request.model if request.model in self._adapters else None
        out: dict[str, int] = {}
        for address in addresses:
            engine = self._engines.get(address)
            n = 0
            if engine is not None:
                parent: int | None = None
                children = engine.children
                for run in blocks:
                    h = children.get((parent, adapter, run))
                    if h is None:
                        break
                    parent = h
                    n += 1
            out[address] = n
        return out
