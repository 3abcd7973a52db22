"""bench/REPORT.md from one run's results (and the charts beside it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.charts import write_charts
from bench.context import TARGET_TITLES
from bench.goals import evaluate
from bench.harness import BENCH_DIR

REPORT = BENCH_DIR / "REPORT.md"
CHARTS_DIR = BENCH_DIR / "charts"
FINDINGS = BENCH_DIR / "FINDINGS.md"


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _baseline(records: list[dict], record: dict, target: str) -> dict | None:
    return next((r for r in records if r["scenario"] == record["scenario"] and r["label"] == record["label"]
                 and r.get("target") == target and r.get("stream") == record.get("stream")), None)


def _latency_table(records: list[dict]) -> str:
    rows = []
    for r in records:
        floor, proxy = _baseline(records, r, "floor"), _baseline(records, r, "proxy")
        added = (f"+{_ms(r['latency']['p50'] - floor['latency']['p50'])}" if floor and r["target"] != "floor"
                 else "")
        share = (f"{r['throughput_rps'] / proxy['throughput_rps']:.0%}" if proxy and proxy["throughput_rps"]
                 and r["target"] == "headwater" else "")
        rows.append([
            TARGET_TITLES.get(r["target"], r["target"]), str(r["concurrency"]), f"{r['throughput_rps']:.0f}",
            _ms(r["latency"]["p50"]), _ms(r["latency"]["p90"]), _ms(r["latency"]["p99"]), _ms(r["latency"]["max"]),
            added, share, _ms(r.get("server_cpu_ms_per_request")), str(r["errors"]),
        ])
    return _table(["target", "clients", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "p50 over floor",
                   "req/s vs proxy", "server CPU ms/req", "errors"], rows)


def _stream_table(records: list[dict]) -> str:
    per_token = any(r.get("server_cpu_us_per_token") for r in records)
    rows = []
    for r in records:
        relay, gap, ttft = r.get("relay") or {}, r.get("gap") or {}, r.get("ttft") or {}
        server = "mock" if r["target"] == "floor" else r["target"]
        rows.append([
            TARGET_TITLES.get(r["target"], r["target"]), str(r["concurrency"]), str(r["ok"]), str(r["errors"]),
            _ms(ttft.get("p50")), _ms(ttft.get("p99")), _ms(gap.get("p50")), _ms(gap.get("p99")),
            _ms(relay.get("p50")), _ms(relay.get("p99")), _ms(r["latency"]["p50"]),
            f"{r['server_cores'].get(server, 0):.2f}", f"{r['server_rss_mb'].get(server, 0):.0f}",
        ] + ([_ms(r.get("server_cpu_us_per_token")), _ms(r.get("cores_needed_for_offered_load"))] if per_token else []))
    return _table(["target", "streams", "done", "errors", "first token p50 ms", "p99", "between tokens p50 ms",
                   "p99", "relay/token p50 ms", "p99", "total p50 ms", "server cores", "server RSS MB"]
                  + (["server CPU µs/token", "cores for all tokens on time"] if per_token else []), rows)


def _figures(records: list[dict]) -> str:
    lines = []
    for r in records:
        values = {k: v for k, v in r.items() if k not in ("id", "scenario", "label", "at", "runs")}
        parts = []
        for key, value in values.items():
            if isinstance(value, float):
                value = f"{value:.3g}"
            elif isinstance(value, list):
                value = ", ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in value)
            parts.append(f"{key.replace('_', ' ')}: {value}")
        lines.append(f"- **{r['label']}** — " + "; ".join(parts))
    return "\n".join(lines)


def _scenario_section(outcome: dict, records: list[dict]) -> str:
    out = [f"### {outcome['title']} (`{outcome['name']}`)", ""]
    if outcome["description"]:
        out += [" ".join(outcome["description"].split()), ""]
    if outcome["status"] == "skipped":
        return "\n".join(out + [f"**skipped: {outcome['reason']}**", ""])
    if outcome["status"] == "failed":
        out += [f"**failed: {outcome['reason']}** (traceback in bench/results/{outcome['name']}.error.txt)", ""]
    mine = [r for r in records if r["scenario"] == outcome["name"]]
    plain = [r for r in mine if "latency" in r and not r.get("stream")]
    streams = [r for r in mine if "latency" in r and r.get("stream")]
    other = [r for r in mine if "latency" not in r]
    if plain:
        out += [_latency_table(plain), ""]
    if streams:
        out += [_stream_table(streams), ""]
    if other:
        out += [_figures(other), ""]
    other = outcome.get("other_work_cores")
    load = f"; other processes on the machine meanwhile: {other:.2f} of 2 cores" if other is not None else ""
    out.append(f"_{outcome['seconds']:.0f} s{load}_")
    out.append("")
    return "\n".join(out)


def _context(results: dict) -> str:
    """The issue's figures for Flowise and Langflow beside this run's (theirs are quoted, not measured here)."""
    records = results["records"]
    get = lambda s, l, t=None: next((r for r in records if r["scenario"] == s and r["label"] == l  # noqa: E731
                                     and (t is None or r.get("target") == t)), None)
    hw1, fl1 = get("chat_sweep", "c1", "headwater"), get("chat_sweep", "c1", "floor")
    hw16, hw64 = get("chat_sweep", "c16", "headwater"), get("chat_sweep", "c64", "headwater")
    idle = get("startup", "idle RSS")
    peak = max((s.get("headwater_rss_mb") or 0 for s in results.get("timeline") or []), default=None)
    if not (hw1 and fl1):
        return ""
    rows = [
        ["added latency, one call (p50)", "≈ 29 ms", "≈ 250 ms",
         f"{hw1['latency']['p50'] - fl1['latency']['p50']:.1f} ms"],
        ["requests/s, 10–16 clients", "≈ 40", "≈ 3.5", f"{hw16['throughput_rps']:.0f} (16 clients)" if hw16 else "–"],
        ["requests/s, 50–64 clients", "≈ 50", "most fail",
         f"{hw64['throughput_rps']:.0f} (64 clients)" if hw64 else "–"],
        ["memory held", "0.8–1.5 GB", "≈ 2 GB",
         f"{idle['rss_mb']:.0f} MB idle, {peak:.0f} MB peak" if idle and peak else "–"],
    ]
    return ("Figures for Flowise 3.1.2 and Langflow 1.13.0 are those quoted in the issue (same kind of machine, "
            "same zero-delay mock); they were not re-measured here.\n\n"
            + _table(["", "Flowise (issue)", "Langflow (issue)", "Headwater (this run)"], rows))


def write_report(results: dict[str, Any]) -> Path:
    charts = write_charts(results, CHARTS_DIR)
    goals = evaluate(results)
    machine = results["machine"]
    out = [
        "# Headwater benchmark report",
        "",
        f"Run {results['started_at']}, {results['total_seconds'] / 60:.1f} min"
        f"{' (quick mode: short windows, not for comparison)' if results.get('quick') else ''}. "
        f"Machine: {machine['cpus']} CPUs, Python {machine['python']}, {machine['platform']}. "
        "Every process (mock model, proxy, Headwater, load generator) ran on this machine on 127.0.0.1.",
        "",
        f"Other work on the machine: the CPUs were {machine['busy_before_run']:.0%} busy in the 2 s before the run "
        "started, and each scenario below says how many cores processes other than the bench's used while it "
        "ran (other engineers' test suites share these 2 cores). Absolute figures move with that; the ratios "
        "to the two baselines, measured in the same minutes, and the server CPU per request move much less.",
        "",
    ]
    busy = [o for o in results["scenarios"] if (o.get("other_work_cores") or 0) >= 0.5]
    if busy:
        out += ["> Distorted by other work: " + ", ".join(
            f"`{o['name']}` ({o['other_work_cores']:.1f} cores taken by other processes)" for o in busy) + ".", ""]
    for note in results.get("notes") or []:
        out += [f"> {note}", ""]
    out += ["Regenerate with `make bench` (about 6–8 minutes on this machine); raw samples land in "
            "`bench/results/` (not kept in git).", "", "## Goals", ""]
    out.append(_table(["goal", "target", "this run", "met"], [
        [g.name, g.target, g.measured, "–" if g.met is None else ("yes" if g.met else "**no**")] for g in goals
    ]))
    out.append("")
    out += [f"- {g.name}: {g.note}" for g in goals if g.note]
    out += ["", "## Against the issue's figures for Flowise and Langflow", "", _context(results), ""]
    if charts:
        out += ["## Charts", ""]
        out += [f"![{name}](charts/{name})" for name in charts]
        out.append("")
    out += ["## Scenarios", "",
            "Baselines: **floor** = the mock model called directly by the load generator; **proxy** = a minimal "
            "pass-through proxy on the same web stack (FastAPI + uvicorn + pooled httpx2 client). "
            "Closed loop: each client sends its next request when the previous one is answered. "
            "`server CPU ms/req` is the measured server's CPU time divided by the requests it answered.",
            ""]
    for outcome in results["scenarios"]:
        out.append(_scenario_section(outcome, results["records"]))
    setup = [r for r in results["records"] if r["scenario"] in ("setup",) or r["label"] == "after the run"]
    if setup:
        out += ["### The measured Headwater process", "", _figures(setup), ""]
    if FINDINGS.exists():
        out += [FINDINGS.read_text().strip(), ""]
    REPORT.write_text("\n".join(out))
    return REPORT


if __name__ == "__main__":
    import json
    import sys

    source = Path(sys.argv[1]) if len(sys.argv) > 1 else BENCH_DIR / "results" / "results.json"
    print(write_report(json.loads(source.read_text())))
