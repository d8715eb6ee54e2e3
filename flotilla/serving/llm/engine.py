"""llama.cpp's HTTP server, run in this process by xllamacpp, on an internal loopback port.

`xllamacpp.Server(CommonParams)` loads the model and starts llama.cpp's own server (continuous
batching over `n_parallel` slots, prompt caching, the OpenAI routes, `/metrics`, `/slots`) on
threads of its own; the constructor returns once the model is loaded and holds the GIL while it
loads. Dropping the last reference stops the loop, joins its threads and closes its port.

The front (server.py) talks to it over HTTP rather than through xllamacpp's in-process callbacks:
llama.cpp's HTTP handlers stream tokens as they come without holding the GIL, and the server's
own routes cannot be extended from Python, so a thin proxy is what gives vLLM's metrics names.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("flotilla.serving.llm")


class EngineError(RuntimeError):
    """The engine could not start (missing package, a model llama.cpp cannot load)."""


class Engine(Protocol):
    """What the front needs from an engine: start (blocking until the model is loaded) and stop."""

    def start(self) -> str:
        """Load the model, start serving and return the base URL (`http://127.0.0.1:PORT`)."""
        ...

    def stop(self) -> None:
        """Stop serving and free the port and threads; safe to call twice or before start."""
        ...


@dataclass(frozen=True)
class EngineConfig:
    """llama.cpp's settings. `ctx_size` is the KV-cache size in tokens, shared by the `parallel` slots
    (llama.cpp's unified KV cache, like vLLM's block pool); one request may use all of it.
    `threads`: CPU threads for llama.cpp (default: `default_threads()`)."""

    model_path: Path
    served_name: str
    parallel: int = 4
    ctx_size: int = 4096
    threads: int | None = None
    verbose: bool = False


def default_threads() -> int:
    """Half the CPUs this process may use, at least 1.

    ggml's threads meet at a barrier after every operation, so one thread descheduled by another
    process stalls them all: on a 2-core machine shared with other work, 2 threads decoded
    SmolLM2-135M at 5-12 tokens/s where 1 thread did 55-80. Flotilla's servers share their machine."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 2
    return max(1, cpus // 2)


class LlamaCppEngine:
    """llama.cpp's server via xllamacpp, bound to 127.0.0.1 on a port the OS picks."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._server: Any = None
        self._lock = threading.Lock()

    def start(self) -> str:
        try:
            import xllamacpp  # type: ignore[import-untyped]  # no type stubs ship with it
        except ImportError as exc:
            raise EngineError("xllamacpp is not installed: pip install xllamacpp") from exc
        c = self.config
        params = xllamacpp.CommonParams()
        params.model.path = str(c.model_path)
        params.model_alias = {c.served_name}  # responses carry the served name, not the file path
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # the OS picks a free port; listening_address reports it
        params.n_parallel = c.parallel
        params.n_ctx = c.ctx_size
        params.kv_unified = True
        params.cont_batching = True
        params.cache_prompt = True
        params.endpoint_metrics = True
        params.endpoint_slots = True
        params.ui = False
        # Room for every slot's request, as many deferred ones and the front's scrapes of /metrics and /slots.
        params.n_threads_http = 2 * c.parallel + 4
        threads = c.threads or default_threads()
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.verbosity = 3 if c.verbose else 0
        try:
            server = xllamacpp.Server(params)
        except Exception as exc:  # xllamacpp raises RuntimeError("Failed to init server, ...")
            raise EngineError(f"llama.cpp could not load {c.model_path}: {exc}") from exc
        with self._lock:
            self._server = server
        address = str(server.listening_address)
        log.info(
            "llama.cpp serves %s at %s (%d slots, %d-token KV cache)", c.served_name, address, c.parallel, c.ctx_size
        )
        return address

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        # The last reference: its destructor terminates the loop and joins llama.cpp's threads.
        del server
