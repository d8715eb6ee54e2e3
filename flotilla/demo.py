"""`make demo` / `flotilla demo`: the speech-to-summary workflow end to end on embedded defaults.

The demo starts the control plane as a real background process (`flotilla up`) on emulated GPUs
(1 node x 2 A100-40GB, sliced on demand as the Dynamic Accelerator Slicer does) with its inference
gateway, and runs the speech-to-summary Pipeline on the meeting recordings Flotilla ships
(flotilla/examples/recordings, spoken by espeak-ng, with reference texts):

- stage 1: one Whisper (tiny.en) Job per recording, queued by Kueue-style admission and run on its
  own `nvidia.com/mig-1g.5gb` slice;
- stage 2: each transcript summarized by SmolLM2-135M, two llama.cpp replicas behind the gateway's
  endpoint picker, with a shared system prompt and one session per recording.

It shows both stages live, then a table per recording (queue wait, transcription time, word error
rate, time to first token, summary length), the objects in the control plane, and where the
transcripts, summaries and report are. `demo_manifests()` are the study's own Kueue and Whisper Job
manifests (DAS variant), kept as examples for `flotilla apply`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import httpx
from rich.console import Console

from flotilla.server.runner import free_port

console = Console()


def demo_manifests() -> Path:
    """The demo manifests shipped inside the package."""
    return Path(str(resources.files("flotilla") / "examples" / "demo"))


def _flotilla(*args: str) -> list[str]:
    return [sys.executable, "-m", "flotilla", *args]


def _wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the control plane exited with code {server.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the control plane did not become ready at {url} within {timeout:.0f}s")


def _step(title: str, argv: list[str], env: dict[str, str]) -> int:
    shown = " ".join(["flotilla", *argv[3:]])
    console.print(f"\n[bold cyan]$ {shown}[/]")
    result = subprocess.run(argv, env=env, check=False)
    if result.returncode != 0:
        console.print(f"[red]step failed ({title}): exit code {result.returncode}[/]")
    return result.returncode


def run_demo(keep: bool = False, data_dir: Path | None = None) -> int:
    """Run the demo; returns a process exit code."""
    from flotilla.client import FlotillaClient
    from flotilla.pipelines.cli import build_pipeline, print_outcome, submit_and_follow
    from flotilla.pipelines.recordings import demo_recordings

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    workdir = data_dir or Path(tempfile.mkdtemp(prefix="flotilla-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "speech-to-summary"
    env = {**os.environ, "FLOTILLA_SERVER": url}
    console.rule("[bold]Flotilla demo: speech-to-summary on the embedded control plane")
    console.print(f"State: {workdir}   API: {url}")
    log = (workdir / "controlplane.log").open("wb")
    server = subprocess.Popen(
        _flotilla(
            "up",
            *("--port", str(port), "--data-dir", str(workdir / "state"), "--log-level", "warning"),
            *("--gpu-backend", "emulated", "--gpus", "1x2xA100-40GB", "--gateway-port", str(free_port())),
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(url, server)
        console.print(f"[green]control plane ready[/] (pid {server.pid}): 1 node x 2 emulated A100-40GB, gateway on")
        pipeline = build_pipeline(
            "demo",
            "speech",
            demo_recordings(),
            out,
            asr_model="whisper-tiny.en",
            llm_model="smollm2-135m",
            slices="mig-1g.5gb",
            queue=None,
            replicas=2,
            backoff_limit=2,
        )
        console.print(f"recordings: {demo_recordings()}\n")
        final = submit_and_follow(FlotillaClient(url), pipeline, timeout=900)
        print_outcome(final)
        steps = [
            ("pipelines", _flotilla("get", "pipelines", "-n", "speech")),
            ("jobs", _flotilla("get", "jobs", "-n", "speech", "-o", "wide")),
            ("queues", _flotilla("get", "cq")),
            ("replicas", _flotilla("get", "deployments,inferencepools", "-n", "speech")),
            ("nodes", _flotilla("get", "nodes")),
        ]
        for title, argv in steps:
            if _step(title, argv, env) != 0:
                return 1
        ok = (final.get("status") or {}).get("phase") == "Succeeded"
        report = out / "run" / "report.html"
        where = report if report.exists() else out / "run"
        verdict = "[bold green]Done.[/]" if ok else "[bold red]Finished with failures.[/]"
        console.print(f"\n{verdict} Each recording was transcribed by a queued Whisper Job on its own MIG slice")
        console.print("and summarized by the LLM replicas behind the gateway.")
        console.print(f"Report: {where}  (no dashboard yet: the report is the view of this run)")
        if keep:
            console.print(f"The control plane keeps running at {url} (pid {server.pid}); stop it with Ctrl-C.")
            server.wait()
        return 0 if ok else 1
    except (RuntimeError, TimeoutError, ValueError) as exc:
        console.print(f"[red]demo failed: {exc}[/]  (log: {workdir / 'controlplane.log'})")
        return 1
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
        log.close()
        console.print("control plane stopped")


def main() -> None:
    sys.exit(run_demo())


if __name__ == "__main__":
    main()
