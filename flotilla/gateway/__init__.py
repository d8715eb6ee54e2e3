"""The inference gateway: an OpenAI-compatible front door (Python, or Envoy with Flotilla as its
external-processing endpoint picker) that routes each request to the best model-server endpoint,
GAIE / llm-d style: filters, scorers and a picker over a snapshot of the endpoints' metrics."""
