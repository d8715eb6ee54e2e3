"""The paged KV cache: allocation, prefix hits, LRU eviction, and the KV events with their hashes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from flotilla.serving.emulator.kvcache import MASK64, KVCacheManager
from flotilla.serving.emulator.kvevents import AllBlocksCleared, BlockRemoved, BlockStored, KVEventLog
from flotilla.serving.emulator.request import LoraRequest, Request

from .builders import prompt


def req(rid: str, tokens: list[int], lora: LoraRequest | None = None) -> Request:
    return Request(rid, tokens, max_tokens=8, output_len=8, arrival_time=0.0, lora=lora)


def admit(kv: KVCacheManager, r: Request) -> int:
    """What the scheduler does for a waiting request: reuse the cached prefix, allocate the rest."""
    blocks, hit = kv.get_computed_blocks(r)
    assert kv.allocate_slots(r, r.num_tokens - hit, hit, blocks)
    r.num_computed_tokens = r.num_tokens
    return hit


def test_blocks_are_allocated_per_16_tokens_and_freed():
    kv = KVCacheManager(num_gpu_blocks=11)  # 10 usable: block 0 is the null block
    r = req("a", prompt(40))
    admit(kv, r)
    assert len(kv.blocks_of("a")) == 3 and 0 not in kv.blocks_of("a")
    assert kv.num_free_blocks == 7 and kv.usage == pytest.approx(0.3)
    kv.free_request(r)
    assert kv.num_free_blocks == 10 and kv.usage == 0.0


def test_allocation_fails_without_enough_free_blocks_and_changes_nothing():
    kv = KVCacheManager(num_gpu_blocks=4)
    r = req("a", prompt(64))
    assert not kv.allocate_slots(r, 64)
    assert kv.num_free_blocks == 3 and kv.blocks_of("a") == []


def test_shared_prefix_is_reused_with_ref_counts():
    kv = KVCacheManager(num_gpu_blocks=20)
    shared = prompt(48, seed=1)
    a, b = req("a", shared + prompt(10, seed=2)), req("b", shared + prompt(10, seed=3))
    assert admit(kv, a) == 0
    assert admit(kv, b) == 48  # three full blocks
    assert kv.blocks_of("a")[:3] == kv.blocks_of("b")[:3]
    assert all(kv.ref_cnt[x] == 2 for x in kv.blocks_of("a")[:3])
    assert (kv.stats.queries, kv.stats.hits, kv.stats.requests) == (58 + 58, 48, 2)


def test_last_token_is_never_a_hit():
    kv = KVCacheManager(num_gpu_blocks=20)
    tokens = prompt(32)
    admit(kv, req("a", tokens))
    assert admit(kv, req("b", list(tokens))) == 16  # 32 cached, but at most 31 may hit: one whole block


def test_freed_blocks_stay_cached_until_evicted_lru_tail_first():
    kv = KVCacheManager(num_gpu_blocks=5)  # 4 usable
    a = req("a", prompt(48, seed=1))
    admit(kv, a)
    kv.take_events()
    kv.free_request(a)
    assert kv.num_cached_hashes == 3  # still reusable
    b = req("b", prompt(16, seed=9))
    admit(kv, b)  # takes the never-used block first
    assert kv.take_events() == [BlockStored((b.block_hashes[0],), None, tuple(b.all_token_ids[:16]), 16, None)]
    c = req("c", prompt(16, seed=10))
    admit(kv, c)  # now evicts a's LAST block (freed tail-first)
    removed = [e for e in kv.take_events() if isinstance(e, BlockRemoved)]
    assert removed == [BlockRemoved((a.block_hashes[2],))]
    assert kv.get_computed_blocks(req("a2", a.all_token_ids))[1] == 32  # a's first two blocks are still cached


def test_block_stored_events_chain_their_hashes():
    kv = KVCacheManager(num_gpu_blocks=20, hash_seed=7)
    r = req("a", prompt(40))
    admit(kv, r)
    (event,) = kv.take_events()
    assert isinstance(event, BlockStored)
    assert event.parent_block_hash is None and event.block_size == 16 and len(event.token_ids) == 32
    h0 = hash((kv.none_hash, tuple(r.all_token_ids[:16]), 0)) & MASK64
    h1 = hash((h0, tuple(r.all_token_ids[16:32]), 0)) & MASK64
    assert event.block_hashes == (h0, h1)
    # decoding fills the third block: stored with the second block as parent and the generated tokens
    r.all_token_ids.extend(prompt(8, seed=5))
    assert kv.allocate_slots(r, r.num_tokens - r.num_computed_tokens)
    (event,) = kv.take_events()
    assert isinstance(event, BlockStored) and event.parent_block_hash == h1
    assert event.token_ids == tuple(r.all_token_ids[32:48])


def test_lora_adapters_hash_apart_and_tag_their_events():
    kv = KVCacheManager(num_gpu_blocks=20)
    tokens = prompt(40)
    sql = LoraRequest("sql", 1)
    admit(kv, req("base", tokens))
    assert admit(kv, req("lora", list(tokens), lora=sql)) == 0  # same tokens, other adapter: no hit
    base_event, lora_event = kv.take_events()
    assert isinstance(base_event, BlockStored) and isinstance(lora_event, BlockStored)
    assert (lora_event.lora_id, lora_event.lora_name) == (1, "sql")
    assert set(base_event.block_hashes).isdisjoint(lora_event.block_hashes)


def test_reset_prefix_cache_only_when_idle():
    kv = KVCacheManager(num_gpu_blocks=10)
    r = req("a", prompt(32))
    admit(kv, r)
    assert not kv.reset_prefix_cache()
    kv.free_request(r)
    kv.take_events()
    assert kv.reset_prefix_cache()
    assert kv.take_events() == [AllBlocksCleared()] and kv.num_cached_hashes == 0


def test_event_log_numbers_batches_and_drops_the_oldest():
    log = KVEventLog(capacity=2)
    for i in range(3):
        log.append(float(i), [AllBlocksCleared()])
    assert log.append(9.0, []) is None
    assert [b.seq for b in log.since(0)] == [2, 3] and log.first_seq == 2
    assert [b.seq for b in log.since(2)] == [3] and log.since(3) == []
    assert log.since(0)[0].to_json() == {
        "seq": 2,
        "ts": 1.0,
        "events": [{"type": "AllBlocksCleared"}],
        "data_parallel_rank": None,
    }


def test_block_hashes_are_the_same_in_every_process():
    """Replicas must agree on a prefix's hashes (vLLM needs one PYTHONHASHSEED for that; here it is built in)."""
    code = (
        "from flotilla.serving.emulator.kvcache import KVCacheManager\n"
        "from flotilla.serving.emulator.request import LoraRequest, Request\n"
        "kv = KVCacheManager(8)\n"
        "for lora in (None, LoraRequest('sql', 1)):\n"
        "    r = Request('a', list(range(40)), 1, 1, 0.0, lora=lora)\n"
        "    print(kv.ensure_block_hashes(r, 2))\n"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(runs) == 1
