"""`flotilla experiment gaie --live`: the comparison scaled down, on loopback and in the simulator.

Live: `flotilla serve emulated` replicas (the same engine the simulator steps, here in real time behind
its OpenAI server) and, per arm, a fresh `flotilla gateway --endpoints ... --profile ARM` (the python
front door; `--kv-events` for precise-prefix, scrapes every 50 ms), the engines' prefix caches reset
first. The load is `flotilla bench serve`'s: its client (streaming chat, ignore_eos) in a closed loop
of GuideLLM's concurrent profile, sending the scenario's prompts in the simulator's order. TTFT is the
client's: from sending to the first content chunk. The simulator then runs the same scenario (the same
prompts, seed and settings); `Fidelity` holds both means per arm and their difference.

Scaled down (LIVE): two replicas with their KV caches cut to about three transcripts each
(`--num-gpu-blocks-override`), so a pool of six transcripts overflows one replica's cache the way the
study's 32 overflow 17; four streams, 24 requests, 128 output tokens; real time (--speed 1), so the
HTTP path's milliseconds count as they would. About a minute on two cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from flotilla.loadgen.client import ClientConfig, send
from flotilla.loadgen.datasets import Prompt
from flotilla.loadgen.profiles import Step
from flotilla.loadgen.runner import StopCondition, run_step
from flotilla.runs.records import RequestRecord
from flotilla.serving.emulator.calibration import A100_SERVE
from flotilla.serving.emulator.engine import EngineConfig
from flotilla.sim.experiments.base import Fidelity, fidelity_error, improvement
from flotilla.sim.experiments.gaie import BASELINE, FULL, TREATMENT, Scenario, Task, simulate
from flotilla.sim.live_plane import log_tail

ARMS = (BASELINE, TREATMENT)
LIVE = replace(
    FULL,
    replicas=2,
    engine=EngineConfig(**A100_SERVE, num_gpu_blocks_override=1700, max_model_len=12288),
    pool=6,
    output_tokens=128,
    concurrencies=(4,),
    requests_per_level=24,
)


def fidelity(seed: int, scenario: Scenario = LIVE) -> Fidelity:
    """Mean TTFT per arm, live and simulated, for the scaled-down scenario."""
    with tempfile.TemporaryDirectory(prefix="gaie-live-") as tmp:
        live = run_live(scenario, seed, Path(tmp))
    simulated = {arm: simulate(Task(scenario, arm, seed))[-1]["ttft_ms"]["mean"] for arm in ARMS}
    measured = {arm: statistics.fmean(_ttfts_ms(records)) for arm, records in live.items()}
    metrics = {
        f"mean_ttft_ms {arm}": {
            "simulated": simulated[arm],
            "live": measured[arm],
            "error_pct": fidelity_error(simulated[arm], measured[arm]),
        }
        for arm in ARMS
    }
    sim_gain = improvement(simulated[BASELINE], simulated[TREATMENT])
    live_gain = improvement(measured[BASELINE], measured[TREATMENT])
    metrics["improvement_pct"] = {
        "simulated": sim_gain,
        "live": live_gain,
        "error_pct": fidelity_error(sim_gain, live_gain),
    }
    errors = {arm: sum(1 for r in records if r.status != 200 or r.error) for arm, records in live.items()}
    c = scenario.concurrencies[0]
    return Fidelity(
        scenario=(
            f"{scenario.replicas} emulated replicas ({scenario.gpu}, {scenario.model}, KV cache "
            f"{scenario.engine.num_gpu_blocks_override} blocks), {scenario.pool} transcripts of ~"
            f"{scenario.prompt_tokens:,} tokens, concurrency {c}, {scenario.requests_per_level} requests, "
            f"{scenario.output_tokens} output tokens, seed {seed}"
        ),
        metrics=metrics,
        notes=[
            "live: `flotilla serve emulated` (real time) behind `flotilla gateway` (python front door) on loopback; "
            "the client is `flotilla bench serve`'s, TTFT to the first streamed content chunk",
            "the simulator leaves out HTTP, JSON, chat templating and tokenization time (a few ms per request here)",
            "the random arm's picks differ between live and simulated (different random streams), so with "
            f"{scenario.requests_per_level} requests its mean differs by chance too",
            f"failed live requests: {errors}",
        ],
    )


def run_live(scenario: Scenario, seed: int, logs: Path) -> dict[str, list[RequestRecord]]:
    """Each arm's RequestRecords, live on loopback (see the module docstring)."""
    from flotilla.server.runner import free_port

    prompts = scenario.prompts(seed)[0]
    ports = [free_port() for _ in range(scenario.replicas)]
    engines = [f"http://127.0.0.1:{p}" for p in ports]
    out: dict[str, list[RequestRecord]] = {}
    with contextlib.ExitStack() as stack:
        for i, port in enumerate(ports):
            stack.enter_context(_process(f"engine-{i}", _engine_argv(scenario, port, seed + i), logs))
        for url in engines:
            _wait_http(f"{url}/health", logs)
        for arm in ARMS:
            _reset(engines)
            port = free_port()
            with _process(f"gateway-{arm}", _gateway_argv(engines, port, arm, seed), logs):
                _wait_http(f"http://127.0.0.1:{port}/health", logs, lambda h: h.get("fresh_endpoints") == len(engines))
                out[arm] = asyncio.run(_load(f"http://127.0.0.1:{port}", scenario, prompts, seed))
    return out


def _engine_argv(s: Scenario, port: int, seed: int) -> list[str]:
    e = s.engine
    argv = [sys.executable, "-m", "flotilla", "serve", "emulated", "--gpu", s.gpu, "--model", s.model]
    argv += ["--port", str(port), "--seed", str(seed), "--log-level", "warning", "--speed", "1"]
    argv += ["--max-num-batched-tokens", str(e.max_num_batched_tokens), "--max-num-seqs", str(e.max_num_seqs)]
    argv += ["--gpu-memory-utilization", str(e.gpu_memory_utilization)]
    if e.num_gpu_blocks_override is not None:
        argv += ["--num-gpu-blocks-override", str(e.num_gpu_blocks_override)]
    if e.max_model_len is not None:
        argv += ["--max-model-len", str(e.max_model_len)]
    return argv


def _gateway_argv(engines: Sequence[str], port: int, profile: str, seed: int) -> list[str]:
    argv = [sys.executable, "-m", "flotilla", "gateway", "--endpoints", ",".join(engines), "--port", str(port)]
    return [*argv, "--profile", profile, "--data-plane", "python", "--seed", str(seed), "--log-level", "warning"]


async def _load(target: str, s: Scenario, prompts: Sequence[Prompt], seed: int) -> list[RequestRecord]:
    concurrency = s.concurrencies[0]
    step = Step(strategy="concurrent", streams=concurrency, max_concurrency=concurrency, seed=seed)
    config = ClientConfig(target, s.model, "chat", ignore_eos=True)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=httpx.Timeout(300.0, connect=10.0), limits=limits) as http:

        async def sender(prompt: Prompt, request_id: str, item: str) -> RequestRecord:
            return await send(http, config, prompt, request_id=request_id, item=item, origin=origin)

        origin = time.perf_counter()
        stop = StopCondition(max_requests=len(prompts))
        outcome = await run_step(step, 0, prompts, stop, sender, origin=origin)
    return outcome.records


def _ttfts_ms(records: Sequence[RequestRecord]) -> list[float]:
    return [t * 1000.0 for r in records if r.status == 200 and not r.error and (t := r.ttft) is not None]


# -- processes ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _process(name: str, argv: list[str], logs: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process on loopback, its output in logs/NAME.log; stopped (TERM, then KILL) when the block ends."""
    with (logs / f"{name}.log").open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_http(url: str, logs: Path, ready: Any = None, timeout: float = 60.0) -> None:
    """Until GET url answers 200 (and `ready(json)`), else RuntimeError with the logs' tails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            r = httpx.get(url, timeout=1.0)
            if r.status_code == 200 and (ready is None or ready(r.json())):
                return
        time.sleep(0.1)
    tails = "\n".join(f"{f.name}: {log_tail(f, 5)}" for f in sorted(logs.glob("*.log")))
    raise RuntimeError(f"{url} not ready after {timeout:.0f} s\n{tails}")


def _reset(engines: Sequence[str], timeout: float = 60.0) -> None:
    """Empty every engine's prefix cache (409 while requests hold blocks: wait)."""
    deadline = time.monotonic() + timeout
    for url in engines:
        while httpx.post(f"{url}/reset_prefix_cache", timeout=5).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} stayed busy; cannot reset its prefix cache")
            time.sleep(0.2)
