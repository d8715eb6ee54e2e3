"""The engine emulator's performance model: GPU and LLM data, KV-cache capacity and step time.

Data (`data/gpus.yaml`, `data/models.yaml`, every number with its source; MIG slices from the
slicer's profile tables). Derived numbers, vLLM's way:

    kv_bytes_per_token = 2 (K and V) x layers x kv_heads x head_dim x kv_bytes_per_element
    block_bytes        = block_size (16) x kv_bytes_per_token
    weights            = parameters x bytes_per_parameter
    reserve            = non_torch + activation_bytes_per_token x max_num_batched_tokens
                         + max_num_seqs x vocab x 4 (the sampler's fp32 logits at the profiling run)
    num_gpu_blocks     = floor((memory x gpu_memory_utilization - weights - reserve) / block_bytes)

Block 0 is vLLM's null block, so `num_gpu_blocks - 1` blocks hold tokens.

Step time (a roofline): for the requests i of one step with n_i new tokens after c_i computed ones,
T = sum n_i, S = requests that sample a token, A = sum n_i (c_i + (n_i + 1) / 2) query-key pairs,

    t_compute = 2 P_lin T / (F eta_mm) + 2 P_head S / (F eta_mm) + 4 L (nq d) A / (F eta_attn)
    t_memory  = (bytes(P_lin + P_head) + kv_bytes_per_token x sum (c_i + n_i)) / (B eta_bw)
    t_step    = max(t_compute, t_memory) + t_fixed + t_request x N + t_lora

with P_lin the parameters of the transformer layers, P_head = vocab x hidden (the LM head, run only
for sampled positions), F the dense BF16 FLOP/s, B the HBM bytes/s, N the scheduled requests and
t_lora the adapter loads of the step. The coefficients (eta_*, t_fixed, t_request) are data per
architecture, fitted to published vLLM runs (docs/serving-emulator.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flotilla.slicer.profiles import ProfileCatalog, load_catalog

BLOCK_SIZE = 16
MIB = 1024 * 1024
LOGITS_BYTES = 4  # the sampler's logits are fp32


class PerfDataError(ValueError):
    """The performance data, or a lookup in it, is wrong; the message says what would be right."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GpuSpec(_Frozen):
    """One GPU model's datasheet numbers (data/gpus.yaml)."""

    name: str
    architecture: str
    memory_mib: int = Field(gt=0)
    hbm_bandwidth_gbps: float = Field(gt=0)
    bf16_dense_tflops: float = Field(gt=0)
    multiprocessors: int = Field(gt=0)
    pcie_gbps: float = Field(gt=0)


class Calibration(_Frozen):
    """How much of the peak vLLM reaches on one architecture, and its fixed costs."""

    matmul_efficiency: float = Field(gt=0, le=1)
    attention_efficiency: float = Field(gt=0, le=1)
    bandwidth_efficiency: float = Field(gt=0, le=1)
    step_overhead_s: float = Field(ge=0)
    per_request_overhead_s: float = Field(ge=0)
    non_torch_mib: int = Field(ge=0)


class LlmSpec(_Frozen):
    """One LLM's shapes (data/models.yaml), with the numbers derived from them."""

    name: str
    hf_id: str
    num_hidden_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    max_position_embeddings: int = Field(gt=0)
    tie_word_embeddings: bool
    qk_norm: bool
    parameters: int = Field(gt=0)
    bytes_per_parameter: int = Field(gt=0)
    kv_bytes_per_element: int = Field(gt=0)
    activation_bytes_per_token: int = Field(ge=0)

    @property
    def kv_bytes_per_token(self) -> int:
        """2 (K, V) x layers x kv_heads x head_dim x bytes."""
        return 2 * self.num_hidden_layers * self.num_key_value_heads * self.head_dim * self.kv_bytes_per_element

    @property
    def embedding_parameters(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def layer_parameters(self) -> int:
        """All transformer-layer parameters (P_lin), from the shapes."""
        h, i, d = self.hidden_size, self.intermediate_size, self.head_dim
        nq, nkv = self.num_attention_heads, self.num_key_value_heads
        attention = h * nq * d + 2 * h * nkv * d + nq * d * h
        per_layer = attention + 3 * h * i + 2 * h + (2 * d if self.qk_norm else 0)
        return self.num_hidden_layers * per_layer

    @property
    def counted_parameters(self) -> int:
        """Layers + embedding + LM head (unless tied) + final norm: should equal `parameters`."""
        head = 0 if self.tie_word_embeddings else self.embedding_parameters
        return self.layer_parameters + self.embedding_parameters + head + self.hidden_size

    @property
    def weight_bytes(self) -> int:
        return self.parameters * self.bytes_per_parameter

    @property
    def streamed_weight_bytes(self) -> int:
        """Weights read by every step: the layers and the LM head (embedding rows are a gather)."""
        return (self.layer_parameters + self.embedding_parameters) * self.bytes_per_parameter

    def lora_bytes(self, rank: int) -> int:
        """A and B of all seven linear layers: rank x layers x bytes x (7h + 2 nq d + 2 nkv d + 3I)."""
        h, i, d = self.hidden_size, self.intermediate_size, self.head_dim
        width = 7 * h + 2 * self.num_attention_heads * d + 2 * self.num_key_value_heads * d + 3 * i
        return rank * self.num_hidden_layers * self.bytes_per_parameter * width


class LoraSpec(_Frozen):
    rank: int = Field(gt=0)
    load_overhead_s: float = Field(ge=0)


class _GpuFile(_Frozen):
    gpus: tuple[GpuSpec, ...]
    calibration: dict[str, Calibration]


class _ModelFile(_Frozen):
    models: tuple[LlmSpec, ...]
    lora: LoraSpec


def _load(name: str, model: type[BaseModel]) -> Any:
    text = (resources.files("flotilla.serving.emulator") / "data" / name).read_text(encoding="utf-8")
    try:
        return model.model_validate(yaml.safe_load(text))
    except ValidationError as exc:
        raise PerfDataError(f"flotilla/serving/emulator/data/{name}: {exc}") from None


@dataclass(frozen=True)
class PerfData:
    """Everything in data/: GPUs, their calibration, LLMs, LoRA, and the slicer's MIG tables."""

    gpus: dict[str, GpuSpec]
    calibration: dict[str, Calibration]
    models: dict[str, LlmSpec]
    lora: LoraSpec
    mig: ProfileCatalog

    def gpu(self, name: str) -> GpuSpec:
        for key, spec in self.gpus.items():
            if key.lower() == name.lower():
                return spec
        raise PerfDataError(f"unknown GPU {name!r}; known: {', '.join(self.gpus)} (a MIG slice: A100-80GB:3g.40gb)")

    def model(self, name: str) -> LlmSpec:
        for spec in self.models.values():
            if name.lower() in (spec.name.lower(), spec.hf_id.lower()):
                return spec
        raise PerfDataError(f"unknown model {name!r}; known: {', '.join(self.models)}")


@cache
def load_perf_data() -> PerfData:
    """The shipped data files (cached: they are read once per process)."""
    g: _GpuFile = _load("gpus.yaml", _GpuFile)
    m: _ModelFile = _load("models.yaml", _ModelFile)
    for spec in g.gpus:
        if spec.architecture not in g.calibration:
            raise PerfDataError(f"gpus.yaml: {spec.name}: no calibration for architecture {spec.architecture!r}")
    return PerfData(
        gpus={s.name: s for s in g.gpus},
        calibration=dict(g.calibration),
        models={s.name: s for s in m.models},
        lora=m.lora,
        mig=load_catalog(),
    )


@dataclass(frozen=True)
class Accelerator:
    """What one engine runs on: a whole GPU or a MIG slice of one, in bytes and FLOP/s."""

    name: str
    memory_bytes: int
    flops: float  # dense BF16 FLOP/s
    bandwidth: float  # HBM bytes/s
    pcie_bandwidth: float  # host-to-device bytes/s
    calibration: Calibration

    @classmethod
    def parse(cls, spec: str, data: PerfData | None = None) -> Accelerator:
        """`A100-80GB` (whole GPU) or `A100-80GB:3g.40gb` (a MIG slice: its SMs, memory slices, memory)."""
        data = data or load_perf_data()
        name, _, profile = spec.replace("/", ":").partition(":")
        gpu = data.gpu(name.strip())
        calibration = data.calibration[gpu.architecture]
        flops, bandwidth = gpu.bf16_dense_tflops * 1e12, gpu.hbm_bandwidth_gbps * 1e9
        if not profile:
            return cls(gpu.name, gpu.memory_mib * MIB, flops, bandwidth, gpu.pcie_gbps * 1e9, calibration)
        try:
            geometry = data.mig.model(gpu.name)
            slice_ = geometry.profile(profile.strip())
        except LookupError as exc:
            raise PerfDataError(str(exc)) from None
        return cls(
            f"{gpu.name}:{slice_.name}",
            slice_.memory_mib * MIB,
            flops * slice_.multiprocessors / gpu.multiprocessors,
            bandwidth * slice_.size / geometry.slots,
            gpu.pcie_gbps * 1e9,
            calibration,
        )


@dataclass(slots=True)
class StepShape:
    """The aggregates of one step's batch that its time depends on (see the module docstring)."""

    tokens: int = 0  # T
    sampled: int = 0  # S
    requests: int = 0  # N
    attention_pairs: float = 0.0  # A
    kv_tokens_read: int = 0  # sum (c_i + n_i)
    lora_load_s: float = 0.0


class PerfModel:
    """One engine's model: an LLM on an accelerator with vLLM's memory settings."""

    def __init__(
        self,
        accelerator: Accelerator,
        model: LlmSpec,
        *,
        gpu_memory_utilization: float = 0.9,
        max_num_batched_tokens: int = 8192,
        max_num_seqs: int = 256,
        block_size: int = BLOCK_SIZE,
    ) -> None:
        if not 0 < gpu_memory_utilization <= 1:
            raise PerfDataError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
        self.accelerator, self.model, self.block_size = accelerator, model, block_size
        self.gpu_memory_utilization = gpu_memory_utilization
        self.max_num_batched_tokens, self.max_num_seqs = max_num_batched_tokens, max_num_seqs
        cal = accelerator.calibration
        self._mm = accelerator.flops * cal.matmul_efficiency
        self._attn = accelerator.flops * cal.attention_efficiency
        self._bw = accelerator.bandwidth * cal.bandwidth_efficiency
        self._lin2 = 2.0 * model.layer_parameters
        self._head2 = 2.0 * model.embedding_parameters
        self._attn4 = 4.0 * model.num_hidden_layers * model.num_attention_heads * model.head_dim
        self._weights = float(model.streamed_weight_bytes)
        self._kvb = float(model.kv_bytes_per_token)
        self._fixed, self._per_request = cal.step_overhead_s, cal.per_request_overhead_s

    @property
    def kv_bytes_per_token(self) -> int:
        return self.model.kv_bytes_per_token

    @property
    def block_bytes(self) -> int:
        return self.block_size * self.kv_bytes_per_token

    @property
    def reserve_bytes(self) -> int:
        """Memory kept from the KV cache besides weights: non-torch + activation peak + sampler logits."""
        cal, m = self.accelerator.calibration, self.model
        return (
            cal.non_torch_mib * MIB
            + m.activation_bytes_per_token * self.max_num_batched_tokens
            + self.max_num_seqs * m.vocab_size * LOGITS_BYTES
        )

    @property
    def kv_cache_bytes(self) -> int:
        """memory x utilization - weights - reserve (negative: the model does not fit)."""
        budget = math.floor(self.accelerator.memory_bytes * self.gpu_memory_utilization)
        return budget - self.model.weight_bytes - self.reserve_bytes

    @property
    def num_gpu_blocks(self) -> int:
        """vLLM's num_gpu_blocks (block 0 is the null block); PerfDataError when nothing is left for KV."""
        available = self.kv_cache_bytes
        if available < 2 * self.block_bytes:
            gib = 1024**3
            raise PerfDataError(
                f"{self.model.name} does not fit on {self.accelerator.name}: "
                f"{self.accelerator.memory_bytes / gib:.2f} GiB x {self.gpu_memory_utilization} - weights "
                f"{self.model.weight_bytes / gib:.2f} GiB - reserve {self.reserve_bytes / gib:.2f} GiB leaves "
                f"{available / gib:.2f} GiB for the KV cache; use a larger GPU or slice, or raise "
                "--gpu-memory-utilization"
            )
        return available // self.block_bytes

    def step_time(self, shape: StepShape) -> float:
        """Seconds for one engine step of this shape (module docstring); 0 for an empty step."""
        if shape.requests == 0:
            return 0.0
        compute = (self._lin2 * shape.tokens + self._head2 * shape.sampled) / self._mm
        compute += self._attn4 * shape.attention_pairs / self._attn
        memory = (self._weights + self._kvb * shape.kv_tokens_read) / self._bw
        return max(compute, memory) + self._fixed + self._per_request * shape.requests + shape.lora_load_s

    def lora_load_time(self, rank: int, from_disk: bool, load_overhead_s: float) -> float:
        """Host-to-GPU copy of one adapter (bytes / PCIe), plus the disk read when it is not in the CPU cache."""
        copy = self.model.lora_bytes(rank) / self.accelerator.pcie_bandwidth
        return copy + (load_overhead_s if from_disk else 0.0)
