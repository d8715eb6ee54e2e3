"""The LLM server: packaged GGUF models on llama.cpp behind an OpenAI API with vLLM's metrics; the vLLM launcher."""
