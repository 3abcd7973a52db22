"""`python -m bench`: start the targets, run every scenario, write REPORT.md and the charts.

Options: --quick (short runs, to check the harness), --only NAME[,NAME] (some scenarios),
--profile (py-spy records Headwater during the 64-client point of the sweep).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
import uuid
from datetime import UTC, datetime

from bench.context import BenchConfig, Context
from bench.harness import BENCH_DIR, HeadwaterAdmin, Monitor, OtherWork, Proc, free_port, fresh_dir, \
    headwater_proc, machine_busy_fraction, rss_mb
from bench.scenarios import Skip, all_scenarios

TIME_BUDGET_S = 15 * 60


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--no-report", action="store_true", help="keep results.json only")
    parser.add_argument("--started-at", type=float, help="when `make bench` started (epoch s), to count installs")
    parser.add_argument("--headwater-src", help="run Headwater from this source tree (before/after comparisons)")
    parser.add_argument("--results", default="", help="subfolder of bench/results/ for this run's raw results")
    args = parser.parse_args()
    config = BenchConfig.for_mode(args.quick, args.profile)
    wanted = {name for name in args.only.split(",") if name}
    scenarios = [s for s in all_scenarios() if not wanted or s.name in wanted]

    results_dir = fresh_dir(BENCH_DIR / "results" / args.results) if args.results else fresh_dir(BENCH_DIR / "results")
    started = time.monotonic()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    busy_before = machine_busy_fraction(2.0)
    python = sys.executable
    mock = Proc("mock", [python, "-m", "bench.mock_openai", "--port", str(port := free_port())], port,
                log_path=results_dir / "mock.log")
    proxy = Proc("proxy", [python, "-m", "bench.proxy", "--port", str(pport := free_port()), "--upstream",
                           f"http://127.0.0.1:{port}"], pport, log_path=results_dir / "proxy.log")
    admin_key = "hw_bench_" + uuid.uuid4().hex
    extra_env = {"PYTHONPATH": args.headwater_src} if args.headwater_src else None
    headwater = headwater_proc("headwater", results_dir / "headwater-data", admin_key, results_dir, extra_env)
    processes = [mock, proxy, headwater]
    monitor = None
    try:
        for process in processes:
            process.start()
        print(f"targets up: mock {mock.base_url}, proxy {proxy.base_url}, headwater {headwater.base_url} "
              f"(started in {headwater.started_in_s:.2f}s)", flush=True)
        idle_rss = rss_mb(headwater.pid)
        admin = HeadwaterAdmin(headwater.base_url, admin_key)
        admin.add_mock_provider(mock.base_url)
        ctx = Context(config=config, results_dir=results_dir, mock=mock, proxy=proxy, headwater=headwater,
                      admin=admin, chat_key=admin.create_key(["chatbot"]),
                      monitor=Monitor({"headwater": headwater.pid, "proxy": proxy.pid, "mock": mock.pid}).start())
        monitor = ctx.monitor
        ctx.current = "setup"
        ctx.record("main instance", start_to_healthz_s=headwater.started_in_s, idle_rss_mb=idle_rss)
        outcomes = []
        for item in scenarios:
            ctx.current = item.name
            t0 = time.monotonic()
            print(f"[{time.monotonic() - started:6.1f}s] {item.name}: {item.title} ...", flush=True)
            other = OtherWork(ctx.server_pids())
            try:
                with other:
                    item.run(ctx)
                status, reason = "ran", ""
            except Skip as skip:
                status, reason = "skipped", str(skip)
            except Exception as exc:  # one broken scenario must not lose the others' figures
                status, reason = "failed", f"{type(exc).__name__}: {exc}"
                (results_dir / f"{item.name}.error.txt").write_text(traceback.format_exc())
            outcomes.append({"name": item.name, "title": item.title, "description": item.description,
                             "status": status, "reason": reason, "seconds": time.monotonic() - t0,
                             "other_work_cores": getattr(other, "cores", None)})
            print(f"    {status} {reason} ({time.monotonic() - t0:.1f}s)", flush=True)
        ctx.record("after the run", rss_mb=rss_mb(headwater.pid))
        admin.close()
    finally:
        if monitor is not None:
            monitor.stop()
        for process in reversed(processes):
            process.stop()
    total = time.monotonic() - started
    if args.started_at:  # `make bench`: count the installs it did before us too
        total = max(total, time.time() - args.started_at)
    results = {
        "started_at": started_at, "total_seconds": total, "counted_from_make": bool(args.started_at),
        "quick": config.quick, "config": config.__dict__, "scenarios": outcomes, "records": ctx.records,
        "notes": ctx.notes, "machine": {"cpus": _cpus(), "python": platform.python_version(),
                                        "platform": platform.platform(), "busy_before_run": busy_before},
        "samples": ctx.samples, "timeline": monitor.samples if monitor else [],
    }
    (results_dir / "results.json").write_text(json.dumps(results, default=str))
    print(f"done in {total:.0f}s; raw results in {results_dir / 'results.json'}", flush=True)
    if total > TIME_BUDGET_S:
        print(f"WARNING: the run took longer than {TIME_BUDGET_S // 60} minutes", flush=True)
    if not args.no_report:
        from bench.report import write_report

        path = write_report(results)
        print(f"report: {path}", flush=True)
    return 0


def _cpus() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
