"""Statistics over a run's records, shared by the load generator, the pipeline and the reports."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from flotilla.runs.records import RequestRecord


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0 <= q <= 100) by linear interpolation between closest ranks: numpy's default
    (Hyndman and Fan's type 7). Position (n - 1) * q / 100 in the sorted values; p50 of [1, 2, 3, 4] is 2.5.
    ValueError for no values or q outside 0..100."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q}: expected 0..100")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def finite_json(value: Any) -> Any:
    """`value` (JSON-shaped) with NaN and infinities as None: JSON has no NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def itl(record: RequestRecord) -> float | None:
    """GuideLLM's inter-token latency: (e2e - TTFT) / (output tokens - 1); None with one token or less."""
    ttft, e2e = record.ttft, record.latency
    if ttft is None or e2e is None or record.output_tokens <= 1:
        return None
    return (e2e - ttft) / (record.output_tokens - 1)
