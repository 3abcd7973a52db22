"""Percentiles and summaries of the samples a load run returns."""

from __future__ import annotations

from typing import Any


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100); None for no data."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def distribution(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": percentile(values, 50), "p90": percentile(values, 90), "p99": percentile(values, 99),
        "max": max(values) if values else None, "mean": sum(values) / len(values) if values else None,
        "n": len(values),
    }


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    """The figures of one load run (samples stay in `raw`, for the charts)."""
    summary: dict[str, Any] = {
        "ok": raw["ok"], "errors": raw["errors"], "throughput_rps": raw["throughput_rps"],
        "latency": distribution(raw["latency_ms"]), "client_cpu_s": raw["client_cpu_s"],
    }
    if raw.get("error_samples"):
        summary["error_samples"] = raw["error_samples"][:3]
    if raw.get("tokens"):
        summary["tokens"] = raw["tokens"]
        summary["ttft"] = distribution(raw["ttft_ms"])
        summary["gap"] = distribution(raw["gap_ms"])
        summary["relay"] = distribution(raw["relay_ms"])
    return summary
