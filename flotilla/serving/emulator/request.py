"""An engine request: vLLM V1's Request fields that the scheduler, the KV cache and the metrics use.

Token accounting follows vLLM: `all_token_ids` = prompt + output tokens; `num_computed_tokens`
counts those whose KV is in the cache; a request needs `num_tokens - num_computed_tokens` more
tokens computed (the whole prompt at first, one per decode step, everything again after a
preemption, which resets `num_computed_tokens` to 0: "recompute").
"""

from __future__ import annotations

import enum
import zlib
from dataclasses import dataclass, field


class RequestStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    PREEMPTED = "preempted"
    FINISHED = "finished"


class FinishReason(enum.StrEnum):
    """vLLM's finish reasons, as the `finished_reason` label and the OpenAI `finish_reason` spell them."""

    STOP = "stop"
    LENGTH = "length"
    ABORT = "abort"


@dataclass(frozen=True)
class LoraRequest:
    """A LoRA adapter by name; `lora_int_id` >= 1 is its id in this engine (vLLM's lora_int_id)."""

    lora_name: str
    lora_int_id: int

    @property
    def hash_key(self) -> int:
        """The block-hash extra key: a stable hash of the name, never 0 (the same adapter hashes alike everywhere)."""
        return zlib.crc32(self.lora_name.encode()) | (1 << 32)


@dataclass(eq=False, slots=True)
class Request:
    """One request inside the engine. `output_len` is the length the synthetic model stops at ("stop")
    unless `max_tokens` comes first ("length")."""

    request_id: str
    prompt_token_ids: list[int]
    max_tokens: int
    output_len: int
    arrival_time: float
    lora: LoraRequest | None = None
    output_seed: int = 0
    all_token_ids: list[int] = field(default_factory=list)
    num_prompt_tokens: int = 0
    num_computed_tokens: int = 0
    status: RequestStatus = RequestStatus.WAITING
    block_hashes: list[int] = field(default_factory=list)
    num_cached_tokens: int = -1  # prompt tokens served from the prefix cache at first scheduling
    num_preemptions: int = 0
    scheduled_ts: float | None = None  # first time scheduled (vLLM's SCHEDULED event, kept across preemption)
    first_token_ts: float | None = None
    last_token_ts: float | None = None
    finished_ts: float | None = None
    finish_reason: FinishReason | None = None

    def __post_init__(self) -> None:
        if not self.all_token_ids:
            self.all_token_ids = list(self.prompt_token_ids)
        self.num_prompt_tokens = len(self.prompt_token_ids)

    @property
    def num_tokens(self) -> int:
        return len(self.all_token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.all_token_ids) - self.num_prompt_tokens

    @property
    def output_token_ids(self) -> list[int]:
        return self.all_token_ids[self.num_prompt_tokens :]

    @property
    def hash_extra(self) -> int:
        """The extra key of this request's block hashes: its adapter's, or 0."""
        return self.lora.hash_key if self.lora is not None else 0

    @property
    def is_finished(self) -> bool:
        return self.status is RequestStatus.FINISHED
