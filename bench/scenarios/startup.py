"""How fast Headwater starts and how much memory it holds doing nothing."""

from __future__ import annotations

import statistics
import time

from bench.context import Context
from bench.harness import fresh_dir, rss_mb
from bench.scenarios import scenario

WARM_STARTS = 3


@scenario("startup", "Start time and idle memory", order=10)
def startup(ctx: Context) -> None:
    """Time from launching `python -m headwater serve` to the first 200 from `/healthz`:
    once on an empty data dir (creates the schema and the admin key), then on the existing
    one. Idle RSS is read 2 s after a start, with no request served and no local model."""
    data_dir = fresh_dir(ctx.results_dir / "startup-data")
    cold = ctx.spawn_headwater("startup-cold", data_dir).start()
    cold_seconds = cold.started_in_s
    cold.stop()
    warm_seconds, idle_rss = [], []
    for i in range(WARM_STARTS if not ctx.config.quick else 1):
        proc = ctx.spawn_headwater(f"startup-warm-{i}", data_dir).start()
        warm_seconds.append(proc.started_in_s)
        time.sleep(2.0)
        idle_rss.append(rss_mb(proc.pid))
        proc.stop()
    ctx.record("cold start", start_to_healthz_s=cold_seconds)
    ctx.record("warm start", start_to_healthz_s=statistics.median(warm_seconds), all_s=warm_seconds)
    ctx.record("idle RSS", rss_mb=statistics.median(idle_rss), all_mb=idle_rss)
