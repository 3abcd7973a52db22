"""Profile Headwater's hot path under load with py-spy (sampling, from outside the process).

Starts the mock and Headwater like the bench does, drives one kind of call at a given
concurrency, records Headwater with `py-spy record`, and writes into bench/results/:
a flame graph (SVG), the collapsed stacks, and a table of the functions holding the
most samples (self and inclusive) printed to stdout.

Usage: python -m bench.profile [--kind chat|stream|many_streams|chatflow] [--concurrency 16] [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter

from bench.context import PROMPT, BenchConfig, Context
from bench.scenarios.chatflow import three_node_graph
from bench.harness import BENCH_DIR, HeadwaterAdmin, Monitor, Proc, free_port, headwater_proc, start_load, finish_load

KINDS = {
    # kind: (tokens, delay ms, stream)
    "chat": (16, 0.0, False),
    "stream": (64, 5.0, True),
    "many_streams": (200, 50.0, True),
    "chatflow": (16, 0.0, False),  # start → llm → answer through /execute_chatflow
}


def summarise_collapsed(path, top: int = 35) -> str:
    """Self and inclusive sample counts per function from py-spy's collapsed stacks."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        self_counts[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"{total} samples", "", "self%  function"]
    lines += [f"{100 * n / total:5.1f}  {frame}" for frame, n in self_counts.most_common(top)]
    lines += ["", "incl%  function"]
    lines += [f"{100 * n / total:5.1f}  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(lines)


def chatflow_load(admin: HeadwaterAdmin, mock_model: str, concurrency: int) -> dict:
    """URL, body and per-client conversations for the 3-node chatflow of the bench's `chatflow` scenario."""
    created = admin.create_app({"name": "profile-chatflow", "kind": "chatflow",
                                "graph": three_node_graph(f"mock/{mock_model}")})
    created.raise_for_status()
    return {"url": f"{admin.base_url}/execute_chatflow/{created.json()['id']}/execute",
            "body": json.dumps({"input_data": {"query": PROMPT, "conversation_id": "{var}"}}),
            "vars": [f"profile-cf-{i}" for i in range(concurrency)]}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=sorted(KINDS), default="chat")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="include native frames")
    parser.add_argument("--all-threads", action="store_true",
                        help="sample every thread, not only the one holding the GIL (where Python CPU goes)")
    args = parser.parse_args()
    if shutil.which("py-spy") is None and not (BENCH_DIR.parent / ".venv/bin/py-spy").exists():
        print("py-spy is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 1
    py_spy = shutil.which("py-spy") or str(BENCH_DIR.parent / ".venv/bin/py-spy")
    out_dir = BENCH_DIR / "results" / "profile"
    out_dir.mkdir(parents=True, exist_ok=True)
    mock = Proc("mock", [sys.executable, "-m", "bench.mock_openai", "--port", str(port := free_port())], port,
                log_path=out_dir / "mock.log")
    admin_key = "hw_bench_" + uuid.uuid4().hex
    data_dir = out_dir / f"data-{uuid.uuid4().hex[:6]}"
    headwater = headwater_proc("headwater", data_dir, admin_key, out_dir)
    try:
        mock.start()
        headwater.start()
        admin = HeadwaterAdmin(headwater.base_url, admin_key)
        admin.add_mock_provider(mock.base_url)
        ctx = Context(BenchConfig(), out_dir, mock, mock, headwater, admin, admin.create_key(["chatbot"]),
                      Monitor({}))
        tokens, delay, stream = KINDS[args.kind]
        spec = {"url": headwater.base_url + "/v1/chat/completions", "stream": stream, "expect": "@",
                "body": ctx.openai_body("headwater", tokens, delay, stream=stream),
                "headers": ctx.auth_headers(), "concurrency": args.concurrency}
        if args.kind == "chatflow":
            spec.update(chatflow_load(admin, ctx.mock_model(tokens, delay), args.concurrency))
        if args.kind == "many_streams":
            spec.update(requests_per_client=1, ramp=2.0)
        else:
            spec.update(duration=args.duration + 2, warmup=1.0)
        load = start_load(spec)
        time.sleep(1.5)
        stem = out_dir / f"{args.kind}-c{args.concurrency}"
        record = [py_spy, "record", "--pid", str(headwater.pid), "--duration", str(int(args.duration)),
                  "--rate", str(args.rate)]
        # --nonblocking does not pause the process while sampling; native stacks need the pause.
        record.append("--native" if args.native else "--nonblocking")
        if not args.all_threads:
            record.append("--gil")
        subprocess.run(record + ["--format", "raw", "--output", f"{stem}.collapsed"], check=True,
                       capture_output=True)
        result = finish_load(load)
        print(f"load: {result['ok']} ok, {result['errors']} errors, {result['throughput_rps']:.0f} req/s")
        summary = summarise_collapsed(stem.with_suffix(".collapsed"))
        stem.with_suffix(".top.txt").write_text(summary)
        print(summary)
        admin.close()
    finally:
        headwater.stop()
        mock.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
