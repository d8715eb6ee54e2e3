"""vLLM V1's paged KV cache with automatic prefix caching (vllm/v1/core/kv_cache_manager.py, block_pool.py).

- Blocks of `block_size` (16) tokens, ids 0..N-1; block 0 is the null block and never holds tokens.
- The free block queue holds every block with ref_cnt 0 in eviction order (LRU): allocation pops
  from the head; a freed request's blocks are appended tail-first (its last block is evicted first).
- A full block is cached under its hash: hash(parent block's hash, the block's token ids, extra key),
  the extra key being the LoRA adapter (a stable hash of its name; 0 without one); the first
  block's parent is a fixed seed hash. Python's hash of a tuple of ints is the same in every
  process, so replicas give a prefix the same hashes (vLLM needs one PYTHONHASHSEED for that).
  Cached blocks stay findable while in the free queue, until a new allocation pops (evicts)
  them: BlockRemoved.
- On admission, the longest cached prefix of whole blocks is reused (ref counts), at most
  num_tokens - 1 tokens (the last token is always recomputed to get logits); each lookup is
  counted in the prefix-cache stats (queries += num_tokens, hits += cached tokens), separately
  for requests that were preempted before, as vLLM does.
- Blocks become cached (BlockStored) when a step schedules the tokens that fill them.

Usage = 1 - free blocks / (N - 1), which counts cached-but-free blocks as free (vLLM's kv_cache_usage_perc).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from flotilla.serving.emulator.kvevents import AllBlocksCleared, BlockRemoved, BlockStored, KVCacheEvent
from flotilla.serving.emulator.request import Request

MASK64 = (1 << 64) - 1


@dataclass
class PrefixCacheStats:
    """vLLM's PrefixCacheStats, cumulative: lookups of new requests and of preempted ones, in tokens."""

    requests: int = 0
    queries: int = 0
    hits: int = 0
    preempted_requests: int = 0
    preempted_queries: int = 0
    preempted_hits: int = 0

    def record(self, num_tokens: int, num_hits: int, preempted: bool) -> None:
        if preempted:
            self.preempted_requests += 1
            self.preempted_queries += num_tokens
            self.preempted_hits += num_hits
        else:
            self.requests += 1
            self.queries += num_tokens
            self.hits += num_hits


class KVCacheManager:
    """Block allocation, prefix caching and KV events for one engine."""

    def __init__(
        self, num_gpu_blocks: int, block_size: int = 16, enable_caching: bool = True, hash_seed: int = 0
    ) -> None:
        if num_gpu_blocks < 2:
            raise ValueError(f"num_gpu_blocks must be >= 2 (block 0 is the null block), got {num_gpu_blocks}")
        self.num_gpu_blocks, self.block_size, self.enable_caching = num_gpu_blocks, block_size, enable_caching
        # vLLM's NONE_HASH (the first block's parent): fixed, so every emulator process hashes alike
        self.none_hash = int.from_bytes(
            hashlib.blake2b(f"flotilla-kv:{hash_seed}".encode(), digest_size=8).digest(), "big"
        )
        self.ref_cnt = [0] * num_gpu_blocks
        self.block_hash: list[int | None] = [None] * num_gpu_blocks
        self.free: OrderedDict[int, None] = OrderedDict.fromkeys(range(1, num_gpu_blocks))
        self.cached: dict[int, dict[int, None]] = {}  # hash -> block ids (duplicates are possible, as in vLLM)
        self.req_blocks: dict[str, list[int]] = {}
        self.num_cached_blocks: dict[str, int] = {}
        self.events: list[KVCacheEvent] = []
        self.stats = PrefixCacheStats()

    # -- state --------------------------------------------------------------------------------
    @property
    def num_free_blocks(self) -> int:
        return len(self.free)

    @property
    def usage(self) -> float:
        """Fraction of the (non-null) blocks held by requests."""
        return 1.0 - len(self.free) / (self.num_gpu_blocks - 1)

    @property
    def num_cached_hashes(self) -> int:
        return len(self.cached)

    def blocks_of(self, request_id: str) -> list[int]:
        return self.req_blocks.get(request_id, [])

    def take_events(self) -> list[KVCacheEvent]:
        events, self.events = self.events, []
        return events

    # -- hashing ------------------------------------------------------------------------------
    def ensure_block_hashes(self, request: Request, num_blocks: int) -> list[int]:
        """The hashes of the request's first `num_blocks` full blocks (computed once, kept on the request)."""
        hashes, tokens, size = request.block_hashes, request.all_token_ids, self.block_size
        n = len(hashes)
        if n < num_blocks:
            parent, extra = (hashes[-1] if n else self.none_hash), request.hash_extra
            while n < num_blocks:
                parent = hash((parent, tuple(tokens[n * size : (n + 1) * size]), extra)) & MASK64
                hashes.append(parent)
                n += 1
        return hashes

    # -- prefix lookup --------------------------------------------------------------------------
    def get_computed_blocks(self, request: Request) -> tuple[list[int], int]:
        """The longest cached prefix (block ids, tokens), at most num_tokens - 1 tokens; recorded in stats."""
        if not self.enable_caching:
            return [], 0
        num_blocks = (request.num_tokens - 1) // self.block_size
        hit: list[int] = []
        cached = self.cached
        for h in self.ensure_block_hashes(request, num_blocks)[:num_blocks]:
            ids = cached.get(h)
            if not ids:
                break
            hit.append(next(iter(ids)))
        num_hit_tokens = len(hit) * self.block_size
        self.stats.record(request.num_tokens, num_hit_tokens, request.num_preemptions > 0)
        return hit, num_hit_tokens

    # -- allocation -----------------------------------------------------------------------------
    def allocate_slots(
        self,
        request: Request,
        num_new_tokens: int,
        num_new_computed_tokens: int = 0,
        new_computed_blocks: list[int] | None = None,
    ) -> bool:
        """Blocks for `num_new_tokens` more tokens (after the prefix hit, if any); False when too few are
        free (nothing changes then). Full blocks among the scheduled tokens become cached."""
        rid, size = request.request_id, self.block_size
        computed = new_computed_blocks or []
        blocks = self.req_blocks.get(rid)
        num_computed = request.num_computed_tokens + num_new_computed_tokens
        num_tokens = num_computed + num_new_tokens
        have = (len(blocks) if blocks is not None else 0) + len(computed)
        num_new = -(-num_tokens // size) - have
        if num_new > 0 or computed:
            ref_cnt = self.ref_cnt
            evictable = sum(1 for b in computed if ref_cnt[b] == 0)
            if max(num_new, 0) + evictable > len(self.free):
                return False
        if blocks is None:
            blocks = self.req_blocks[rid] = []
            self.num_cached_blocks[rid] = len(computed)
        if computed:
            self._touch(computed)
            blocks.extend(computed)
        if num_new > 0:
            self._allocate(blocks, num_new)
        if self.enable_caching:
            self._cache_full_blocks(request, blocks, min(num_tokens, request.num_tokens) // size)
        return True

    def _touch(self, blocks: list[int]) -> None:
        ref_cnt, free = self.ref_cnt, self.free
        for b in blocks:
            if ref_cnt[b] == 0:
                del free[b]
            ref_cnt[b] += 1

    def _allocate(self, blocks: list[int], count: int) -> None:
        free, ref_cnt, block_hash = self.free, self.ref_cnt, self.block_hash
        for _ in range(count):
            b, _none = free.popitem(last=False)
            h = block_hash[b]
            if h is not None:  # a cached block at the head of the LRU queue: evict it
                ids = self.cached[h]
                del ids[b]
                if not ids:
                    del self.cached[h]
                block_hash[b] = None
                self.events.append(BlockRemoved((h,)))
            ref_cnt[b] = 1
            blocks.append(b)

    def _cache_full_blocks(self, request: Request, blocks: list[int], num_full: int) -> None:
        rid = request.request_id
        start = self.num_cached_blocks[rid]
        if num_full <= start:
            return
        hashes = self.ensure_block_hashes(request, num_full)
        block_hash, cached = self.block_hash, self.cached
        for i in range(start, num_full):
            b, h = blocks[i], hashes[i]
            block_hash[b] = h
            ids = cached.get(h)
            if ids is None:
                cached[h] = {b: None}
            else:
                ids[b] = None
        self.num_cached_blocks[rid] = num_full
        size, lora = self.block_size, request.lora
        self.events.append(
            BlockStored(
                block_hashes=tuple(hashes[start:num_full]),
                parent_block_hash=hashes[start - 1] if start > 0 else None,
                token_ids=tuple(request.all_token_ids[start * size : num_full * size]),
                block_size=size,
                lora_id=lora.lora_int_id if lora is not None else None,
                lora_name=lora.lora_name if lora is not None else None,
            )
        )

    def free_request(self, request: Request) -> None:
        """Release the request's blocks, last block first (so it is evicted first); cached ones stay findable."""
        rid = request.request_id
        blocks = self.req_blocks.pop(rid, None)
        self.num_cached_blocks.pop(rid, None)
        if not blocks:
            return
        ref_cnt, free = self.ref_cnt, self.free
        for b in reversed(blocks):
            ref_cnt[b] -= 1
            if ref_cnt[b] == 0:
                free[b] = None

    def reset_prefix_cache(self) -> bool:
        """Forget every cached block (AllBlocksCleared); refused (False) while requests hold blocks."""
        if len(self.free) != self.num_gpu_blocks - 1:
            return False
        self.cached.clear()
        self.block_hash = [None] * self.num_gpu_blocks
        self.events.append(AllBlocksCleared())
        return True
