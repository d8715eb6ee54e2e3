"""`flotilla serve llm`: a packaged GGUF model on llama.cpp, behind the OpenAI API with vLLM's metrics.

Two servers in one process. llama.cpp's own HTTP server (xllamacpp, engine.py) runs on an internal
loopback port the OS picks; the front (app.py, FastAPI on uvicorn) listens on the public port and
forwards to it. Why a front rather than llama.cpp's server alone: its routes cannot be extended
from Python and its `/metrics` speaks `llamacpp:*`; the gateway's endpoint picker scrapes vLLM's
names, and TTFT and inter-token latency are only measured where the stream passes.

Start-up: the front binds its port first (so a taken port fails at once and `/health` answers 503),
then the model loads on a background thread; `/health` turns 200 when it is loaded. Note that
xllamacpp holds the GIL while it loads a model, so the front answers nothing during that time
(about 0.4 s for SmolLM2-135M). Shutdown (Ctrl-C, SIGTERM, `stop()`): uvicorn stops (in-flight requests get a
few seconds), then the engine stops, which joins llama.cpp's threads and closes the internal port.

    with LlmServer(LlmServerConfig(port=free_port())).start_in_thread() as server:
        server.wait_ready(60)
        ...  # OpenAI client at server.url + "/v1"
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import uvicorn
from pydantic import BaseModel, Field

from flotilla.serving.llm.app import FrontState, create_app
from flotilla.serving.llm.engine import Engine, EngineConfig, EngineError, LlamaCppEngine
from flotilla.serving.llm.models import DEFAULT_MODEL, resolve_model
from flotilla.serving.vllm_metrics import VllmMetrics

DEFAULT_PORT = 8000  # vLLM's default: a client written for vLLM finds this server where it expects one
DEFAULT_HOST = "127.0.0.1"
GRACEFUL_SHUTDOWN_S = 5
log = logging.getLogger("flotilla.serving.llm")


class LlmServerConfig(BaseModel, frozen=True, extra="forbid"):
    """`model`: a registered name (models.py) or a path to a `.gguf` file; `served_model_name`: the name
    clients send as `model` (default: the registered name, or the file's stem); `parallel`: llama.cpp's
    slots (requests decoded together); `ctx_size`: the KV cache in tokens, shared by the slots."""

    model: str = DEFAULT_MODEL
    served_model_name: str | None = None
    host: str = DEFAULT_HOST
    port: int = Field(DEFAULT_PORT, ge=1, le=65535)
    parallel: int = Field(4, ge=1, le=256)
    ctx_size: int = Field(4096, ge=256)
    threads: int | None = Field(None, ge=1)
    verbose: bool = False


class LlmServer:
    """The front and its engine. `engine` replaces llama.cpp (tests); by default the model is resolved
    here, so a bad name or path raises `ModelNotFoundError` before any port is bound."""

    def __init__(self, config: LlmServerConfig, engine: Engine | None = None) -> None:
        self.config = config
        if engine is None:
            model = resolve_model(config.model)
            served = config.served_model_name or model.name
            engine = LlamaCppEngine(
                EngineConfig(
                    model_path=model.path,
                    served_name=served,
                    parallel=config.parallel,
                    ctx_size=config.ctx_size,
                    threads=config.threads,
                    verbose=config.verbose,
                )
            )
        else:
            served = config.served_model_name or config.model
        self.engine = engine
        self.served_name = served
        self.metrics = VllmMetrics(served, max_model_len=config.ctx_size)
        self.state = FrontState(served_name=served, kv_capacity=config.ctx_size, metrics=self.metrics)
        self.app = create_app(self.state)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loader: threading.Thread | None = None
        self._loaded = threading.Event()
        self._on_failure: Callable[[], None] | None = None

    @property
    def url(self) -> str:
        host = self.config.host if self.config.host not in ("0.0.0.0", "::") else DEFAULT_HOST
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.config.port}"

    def _uvicorn(self, log_level: str) -> uvicorn.Server:
        config = uvicorn.Config(
            self.app,
            host=self.config.host,
            port=self.config.port,
            log_level=log_level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        return uvicorn.Server(config)

    def serve(self, log_level: str = "info") -> int:
        """Serve in the foreground until Ctrl-C or SIGTERM, then stop cleanly; 1 if the model failed to
        load, else 0. `RuntimeError` if the port cannot be bound.

        uvicorn runs on a thread and this one waits for the signal: uvicorn's own handling re-raises
        SIGTERM after its shutdown, which would end the process before llama.cpp's threads are joined."""
        stopping = threading.Event()
        self._on_failure = stopping.set
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, lambda *_: stopping.set())
        try:
            self.start_in_thread(log_level)
            while not stopping.wait(0.2):
                if self._thread is None or not self._thread.is_alive():
                    break
        finally:
            self.stop()
            for restored, handler in previous.items():
                signal.signal(restored, handler)
        return 1 if self.state.error else 0

    def start_in_thread(self, log_level: str = "warning") -> LlmServer:
        """Serve on a background thread (tests, demos); returns once the port accepts connections.
        The model loads in the background: `wait_ready()` waits for it."""
        self._server = self._uvicorn(log_level)
        self._thread = threading.Thread(target=self._server.run, name="flotilla-llm-front", daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the LLM server failed to start on {self.url} (is the port taken?)")
            self._thread.join(0.02)
        self._start_loader()
        return self

    def wait_ready(self, timeout: float) -> None:
        """Block until the model is loaded; `EngineError` if it failed, `TimeoutError` after `timeout` s."""
        if not self._loaded.wait(timeout):
            raise TimeoutError(f"the model {self.served_name!r} did not load within {timeout} s")
        if self.state.error:
            raise EngineError(self.state.error)

    def stop(self) -> None:
        """Stop the front, then the engine; joins every thread this server started."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(GRACEFUL_SHUTDOWN_S + 5)
            self._thread = None
        self._stop_engine()

    def _start_loader(self) -> None:
        self._loader = threading.Thread(target=self._load, name="flotilla-llm-load", daemon=True)
        self._loader.start()

    def _load(self) -> None:
        server = self._server
        try:
            while server is not None and not server.started:
                if server.should_exit:
                    return
                time.sleep(0.02)
            t0 = time.monotonic()
            upstream = self.engine.start()
            log.info("model %s loaded in %.1f s; serving at %s", self.served_name, time.monotonic() - t0, self.url)
            self.state.upstream = upstream
        except Exception as exc:  # any failure to load is reported by /health, wait_ready() and the exit code
            self.state.error = str(exc)
            log.error("%s", exc)
            if self._on_failure is not None:
                self._on_failure()
        finally:
            self._loaded.set()

    def _stop_engine(self) -> None:
        if self._loader is not None:
            self._loader.join()
            self._loader = None
        self.state.upstream = None
        self.engine.stop()

    def __enter__(self) -> LlmServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
