"""What `flotilla kube render` is told: versions, images and the cluster's shape (frozen, validated)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flotilla import __version__

KueueVersion = Literal["v1beta2", "v1beta1"]
PickerChoice = Literal["flotilla", "llm-d"]

FLOTILLA_IMAGE = f"localhost/flotilla:{__version__}"  # what the rendered Containerfile builds (`--image` for yours)
VLLM_IMAGE = "vllm/vllm-openai:v0.11.0"
LLMD_EPP_IMAGE = "ghcr.io/llm-d/llm-d-inference-scheduler:v0.3.2"
SYSTEM_NAMESPACE = "flotilla-system"


class RenderOptions(BaseModel):
    """Options of one rendering; every default is what the docs describe (docs/kubernetes.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kueue_version: KueueVersion = "v1beta2"
    picker: PickerChoice = "flotilla"
    image: str = Field(default=FLOTILLA_IMAGE, min_length=1)  # Flotilla's own image (jobs, picker, health)
    vllm_image: str = Field(default=VLLM_IMAGE, min_length=1)
    epp_image: str = Field(default=LLMD_EPP_IMAGE, min_length=1)  # llm-d's endpoint picker (--picker llm-d)
    system_namespace: str = SYSTEM_NAMESPACE  # Flotilla's cluster-wide components (the health checker)
    gateway_class: str = "istio"  # the GatewayClass of the rendered Gateways (istio, kgateway, ...)
    gpus: str = "1x2xA100-40GB"  # the cluster's GPUs, NODESxGPUSxMODEL: sizes the quotas rendered for Pipelines
    health_interval_seconds: int = Field(default=30, ge=5)
