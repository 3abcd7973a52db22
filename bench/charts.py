"""PNG charts of one run (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"floor": "#7f7f7f", "proxy": "#1f77b4", "headwater": "#d62728"}
LABELS = {"floor": "mock direct (floor)", "proxy": "pass-through proxy", "headwater": "Headwater"}


def _records(results: dict, scenario: str) -> list[dict[str, Any]]:
    return [r for r in results["records"] if r["scenario"] == scenario and "latency" in r]


def _cdf(ax, values: list[float], **style) -> None:
    if not values:
        return
    ordered = sorted(values)
    n = len(ordered)
    ax.plot(ordered, [(i + 1) / n for i in range(n)], **style)


def _style_cdf(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def latency_chart(results: dict, path: Path) -> Path | None:
    sweep = _records(results, "chat_sweep")
    levels = [c for c in (1, 16) if any(r["concurrency"] == c for r in sweep)]
    if not levels:
        return None
    fig, axes = plt.subplots(1, len(levels), figsize=(6 * len(levels), 4.2), squeeze=False)
    for ax, clients in zip(axes[0], levels):
        for record in sweep:
            if record["concurrency"] != clients:
                continue
            samples = results["samples"].get(record["id"], {}).get("latency_ms", [])
            _cdf(ax, samples, color=COLORS[record["target"]], label=LABELS[record["target"]])
        _style_cdf(ax, "latency (ms, log scale)", "share of requests",
                   f"Non-streaming chatbot call, {clients} client{'s' if clients > 1 else ''}")
    return _save(fig, path)


def throughput_chart(results: dict, path: Path) -> Path | None:
    sweep = _records(results, "chat_sweep")
    if not sweep:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for target in ("floor", "proxy", "headwater"):
        points = sorted((r["concurrency"], r["throughput_rps"]) for r in sweep if r["target"] == target)
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=COLORS[target],
                    label=LABELS[target])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ticks = sorted({r["concurrency"] for r in sweep})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("requests/s (log scale)")
    ax.set_title("Throughput versus concurrency (16-token answers, no delay)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return _save(fig, path)


def memory_chart(results: dict, path: Path) -> Path | None:
    timeline = results.get("timeline") or []
    if not timeline:
        return None
    fig, (ax_line, ax_bar) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [2.2, 1]})
    times = [s["t"] for s in timeline]
    for target in ("headwater", "proxy", "mock"):
        key = f"{target}_rss_mb"
        values = [s.get(key) for s in timeline]
        if any(v is not None for v in values):
            color = COLORS.get(target, COLORS["floor"])
            ax_line.plot(times, values, color=color, label=LABELS.get(target, "mock"))
    # Mark where each scenario started.
    seen = set()
    for sample in timeline:
        scenario = (sample.get("phase") or "").split(":")[0]
        if scenario and scenario not in seen:
            seen.add(scenario)
            ax_line.axvline(sample["t"], color="#bbbbbb", lw=0.8)
            ax_line.text(sample["t"], ax_line.get_ylim()[1] * 0.98, scenario, rotation=90, va="top", fontsize=7)
    ax_line.set_xlabel("seconds into the run")
    ax_line.set_ylabel("RSS (MB)")
    ax_line.set_title("Resident memory of each server during the run")
    ax_line.grid(True, alpha=0.3)
    ax_line.legend(loc="center left")

    bars = _memory_bars(results)
    ax_bar.barh(list(bars), list(bars.values()), color=["#d62728"] * len(bars))
    for i, value in enumerate(bars.values()):
        ax_bar.text(value, i, f" {value:.0f}", va="center", fontsize=8)
    ax_bar.set_xlabel("Headwater RSS (MB)")
    ax_bar.set_title("Headwater memory")
    ax_bar.invert_yaxis()
    return _save(fig, path)


def _memory_bars(results: dict) -> dict[str, float]:
    bars: dict[str, float] = {}
    records = results["records"]
    idle = next((r for r in records if r["scenario"] == "startup" and r["label"] == "idle RSS"), None)
    if idle:
        bars["idle, after start"] = idle["rss_mb"]
    loaded = [r["server_rss_mb"]["headwater"] for r in records if r["scenario"] == "chat_sweep"
              and r.get("target") == "headwater"]
    if loaded:
        bars["after the 256-client sweep"] = max(loaded)
    streams = next((r for r in records if r["scenario"] == "many_streams" and r.get("target") == "headwater"), None)
    if streams:
        bars[f"{streams['concurrency']} open streams"] = streams["server_rss_mb"]["headwater"]
    model = next((r for r in records if r["scenario"] == "local_model" and "rss_mb_with_model" in r), None)
    if model:
        bars["local model loaded"] = model["rss_mb_with_model"]
    peak = [s.get("headwater_rss_mb") for s in results.get("timeline") or [] if s.get("headwater_rss_mb")]
    if peak:
        bars["peak during the run"] = max(peak)
    return bars


def streaming_chart(results: dict, path: Path) -> Path | None:
    records = [r for r in results["records"] if r["scenario"] in ("chat_stream", "many_streams") and r.get("relay")]
    panels = [("chat_stream", "c16"), ("many_streams", None)]
    panels = [p for p in panels if any(r["scenario"] == p[0] and (p[1] is None or r["label"] == p[1]) for r in records)]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    for ax, (scenario, label) in zip(axes[0], panels):
        title = ""
        for record in records:
            if record["scenario"] != scenario or (label and record["label"] != label):
                continue
            title = f"{scenario}: {record['label']}"
            samples = results["samples"].get(record["id"], {}).get("relay_ms", [])
            _cdf(ax, [max(v, 0.001) for v in samples], color=COLORS[record["target"]], label=LABELS[record["target"]])
        _style_cdf(ax, "relay time per token (ms, log scale)", "share of tokens", f"Token relay time, {title}")
    return _save(fig, path)


CHARTS = {
    "latency.png": latency_chart,
    "throughput.png": throughput_chart,
    "memory.png": memory_chart,
    "streaming.png": streaming_chart,
}


def write_charts(results: dict, directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, draw in CHARTS.items():
        path = draw(results, directory / name)
        if path is not None:
            written[name] = path
    return written
