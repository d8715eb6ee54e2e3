"""The prefix-cache indexes: approximate (what the gateway routed) and precise (the engines' KV events)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

from flotilla.gateway.scheduling import (
    ApproximatePrefixIndex,
    InferenceRequest,
    PrecisePrefixIndex,
    emulator_tokenizer,
    prompt_tokenizer,
)

from .builders import req

# -- approximate ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recorded", "asked", "matched", "total"),
    [
        ("aaaabbbbcccc", "aaaabbbbcccc", 3, 3),
        ("aaaabbbbcccc", "aaaabbbbzzzz", 2, 3),
        ("aaaabbbbcccc", "aaaabbbbcc", 2, 2),  # a trailing partial block is ignored
        ("aaaabbbbcccc", "zzzzbbbbcccc", 0, 3),  # chained: equal later blocks after a different one do not match
        ("bbbbaaaa", "aaaabbbb", 0, 2),  # the same block at another position is another hash
        ("aaaa", "aaa", 0, 0),  # shorter than a block
    ],
)
def test_approximate_matches_the_longest_leading_run(recorded: str, asked: str, matched: int, total: int) -> None:
    index = ApproximatePrefixIndex(block_chars=4)
    index.record(req(prompt=recorded), "s1")
    request = req(prompt=asked)
    assert index.matched_blocks(request, ["s1", "s2"]) == {"s1": matched, "s2": 0}
    assert index.total_blocks(request) == total


def test_approximate_hashes_include_the_model() -> None:
    index = ApproximatePrefixIndex(block_chars=4)
    index.record(req("llama", "aaaabbbb"), "s1")
    assert index.matched_blocks(req("qwen", "aaaabbbb"), ["s1"]) == {"s1": 0}
    assert index.matched_blocks(req("llama", "aaaabbbb"), ["s1"]) == {"s1": 2}


def test_approximate_caps_the_blocks_matched() -> None:
    index = ApproximatePrefixIndex(block_chars=2, max_blocks=3)
    request = req(prompt="ab" * 10)
    index.record(request, "s1")
    assert index.total_blocks(request) == 3 and index.size("s1") == 3
    assert index.matched_blocks(req(prompt="ab" * 3 + "zz"), ["s1"]) == {"s1": 3}  # indistinguishable past the cap


def test_approximate_lru_evicts_the_least_recently_recorded_blocks() -> None:
    index = ApproximatePrefixIndex(block_chars=1, lru_capacity_per_server=4)
    first, second = req(prompt="abc"), req(prompt="xy")
    index.record(first, "s1")
    index.record(second, "s1")  # 5 hashes > 4: first's "a" block falls out
    assert index.size("s1") == 4
    assert index.matched_blocks(first, ["s1"]) == {"s1": 0}  # its leading block is gone
    assert index.matched_blocks(second, ["s1"]) == {"s1": 2}
    index.record(req(prompt="x"), "s1")  # refreshes "x" (and evicts nothing new)
    index.record(req(prompt="pq"), "s1")  # evicts the two oldest: "b", "c"
    assert index.matched_blocks(second, ["s1"]) == {"s1": 2}
    assert index.size("s1") == 4


def test_approximate_forget_and_retain_servers() -> None:
    index = ApproximatePrefixIndex(block_chars=1)
    for server in ("s1", "s2", "s3"):
        index.record(req(prompt="ab"), server)
    index.forget("s1")
    index.retain(["s2"])
    assert index.matched_blocks(req(prompt="ab"), ["s1", "s2", "s3"]) == {"s1": 0, "s2": 2, "s3": 0}
    assert index.addresses == ("s2",)


# -- precise ----------------------------------------------------------------------------------------


def chars(request: InferenceRequest) -> Sequence[int]:
    return [ord(c) for c in request.prompt]


class Engine:
    """Emits BlockStored events for token runs under hashes the index cannot compute (random)."""

    def __init__(self, block_size: int = 4) -> None:
        self.block_size = block_size
        self.rng = random.Random(0)
        self.hashes: dict[tuple[Any, ...], int] = {}

    def stored(self, text: str, lora: str | None = None, start: int = 0) -> dict[str, Any]:
        tokens = [ord(c) for c in text]
        size, parent, hashes = self.block_size, None, []
        for i in range(len(tokens) // size):
            key = (parent, lora, tuple(tokens[i * size : (i + 1) * size]))
            parent = self.hashes.setdefault(key, self.rng.getrandbits(64))
            hashes.append(parent)
        return {
            "type": "BlockStored",
            "block_hashes": hashes[start:],
            "parent_block_hash": hashes[start - 1] if start else None,
            "token_ids": tokens[start * size : len(hashes) * size],
            "block_size": size,
            "lora_id": 1 if lora else None,
            "lora_name": lora,
        }


def test_precise_walks_the_reported_blocks() -> None:
    engine, index = Engine(), PrecisePrefixIndex(chars, block_size=4)
    index.apply("e1", [engine.stored("aaaabbbb")])
    index.apply("e1", [engine.stored("aaaabbbbcccc", start=2)])  # a later batch continues the chain
    request = req(prompt="aaaabbbbccccdd")
    assert index.total_blocks(request) == 3
    assert index.matched_blocks(request, ["e1", "e2"]) == {"e1": 3, "e2": 0}
    assert index.matched_blocks(req(prompt="aaaazzzzcccc"), ["e1"]) == {"e1": 1}


def test_precise_removal_and_clearing() -> None:
    engine, index = Engine(), PrecisePrefixIndex(chars, block_size=4)
    event = engine.stored("aaaabbbbcccc")
    index.apply("e1", [event])
    index.apply("e1", [{"type": "BlockRemoved", "block_hashes": [event["block_hashes"][1]]}])
    assert index.matched_blocks(req(prompt="aaaabbbbcccc"), ["e1"]) == {"e1": 1}  # the walk stops at the hole
    index.apply("e1", [{"type": "AllBlocksCleared"}])
    assert index.matched_blocks(req(prompt="aaaabbbbcccc"), ["e1"]) == {"e1": 0} and index.size("e1") == 0


def test_precise_counts_a_block_stored_twice() -> None:
    engine, index = Engine(), PrecisePrefixIndex(chars, block_size=4)
    event = engine.stored("aaaa")
    index.apply("e1", [event, event, {"type": "BlockRemoved", "block_hashes": event["block_hashes"]}])
    assert index.matched_blocks(req(prompt="aaaa"), ["e1"]) == {"e1": 1}
    index.apply("e1", [{"type": "BlockRemoved", "block_hashes": event["block_hashes"]}])
    assert index.matched_blocks(req(prompt="aaaa"), ["e1"]) == {"e1": 0}


def test_precise_keeps_adapters_apart() -> None:
    engine, index = Engine(), PrecisePrefixIndex(chars, block_size=4)
    index.apply("e1", [engine.stored("aaaabbbb", lora="sql")])
    index.apply("e2", [engine.stored("aaaabbbb")])
    assert index.matched_blocks(req("sql", "aaaabbbb"), ["e1", "e2"]) == {"e1": 2, "e2": 0}
    assert index.matched_blocks(req("base", "aaaabbbb"), ["e1", "e2"]) == {"e1": 0, "e2": 2}


def test_precise_ignores_other_block_sizes_and_unknown_events() -> None:
    index = PrecisePrefixIndex(chars, block_size=4)
    index.apply("e1", [Engine(block_size=2).stored("aaaa"), {"type": "Mystery"}])
    assert index.matched_blocks(req(prompt="aaaa"), ["e1"]) == {"e1": 0}
    assert index.ignored_events == 1
    index.retain([])
    assert index.size("e1") == 0


def test_precise_follows_the_emulated_engine() -> None:
    """The vLLM emulator's own KV cache and tokenizer: real events, hashes the index never computes."""
    from flotilla.serving.emulator.kvcache import KVCacheManager
    from flotilla.serving.emulator.request import LoraRequest, Request
    from flotilla.serving.emulator.tokenizer import Tokenizer

    tokenizer = Tokenizer(49152)
    index = PrecisePrefixIndex(emulator_tokenizer(49152))
    system = "You are a careful assistant. Answer in one short paragraph, citing the manual. " * 3
    for address, lora in (("e1", None), ("e2", LoraRequest("sql", 1))):
        kv = KVCacheManager(num_gpu_blocks=64)
        tokens = tokenizer.encode(system + "What is a MIG slice?")
        request = Request("r", tokens, max_tokens=1, output_len=1, arrival_time=0.0, lora=lora)
        blocks, hit = kv.get_computed_blocks(request)
        assert kv.allocate_slots(request, request.num_tokens - hit, hit, blocks)
        index.apply(address, [e.to_json() for e in kv.take_events()])
    asked = req("base", system + "How do I drain a node?")
    shared = len(tokenizer.encode(system)) // 16
    matched = index.matched_blocks(asked, ["e1", "e2"])
    assert shared >= 3 and shared <= matched["e1"] < index.total_blocks(asked) and matched["e2"] == 0
    assert index.matched_blocks(req("sql", system + "How do I drain a node?"), ["e1", "e2"])["e2"] >= shared


def test_prompt_tokenizer_wraps_a_text_encoder() -> None:
    assert list(prompt_tokenizer(lambda text: [len(text)])(req(prompt="abc"))) == [3]
