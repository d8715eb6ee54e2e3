"""`flotilla serve ...`: model servers (Whisper ASR, llama.cpp LLM, the vLLM-compatible emulator, real vLLM)."""

from __future__ import annotations

import typer

from flotilla.serving.asr.cli import serve_asr
from flotilla.serving.emulator.cli import serve_emulated
from flotilla.serving.llm.cli import serve_llm, serve_vllm

serve_app = typer.Typer(
    name="serve", help="Run model servers (OpenAI-compatible APIs, vLLM metrics).", no_args_is_help=True
)
serve_app.command("asr")(serve_asr)
serve_app.command("llm")(serve_llm)
serve_app.command("vllm")(serve_vllm)
serve_app.command("emulated")(serve_emulated)
