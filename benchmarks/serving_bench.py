"""Model serving: what Flotilla's servers cost over the engines they wrap.

    .venv/bin/python benchmarks/serving_bench.py [--part asr|llm|emulator|all] [--repeat 3]

ASR: each Whisper model Flotilla ships (tiny.en, base) transcribes the project's speech clips
(tests/data/speech, 19 s of TTS speech with reference texts) twice, in the same process tree:
(a) faster-whisper called directly (WhisperModel, int8 on CPU, the same beam size, language and
threads as Flotilla uses), and (b) through `flotilla serve asr` over HTTP on loopback
(multipart upload, JSON response). Reported: real-time factor (processing seconds / audio
seconds; for (b) the client's wall time per request, upload and all), WER against the references
(jiwer, case and punctuation ignored). Goal: Flotilla's RTF within 10% of the direct call.

LLM: one `flotilla serve llm` server (SmolLM2-135M on llama.cpp through xllamacpp, 4 slots)
is called two ways, batch by batch in turn: (a) llama.cpp's own server directly (the engine
xllamacpp runs, on its internal loopback port) and (b) Flotilla's OpenAI front, which measures
and translates metrics and passes the stream through. Streaming chat, 128 tokens out
(`ignore_eos`, no prompt cache), at 1, 2 and 4 concurrent requests. Reported: median TTFT and
aggregate output tokens/s. Goal: Flotilla within 10% of the direct call (TTFT no more than 10%
higher, tokens/s no more than 10% lower).

Emulator: the vLLM-compatible engine's bookkeeping on a simulated clock (no sleeps), requests of
simulated work per second of wall time. Goal: >= 1,000 requests/s.
Writes benchmarks/results/serving_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from flotilla.serving.asr.wer import word_error_rate

ROOT = Path(__file__).resolve().parent.parent
SPEECH = ROOT / "tests" / "data" / "speech"
RESULTS = Path(__file__).resolve().parent / "results" / "serving_bench.json"
GOAL_OVERHEAD = 0.10
ASR_MODELS = ("whisper-tiny.en", "whisper-base")
THREADS = max(1, os.cpu_count() or 1)
console = Console(width=140)


def clips() -> list[tuple[Path, str]]:
    return [(wav, (wav.parent / f"{wav.stem}.txt").read_text().strip()) for wav in sorted(SPEECH.glob("*.wav"))]


def wer(refs: list[str], hyps: list[str]) -> float:
    return word_error_rate(refs, hyps)


def free_port() -> int:
    from flotilla.server.runner import free_port as pick

    return pick()


# -- ASR ---------------------------------------------------------------------------------------------
class DirectWhisper:
    """faster-whisper called directly, with Flotilla's settings (int8, beam 5, best_of 5, language en)."""

    def __init__(self, model: str) -> None:
        from faster_whisper import WhisperModel  # type: ignore[import-untyped]

        from flotilla.serving.asr.models import resolve_model

        path = resolve_model(model).path
        self.engine = WhisperModel(
            str(path), device="cpu", compute_type="int8", cpu_threads=THREADS, local_files_only=True
        )

    def transcribe(self, wav: Path) -> tuple[str, float]:
        from faster_whisper import decode_audio

        samples = decode_audio(str(wav))
        segments, _info = self.engine.transcribe(samples, language="en", beam_size=5, best_of=5, temperature=0.0)
        return "".join(s.text for s in segments).strip(), len(samples) / 16000


class ServedWhisper:
    """`flotilla serve asr` in its own process, called over HTTP on loopback."""

    def __init__(self, model: str) -> None:
        port = free_port()
        argv = [sys.executable, "-m", "flotilla", "serve", "asr", "--port", str(port), "--model", model]
        argv += ["--cpu-threads", str(THREADS), "--log-level", "warning"]
        self.model = model
        self.server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
        deadline = time.monotonic() + 120
        while True:
            try:
                if self.client.get("/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.server.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("flotilla serve asr did not start")
            time.sleep(0.2)

    def transcribe(self, wav: Path) -> str:
        response = self.client.post(
            "/v1/audio/transcriptions",
            files={"file": (wav.name, wav.read_bytes(), "audio/wav")},
            data={"model": self.model, "language": "en", "response_format": "json"},
        )
        response.raise_for_status()
        return str(response.json()["text"])

    def close(self) -> None:
        self.client.close()
        self.server.terminate()
        try:
            self.server.wait(15)
        except subprocess.TimeoutExpired:
            self.server.kill()


def asr_model(model: str, repeat: int) -> dict[str, Any]:
    """Direct and served passes over the clips, interleaved (direct, served, direct, ...) so that
    a change in the machine's load hits both alike; the median pass of each counts."""
    direct = DirectWhisper(model)
    served = ServedWhisper(model)
    try:
        audio = 0.0
        for wav, _ in clips():  # warm both up, and measure the audio
            audio += direct.transcribe(wav)[1]
            served.transcribe(wav)
        passes: dict[str, list[float]] = {"direct": [], "served": []}
        texts: dict[str, list[str]] = {"direct": [], "served": []}
        for _ in range(repeat):
            for name in ("direct", "served"):
                started = time.perf_counter()
                hyps = [direct.transcribe(w)[0] if name == "direct" else served.transcribe(w) for w, _ in clips()]
                passes[name].append(time.perf_counter() - started)
                texts[name] = hyps
        refs = [ref for _, ref in clips()]
        return {
            "audio_s": audio,
            "direct_rtf": statistics.median(passes["direct"]) / audio,
            "flotilla_rtf": statistics.median(passes["served"]) / audio,
            "direct_wer": wer(refs, texts["direct"]),
            "flotilla_wer": wer(refs, texts["served"]),
        }
    finally:
        served.close()


def run_asr(repeat: int) -> list[dict[str, Any]]:
    rows = []
    for model in ASR_MODELS:
        m = asr_model(model, repeat)
        overhead = m["flotilla_rtf"] / m["direct_rtf"] - 1
        rows.append(
            {
                "model": model,
                "audio_seconds": round(m["audio_s"], 2),
                "direct_rtf": m["direct_rtf"],
                "flotilla_rtf": m["flotilla_rtf"],
                "overhead": overhead,
                "direct_wer": m["direct_wer"],
                "flotilla_wer": m["flotilla_wer"],
                "verdict": "PASS" if overhead <= GOAL_OVERHEAD else "MISS",
            }
        )
    table = Table(title=f"ASR through `flotilla serve asr` vs faster-whisper directly ({THREADS} CPU threads, int8)")
    for column in (
        "model",
        "audio s",
        "RTF direct",
        "RTF Flotilla",
        "overhead",
        "WER direct",
        "WER Flotilla",
        "goal <= 10%",
    ):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            r["model"],
            f"{r['audio_seconds']:.1f}",
            f"{r['direct_rtf']:.3f}",
            f"{r['flotilla_rtf']:.3f}",
            f"{r['overhead'] * 100:+.1f}%",
            f"{r['direct_wer'] * 100:.1f}%",
            f"{r['flotilla_wer'] * 100:.1f}%",
            r["verdict"],
        )
    console.print(table)
    return rows


# -- LLM ---------------------------------------------------------------------------------------------
LLM_PROMPT = (
    "Summarize in two sentences: Alice said the billing service must ship by Friday. Bob said the migration "
    "fails on staging because of the new index. They agreed to roll back the index."
)
LLM_TOKENS = 128


async def _stream_one(client: httpx.AsyncClient, base: str, i: int) -> tuple[float, int, float]:
    """(TTFT, tokens, end) of one streaming chat request."""
    body = {
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": f"[{i}] {LLM_PROMPT}"}],
        "max_tokens": LLM_TOKENS,
        "stream": True,
        "ignore_eos": True,
        "cache_prompt": False,
    }
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    async with client.stream("POST", f"{base}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices") and (chunk["choices"][0].get("delta") or {}).get("content"):
                tokens += 1
                if first is None:
                    first = time.perf_counter()
    end = time.perf_counter()
    return (first or end) - started, tokens, end


async def _batch(client: httpx.AsyncClient, base: str, k: int) -> tuple[list[float], float]:
    import asyncio

    started = time.perf_counter()
    results = await asyncio.gather(*(_stream_one(client, base, i) for i in range(k)))
    wall = max(r[2] for r in results) - started
    return [r[0] for r in results], sum(r[1] for r in results) / wall


def run_llm(repeat: int) -> list[dict[str, Any]]:
    import asyncio

    from flotilla.serving.llm.server import LlmServer, LlmServerConfig

    server = LlmServer(LlmServerConfig(port=free_port(), parallel=4, ctx_size=4096)).start_in_thread()
    rows = []
    try:
        server.wait_ready(120)
        direct, front = str(server.state.upstream), server.url

        async def measure() -> None:
            async with httpx.AsyncClient(timeout=300) as client:
                await _batch(client, front, 1)  # warm-up
                await _batch(client, direct, 1)
                for k in (1, 2, 4):
                    got: dict[str, tuple[list[float], list[float]]] = {"direct": ([], []), "flotilla": ([], [])}
                    for _ in range(max(repeat, 3)):
                        for name, base in (("direct", direct), ("flotilla", front)):
                            ttfts, rate = await _batch(client, base, k)
                            got[name][0].extend(ttfts)
                            got[name][1].append(rate)
                    d_ttft, f_ttft = statistics.median(got["direct"][0]), statistics.median(got["flotilla"][0])
                    d_rate, f_rate = statistics.median(got["direct"][1]), statistics.median(got["flotilla"][1])
                    ok = f_ttft <= d_ttft * (1 + GOAL_OVERHEAD) and f_rate >= d_rate * (1 - GOAL_OVERHEAD)
                    rows.append(
                        {
                            "concurrency": k,
                            "direct_ttft_s": d_ttft,
                            "flotilla_ttft_s": f_ttft,
                            "direct_tokens_per_s": d_rate,
                            "flotilla_tokens_per_s": f_rate,
                            "verdict": "PASS" if ok else "MISS",
                        }
                    )

        asyncio.run(measure())
    finally:
        server.stop()
    table = Table(title="LLM through `flotilla serve llm` vs llama.cpp's server directly (SmolLM2-135M, 128 tokens)")
    for column in ("concurrent", "TTFT direct", "TTFT Flotilla", "tok/s direct", "tok/s Flotilla", "goal within 10%"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            str(r["concurrency"]),
            f"{r['direct_ttft_s'] * 1000:.0f} ms",
            f"{r['flotilla_ttft_s'] * 1000:.0f} ms",
            f"{r['direct_tokens_per_s']:.1f}",
            f"{r['flotilla_tokens_per_s']:.1f}",
            r["verdict"],
        )
    console.print(table)
    return rows


# -- emulator ----------------------------------------------------------------------------------------
EMULATOR_GOAL = 1000.0  # requests of simulated work per wall-clock second, in one process


def run_emulator(repeat: int) -> list[dict[str, Any]]:
    """The engine emulator's bookkeeping on the simulated clock (no sleeps), vLLM metrics recorded
    every step: 20,000 requests of 512 prompt (256 shared) + 128 output tokens per run."""
    from flotilla.serving.emulator.bench import run_benchmark

    setups = [
        {"gpu": "H100-80GB", "model": "qwen3-8b"},
        {"gpu": "A100-80GB", "model": "qwen3-8b"},
        {"gpu": "A100-40GB:3g.20gb", "model": "smollm2-135m", "max_num_seqs": 512, "prompt_len": 256, "output_len": 32},
    ]
    rows = []
    for setup in setups:
        runs = [run_benchmark(**setup) for _ in range(max(1, repeat))]  # type: ignore[arg-type]
        best = statistics.median(r.requests_per_s for r in runs)
        r = runs[0]
        rows.append(
            {
                "gpu": r.gpu,
                "model": r.model,
                "requests": r.requests,
                "requests_per_s": best,
                "tokens_per_s": statistics.median(x.tokens_per_s for x in runs),
                "emulated_requests_per_s": r.emulated_requests_per_s,
                "prefix_hit_rate": r.prefix_hit_rate,
                "verdict": "PASS" if best >= EMULATOR_GOAL else "MISS",
            }
        )
    table = Table(title="Engine emulator bookkeeping (simulated clock, metrics on; one process)")
    for column in ("GPU", "model", "requests", "req/s (wall)", "tok/s (wall)", "emulated req/s", "goal >= 1,000"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            r["gpu"],
            r["model"],
            str(r["requests"]),
            f"{r['requests_per_s']:,.0f}",
            f"{r['tokens_per_s']:,.0f}",
            f"{r['emulated_requests_per_s']:.1f}",
            r["verdict"],
        )
    console.print(table)
    return rows


# -- main --------------------------------------------------------------------------------------------
PARTS: dict[str, Any] = {"asr": run_asr, "llm": run_llm, "emulator": run_emulator}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", default="all", choices=[*PARTS, "all"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    if RESULTS.exists():
        results = json.loads(RESULTS.read_text()).get("results", {})
    for name, run in PARTS.items():
        if args.part in (name, "all"):
            results[name] = run(args.repeat)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "serving_bench",
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "compared_against": "the wrapped engines called directly in the same environment "
        "(faster-whisper's WhisperModel; xllamacpp's server)",
        "results": results,
    }
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    console.print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
