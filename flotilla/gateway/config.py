"""The front door's settings (`flotilla gateway` options), validated: every timeout in seconds."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class GatewayConfig(BaseModel):
    """How the front door behaves (every timeout in seconds)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: str = "default"
    scrape_interval: float = Field(default=0.05, gt=0)
    stale_after: float = Field(default=2.0, gt=0)
    resync_interval: float = Field(default=1.0, gt=0)
    connect_timeout: float = Field(default=5.0, gt=0)
    request_timeout: float = Field(default=600.0, gt=0)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1)
    gateway: str | None = None  # "namespace/name": only HTTPRoutes attached to this Gateway apply
    kv_events: bool = False
    seed: int | None = None
