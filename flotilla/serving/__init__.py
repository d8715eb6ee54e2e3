"""Model servers: the real backends a pipeline stage runs (speech recognition in `asr/`, language
models in `llm/`) and an emulator of a vLLM-compatible engine. Each exposes an OpenAI-compatible HTTP
API and Prometheus metrics, so the gateway and the endpoint picker treat them alike."""
