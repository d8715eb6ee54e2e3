"""`make demo` / `flotilla demo`: the workflow on embedded defaults.

At this stage the demo starts the control plane as a real background process on emulated GPUs
(1 node x 2 A100-40GB), applies the project's demo manifests (the study's Kueue setup and its DAS
variant of the Whisper Jobs: 1g.5gb slices for whisper-medium, 3g.20gb for whisper-large) with
`flotilla apply`, waits until the queue has admitted the Jobs and the runtime has carved a MIG
slice for each pod, shows them with `flotilla get`, and stops the server. The pods run the real
transcriber (`flotilla asr transcribe`); the recordings and the stage that feeds them come with
the speech-to-summary workflow, which later extends the demo end to end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

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


def _wait_admitted(url: str, namespace: str, expected: int, timeout: float = 15.0) -> int:
    """Wait until the queue controller has reserved quota for `expected` workloads; return how many."""
    deadline = time.monotonic() + timeout
    admitted = 0
    while time.monotonic() < deadline:
        items = httpx.get(f"{url}/apis/kueue.x-k8s.io/v1beta2/namespaces/{namespace}/workloads", timeout=5).json()
        admitted = sum(
            1
            for wl in items.get("items", [])
            for c in (wl.get("status") or {}).get("conditions") or []
            if c.get("type") == "QuotaReserved" and c.get("status") == "True"
        )
        if admitted >= expected:
            break
        time.sleep(0.1)
    return admitted


def _wait_placed(url: str, namespace: str, expected: int, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
    """Watch AllocationClaims (MIG slices) in `namespace` until `expected` pods got one; return
    each pod's claim as first seen created or in use (they go when the pod ends)."""
    deadline = time.monotonic() + timeout
    seen: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline and len(seen) < expected:
        items = httpx.get(
            f"{url}/apis/inference.redhat.com/v1alpha1/namespaces/{namespace}/allocationclaims", timeout=5
        ).json()
        for c in items.get("items", []):
            if (c.get("status") or {}).get("state") in ("created", "inUse"):
                seen.setdefault(c["spec"]["podRef"]["name"], c)
        time.sleep(0.05)
    return seen


def _print_claims(claims: dict[str, dict[str, Any]]) -> None:
    table = Table(title="MIG slices carved for the pods (AllocationClaims, as they were when created)")
    for column in ("JOB", "PROFILE", "GPU", "SLOTS"):
        table.add_column(column, no_wrap=True)
    for pod, c in sorted(claims.items()):
        start, size = c["spec"]["migPlacement"]["start"], c["spec"]["migPlacement"]["size"]
        slots = f"{start}-{start + size - 1}" if size > 1 else str(start)
        job = pod.rsplit("-", 2)[0]  # <job>-<index>-<suffix>
        table.add_row(job, c["spec"]["profile"], c["spec"]["gpuUUID"][:12], slots)
    console.print(table)


def _step(title: str, argv: list[str], env: dict[str, str]) -> int:
    shown = " ".join(["flotilla", *argv[3:]])
    console.print(f"\n[bold cyan]$ {shown}[/]")
    result = subprocess.run(argv, env=env, check=False)
    if result.returncode != 0:
        console.print(f"[red]step failed ({title}): exit code {result.returncode}[/]")
    return result.returncode


def run_demo(keep: bool = False, data_dir: Path | None = None) -> int:
    """Run the demo; returns a process exit code."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    workdir = data_dir or Path(tempfile.mkdtemp(prefix="flotilla-demo-"))
    env = {**os.environ, "FLOTILLA_SERVER": url}
    console.rule("[bold]Flotilla demo: the study's batch-stage setup on the embedded control plane")
    console.print(f"State: {workdir}   API: {url}")
    log = (workdir / "controlplane.log").open("wb") if workdir.exists() else None
    server = subprocess.Popen(
        _flotilla(
            "up",
            *("--port", str(port), "--data-dir", str(workdir), "--log-level", "warning"),
            *("--gpu-backend", "emulated", "--gpus", "1x2xA100-40GB", "--gateway-port", str(free_port())),
        ),
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(url, server)
        console.print(f"[green]control plane ready[/] (pid {server.pid})")
        if _step("apply", _flotilla("apply", "-f", str(demo_manifests())), env) != 0:
            return 1
        admitted = _wait_admitted(url, "whisper", expected=4)
        if admitted < 4:
            raise RuntimeError(f"the queue controller admitted {admitted} of 4 workloads within 15 s")
        console.print(f"\n[green]queue controller admitted {admitted} of 4 workloads[/]")
        claims = _wait_placed(url, "whisper", expected=4)
        if len(claims) < 4:
            raise RuntimeError(f"the runtime placed {len(claims)} of 4 pods on MIG slices within 30 s")
        console.print(f"[green]runtime carved {len(claims)} MIG slices, one per pod[/]\n")
        _print_claims(claims)
        steps = [
            ("flavors", _flotilla("get", "resourceflavors")),
            ("cluster queues", _flotilla("get", "cq", "-o", "wide")),
            ("local queues", _flotilla("get", "lq", "-n", "whisper")),
            ("jobs", _flotilla("get", "jobs", "-n", "whisper", "-o", "wide")),
            ("workloads", _flotilla("get", "workloads", "-n", "whisper")),
            ("nodes", _flotilla("get", "nodes")),
            ("pods", _flotilla("get", "pods", "-n", "whisper")),
        ]
        for title, argv in steps:
            if _step(title, argv, env) != 0:
                return 1
        console.print(
            "\n[bold green]Done.[/] Kueue-style admission reserved quota for the Whisper Jobs above, and the\n"
            "runtime placed each pod on its own MIG slice of the emulated A100s (first-fit, as DAS does).\n"
            "The pods run the real transcriber (`flotilla asr transcribe`) on /data/recording-N.wav; the\n"
            "recordings and the pipeline stage that puts them there come with the speech-to-summary workflow,\n"
            "so for now they exit with an error (`flotilla logs job/NAME -n whisper` shows it)."
        )
        if keep:
            console.print(f"The control plane keeps running at {url} (pid {server.pid}); stop it with Ctrl-C.")
            server.wait()
        return 0
    except RuntimeError as exc:
        console.print(f"[red]demo failed: {exc}[/]  (log: {workdir / 'controlplane.log'})")
        return 1
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
        if log:
            log.close()
        console.print("control plane stopped")


def main() -> None:
    sys.exit(run_demo())


if __name__ == "__main__":
    main()
