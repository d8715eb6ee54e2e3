"""The performance model's data and derived numbers, against values computed by hand."""

from __future__ import annotations

import pytest

from flotilla.serving.emulator.calibration import CASES, run_case
from flotilla.serving.emulator.perfmodel import MIB, Accelerator, PerfDataError, PerfModel, StepShape, load_perf_data
from flotilla.slicer.profiles import load_catalog

DATA = load_perf_data()


def qwen_on(gpu: str, **kwargs: float) -> PerfModel:
    return PerfModel(Accelerator.parse(gpu), DATA.model("qwen3-8b"), **kwargs)  # type: ignore[arg-type]


def test_qwen3_8b_kv_bytes_per_token():
    # 2 (K, V) x 36 layers x 8 KV heads x 128 head_dim x 2 bytes (BF16)
    assert DATA.model("qwen3-8b").kv_bytes_per_token == 2 * 36 * 8 * 128 * 2 == 147_456
    assert DATA.model("smollm2-135m").kv_bytes_per_token == 2 * 30 * 3 * 64 * 2 == 23_040


def test_qwen3_8b_block_capacity_on_a100_80gb():
    perf = qwen_on("A100-80GB", gpu_memory_utilization=0.9, max_num_batched_tokens=8192, max_num_seqs=256)
    memory = 81_920 * 1_048_576  # nvidia-smi's 81920 MiB
    budget = 77_309_411_328  # floor(memory x 0.9)
    weights = 8_190_735_360 * 2  # parameters x BF16
    reserve = 512 * MIB + 106_496 * 8192 + 256 * 151_936 * 4  # non-torch + activations + fp32 logits
    assert memory * 9 // 10 == budget
    assert reserve == 1_564_868_608
    assert perf.kv_cache_bytes == budget - weights - reserve == 59_363_072_000
    assert perf.block_bytes == 16 * 147_456 == 2_359_296
    assert perf.num_gpu_blocks == 59_363_072_000 // 2_359_296 == 25_161  # 402,560 tokens after the null block


def test_parameter_counts_match_the_shapes():
    for model in DATA.models.values():
        assert model.counted_parameters == model.parameters, model.name
    qwen = DATA.model("Qwen/Qwen3-8B")
    assert qwen.layer_parameters == 6_946_071_552  # the card's 6.95B non-embedding parameters


def test_gpu_memory_agrees_with_the_slicer_tables():
    catalog = load_catalog()
    for gpu in DATA.gpus.values():
        if gpu.architecture != "cpu":  # the CPU device has no MIG table
            assert gpu.memory_mib == catalog.model(gpu.name).memory_mib, gpu.name


def test_mig_slice_scales_compute_bandwidth_and_memory():
    whole, part = Accelerator.parse("A100-80GB"), Accelerator.parse("A100-80GB:3g.40gb")
    assert part.memory_bytes == 40_192 * MIB
    assert part.flops == pytest.approx(whole.flops * 42 / 108)  # 42 of 108 SMs
    assert part.bandwidth == pytest.approx(whole.bandwidth * 4 / 8)  # 4 of 8 memory slices
    assert Accelerator.parse("a100-80gb/3g.40gb") == part


def test_model_too_large_for_a_slice_is_an_error_that_says_so():
    with pytest.raises(PerfDataError, match=r"does not fit on A100-80GB:1g\.10gb"):
        _ = qwen_on("A100-80GB:1g.10gb").num_gpu_blocks
    with pytest.raises(PerfDataError, match="unknown GPU"):
        Accelerator.parse("V100")
    with pytest.raises(PerfDataError, match="no MIG profile"):
        Accelerator.parse("A100-80GB:9g.99gb")


def test_step_time_is_the_roofline_formula():
    perf = qwen_on("H100-80GB")
    cal, m = perf.accelerator.calibration, DATA.model("qwen3-8b")
    flops, bw = 989e12, 3350e9
    # one decode token after 1000 computed: memory-bound
    decode = StepShape(tokens=1, sampled=1, requests=1, attention_pairs=1 * (1000 + 1), kv_tokens_read=1001)
    memory = (m.streamed_weight_bytes + 147_456 * 1001) / (bw * cal.bandwidth_efficiency)
    assert perf.step_time(decode) == pytest.approx(memory + cal.step_overhead_s + cal.per_request_overhead_s)
    # an 8192-token prefill chunk from scratch: compute-bound
    n = 8192
    prefill = StepShape(tokens=n, sampled=1, requests=1, attention_pairs=n * (n + 1) / 2, kv_tokens_read=n)
    compute = (2 * m.layer_parameters * n + 2 * m.embedding_parameters) / (flops * cal.matmul_efficiency)
    compute += 4 * 36 * 32 * 128 * (n * (n + 1) / 2) / (flops * cal.attention_efficiency)
    assert perf.step_time(prefill) == pytest.approx(compute + cal.step_overhead_s + cal.per_request_overhead_s)
    assert perf.step_time(StepShape()) == 0.0


def test_lora_load_time_is_bytes_over_pcie_plus_the_disk_read():
    perf = qwen_on("A100-80GB")
    # rank 16 x 36 layers x 2 bytes x (7h + 2 nq d + 2 nkv d + 3I) = 87,293,952 bytes
    assert DATA.model("qwen3-8b").lora_bytes(16) == 16 * 36 * 2 * (7 * 4096 + 2 * 4096 + 2 * 1024 + 3 * 12288)
    assert perf.lora_load_time(16, False, 0.02) == pytest.approx(87_293_952 / 32e9)
    assert perf.lora_load_time(16, True, 0.02) == pytest.approx(87_293_952 / 32e9 + 0.02)


def test_calibrated_decode_matches_the_published_tpot():
    """Qwen3-8B on H100 SXM, ShareGPT at concurrency 4, vLLM v0.11.0: median TPOT 7.40 ms (within 10%)."""
    case = next(c for c in CASES if c.name == "h100-8b-sharegpt-c4")
    assert run_case(case) == pytest.approx(case.published, rel=0.10)
