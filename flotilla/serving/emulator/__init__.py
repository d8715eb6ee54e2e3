"""A vLLM-compatible engine emulator: vLLM V1's scheduler, paged KV cache and prefix caching, timed
by a roofline performance model, behind the OpenAI API (`flotilla serve emulated`)."""
