"""Envoy as Flotilla's data plane: Envoy receives the OpenAI requests and asks Flotilla's endpoint
picker over ext_proc (gRPC) where each one goes, as in the Gateway API Inference Extension.

- `extproc`: the ExternalProcessor server (`serve_extproc`) around an injected `pick` callback
  that returns a `PickDecision`;
- `config`: the Envoy bootstrap (`EnvoyConfig`, `build_config`, `render_config`);
- `launcher`: finding, starting and stopping the Envoy binary (`start_envoy`, `EnvoyProcess`).

See docs/gateway.md.
"""

from flotilla.gateway.envoy.config import EnvoyConfig, build_config, render_config
from flotilla.gateway.envoy.extproc import (
    DESTINATION_HEADER,
    SERVED_HEADER,
    ExtProcServer,
    PickDecision,
    PickFn,
    serve_extproc,
)
from flotilla.gateway.envoy.launcher import EnvoyNotFound, EnvoyProcess, EnvoyStartError, find_envoy, start_envoy

__all__ = [
    "DESTINATION_HEADER",
    "SERVED_HEADER",
    "EnvoyConfig",
    "EnvoyNotFound",
    "EnvoyProcess",
    "EnvoyStartError",
    "ExtProcServer",
    "PickDecision",
    "PickFn",
    "build_config",
    "find_envoy",
    "render_config",
    "serve_extproc",
    "start_envoy",
]
