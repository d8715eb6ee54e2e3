"""vLLM V1's scheduler (vllm/v1/core/sched/scheduler.py, FCFS policy), one `schedule()` per engine step.

There is no prefill or decode phase: each request has num_computed_tokens and num_tokens, and a step
gives requests tokens so the first catches up with the second, within a token budget of
`max_num_batched_tokens`:

1. RUNNING requests first, in order: n = min(num_tokens - num_computed_tokens, budget) (a long
   prompt is prefilled over several steps: chunked prefill). When the KV cache cannot give a request
   its blocks, the most recently admitted running request (the last in the running list) is
   preempted (recompute: its blocks are freed, num_computed_tokens = 0, it goes to the front of
   the waiting queue), and the allocation is retried; if the request preempted itself, stop.
2. Only if nothing was preempted, WAITING requests in FCFS order while the budget lasts and fewer
   than `max_num_seqs` run: a request whose LoRA adapter would make more than `max_loras` distinct
   adapters in the batch is skipped (kept at the head, in order); otherwise the longest cached
   prefix is reused and the rest (up to the budget) is scheduled; if its blocks do not fit, stop.

After scheduling, each scheduled request's num_computed_tokens advances by its tokens.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from flotilla.serving.emulator.kvcache import KVCacheManager
from flotilla.serving.emulator.request import Request, RequestStatus


@dataclass(slots=True)
class SchedulerOutput:
    """One step's batch: (request, new tokens, tokens computed before) triples, and who moved."""

    scheduled: list[tuple[Request, int, int]] = field(default_factory=list)
    preempted: list[Request] = field(default_factory=list)
    newly_scheduled: list[Request] = field(default_factory=list)  # first time scheduled, ever
    resumed: list[Request] = field(default_factory=list)  # preempted before, admitted again
    total_tokens: int = 0


class Scheduler:
    """The waiting queue, the running list and the KV cache of one engine."""

    def __init__(
        self, kv: KVCacheManager, *, max_num_seqs: int, max_num_batched_tokens: int, max_loras: int = 0
    ) -> None:
        self.kv = kv
        self.max_num_seqs, self.max_num_batched_tokens, self.max_loras = (
            max_num_seqs,
            max_num_batched_tokens,
            max_loras,
        )
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []

    def add(self, request: Request) -> None:
        self.waiting.append(request)

    def remove_finished(self, finished: list[Request]) -> None:
        """Take finished requests out of the running list and free their blocks."""
        if not finished:
            return
        done = {id(r) for r in finished}
        self.running = [r for r in self.running if id(r) not in done]
        for r in finished:
            self.kv.free_request(r)

    def abort(self, request: Request) -> None:
        if request.status is RequestStatus.RUNNING:
            self.running.remove(request)
            self.kv.free_request(request)
        else:
            self.waiting.remove(request)

    def schedule(self, now: float) -> SchedulerOutput:
        out = SchedulerOutput()
        budget = self.max_num_batched_tokens
        kv, running = self.kv, self.running
        scheduled = out.scheduled

        # 1. running requests
        i = 0
        while i < len(running) and budget > 0:
            request = running[i]
            num_new = min(request.num_tokens - request.num_computed_tokens, budget)
            while not kv.allocate_slots(request, num_new):
                victim = running.pop()
                self._preempt(victim)
                out.preempted.append(victim)
                if victim is request:
                    break
            if request.status is not RequestStatus.RUNNING:
                break
            scheduled.append((request, num_new, request.num_computed_tokens))
            budget -= num_new
            i += 1

        # 2. waiting requests, only when nothing was preempted
        if not out.preempted:
            budget = self._schedule_waiting(now, budget, out)

        for request, num_new, _before in scheduled:
            request.num_computed_tokens += num_new
        out.total_tokens = self.max_num_batched_tokens - budget
        return out

    def _schedule_waiting(self, now: float, budget: int, out: SchedulerOutput) -> int:
        kv, running, waiting = self.kv, self.running, self.waiting
        loras = {r.lora.lora_int_id for r, _n, _c in out.scheduled if r.lora is not None} if self.max_loras else set()
        skipped: list[Request] = []
        while waiting and budget > 0 and len(running) < self.max_num_seqs:
            request = waiting[0]
            lora = request.lora
            if lora is not None and len(loras) >= self.max_loras and lora.lora_int_id not in loras:
                skipped.append(waiting.popleft())
                continue
            hit_blocks, hit_tokens = kv.get_computed_blocks(request)
            num_new = min(request.num_tokens - hit_tokens, budget)
            if not kv.allocate_slots(request, num_new, hit_tokens, hit_blocks):
                break
            waiting.popleft()
            running.append(request)
            if request.status is RequestStatus.PREEMPTED:
                out.resumed.append(request)
            if request.scheduled_ts is None:
                request.scheduled_ts = now
                out.newly_scheduled.append(request)
            if request.num_cached_tokens < 0:
                request.num_cached_tokens = hit_tokens
            request.status = RequestStatus.RUNNING
            request.num_computed_tokens = hit_tokens
            if lora is not None:
                loras.add(lora.lora_int_id)
            out.scheduled.append((request, num_new, hit_tokens))
            budget -= num_new
        if skipped:
            waiting.extendleft(reversed(skipped))
        return budget

    def _preempt(self, request: Request) -> None:
        self.kv.free_request(request)
        request.status = RequestStatus.PREEMPTED
        request.num_computed_tokens = 0
        request.num_preemptions += 1
        self.waiting.appendleft(request)
