"""The LLM replicas' load while a pipeline summarizes: vLLM's gauges scraped from each ready pod.

A background thread reads every replica's `/metrics` every `interval` seconds (the same series the
gateway's endpoint picker reads: `vllm:num_requests_waiting`, `vllm:num_requests_running`,
`vllm:kv_cache_usage_perc`) and hands one ReplicaSample per replica to `record` (the run's
replicas.jsonl, drawn by the report as per-replica load over time). A replica that does not
answer is skipped for that round.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from flotilla.runs import ReplicaSample

GAUGES = {
    "vllm:num_requests_waiting": "waiting",
    "vllm:num_requests_running": "running",
    "vllm:kv_cache_usage_perc": "kv_cache_usage",
}


def gauges(exposition: str) -> dict[str, float]:
    """The three gauges (summed over their label sets; absent ones 0) of a Prometheus text exposition."""
    out = dict.fromkeys(GAUGES.values(), 0.0)
    for family in text_string_to_metric_families(exposition):
        key = GAUGES.get(family.name)
        if key is None:
            continue
        out[key] = sum(sample.value for sample in family.samples)
    return out


class ReplicaSampler:
    def __init__(
        self,
        addresses: Callable[[], list[str]],
        record: Callable[[list[ReplicaSample]], None],
        clock: Callable[[], float],
        interval: float = 0.5,
    ) -> None:
        self._addresses = addresses
        self._record = record
        self._clock = clock
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="replica-sampler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def sample(self, client: httpx.Client) -> list[ReplicaSample]:
        samples = []
        for address in self._addresses():
            try:
                response = client.get(f"http://{address}/metrics")
                response.raise_for_status()
                values = gauges(response.text)
            except (httpx.HTTPError, ValueError):
                continue
            samples.append(ReplicaSample(t=self._clock(), endpoint=address, **values))
        return samples

    def _loop(self) -> None:
        with httpx.Client(timeout=1.0) as client:
            while not self._stop.is_set():
                try:
                    samples = self.sample(client)
                    if samples:
                        self._record(samples)
                except Exception:  # sampling is best effort; the pipeline's outcome does not depend on it
                    pass
                self._stop.wait(self._interval)
