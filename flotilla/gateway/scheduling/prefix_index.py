"""The approximate prefix-cache index: what the gateway itself routed where (GAIE's prefix-cache-scorer).

The prompt text (`InferenceRequest.prompt`, as the driver renders it) is cut into blocks of
`block_chars` characters; a trailing partial block is ignored, and at most `max_blocks` blocks are
kept (longer prompts are indistinguishable past that point). Block i's hash chains the previous one:

    h(-1) = H(model)        h(i) = H(text[i*B:(i+1)*B], h(i-1))

so equal hashes mean equal prefixes for the same model. After a pick the driver calls
`record(request, address)`: every block hash of the prompt goes into that server's LRU (capacity
`lru_capacity_per_server` hashes; the least recently recorded fall out). `matched_blocks` gives,
per server, the longest run of the prompt's leading blocks present in its LRU; `total_blocks` the
prompt's number of whole blocks.

GAIE's block size is in bytes of the request body text (64 = vLLM's 16 tokens x ~4 characters per
token); here it is characters of the prompt, the same for ASCII. Hashes are blake2b (stable across
processes, so the simulator is reproducible); GAIE uses xxhash.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from flotilla.gateway.scheduling.plugins.prefix_cache_scorer import PrefixCacheScorerParams
from flotilla.gateway.scheduling.types import InferenceRequest

if TYPE_CHECKING:
    from flotilla.gateway.scheduling.profile import Profile


def _h(data: bytes, previous: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=8, key=previous).digest()


class ApproximatePrefixIndex:
    """Per server, an LRU of the block hashes the gateway routed there (implements PrefixView)."""

    def __init__(self, block_chars: int = 64, max_blocks: int = 256, lru_capacity_per_server: int = 31250) -> None:
        if block_chars < 1 or max_blocks < 1 or lru_capacity_per_server < 1:
            raise ValueError("block_chars, max_blocks and lru_capacity_per_server must be >= 1")
        self.block_chars = block_chars
        self.max_blocks = max_blocks
        self.lru_capacity_per_server = lru_capacity_per_server
        self._servers: dict[str, OrderedDict[bytes, None]] = {}
        self._last: tuple[InferenceRequest, list[bytes]] | None = None

    def block_hashes(self, request: InferenceRequest) -> list[bytes]:
        """The chained hashes of the prompt's whole blocks (at most max_blocks); the last request's are cached."""
        last = self._last
        if last is not None and last[0] is request:
            return last[1]
        text, size = request.prompt, self.block_chars
        count = min(len(text) // size, self.max_blocks)
        previous = _h(request.model.encode(), b"flotilla-prefix")
        hashes: list[bytes] = []
        for i in range(count):
            previous = _h(text[i * size : (i + 1) * size].encode(), previous)
            hashes.append(previous)
        self._last = (request, hashes)
        return hashes

    # -- PrefixView ---------------------------------------------------------------------------------
    def total_blocks(self, request: InferenceRequest) -> int:
        return len(self.block_hashes(request))

    def matched_blocks(self, request: InferenceRequest, addresses: Sequence[str]) -> Mapping[str, int]:
        """Per address, how many of the prompt's leading blocks are in its LRU (lookups do not refresh it)."""
        hashes = self.block_hashes(request)
        out: dict[str, int] = {}
        for address in addresses:
            lru = self._servers.get(address)
            n = 0
            if lru:
                for h in hashes:
                    if h not in lru:
                        break
                    n += 1
            out[address] = n
        return out

    # -- driver side ----------------------------------------------------------------------------------
    def record(self, request: InferenceRequest, address: str) -> None:
        """After a pick: the prompt's blocks are now (believed to be) cached on `address`."""
        lru = self._servers.setdefault(address, OrderedDict())
        for h in self.block_hashes(request):
            lru[h] = None
            lru.move_to_end(h)
        while len(lru) > self.lru_capacity_per_server:
            lru.popitem(last=False)

    def forget(self, address: str) -> None:
        """Drop a server (it left the pool, or restarted with an empty cache)."""
        self._servers.pop(address, None)

    def retain(self, addresses: Iterable[str]) -> None:
        """Keep only these servers (GAIE drops pods no longer in the pool)."""
        keep = set(addresses)
        for address in [a for a in self._servers if a not in keep]:
            del self._servers[address]

    def size(self, address: str) -> int:
        """How many block hashes the server's LRU holds."""
        return len(self._servers.get(address, ()))

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(self._servers)


def approximate_index_for(profiles: Iterable[Profile]) -> ApproximatePrefixIndex:
    """The index the driver shares across `profiles`, configured by their prefix-cache-scorer parameters
    (GAIE's blockSize, maxPrefixBlocksToMatch, lruCapacityPerServer); defaults if none has one.
    ValueError when two profiles configure it differently."""
    settings: set[PrefixCacheScorerParams] = set()
    for profile in profiles:
        for plugin in profile.plugins:
            if plugin.type == "prefix-cache-scorer" and isinstance(plugin.params, PrefixCacheScorerParams):
                settings.add(plugin.params)
    if len(settings) > 1:
        raise ValueError(f"profiles configure prefix-cache-scorer differently: {sorted(map(repr, settings))}")
    p = settings.pop() if settings else PrefixCacheScorerParams()
    return ApproximatePrefixIndex(p.blockSize, p.maxPrefixBlocksToMatch, p.lruCapacityPerServer)
