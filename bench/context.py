"""What a scenario gets: the running targets, a way to measure, a place to record."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import CpuWindow, HeadwaterAdmin, Monitor, Proc, headwater_proc, run_load
from bench.stats import summarise

TARGETS = ("floor", "proxy", "headwater")
TARGET_TITLES = {
    "floor": "mock called directly (floor)",
    "proxy": "pass-through proxy (FastAPI + httpx2)",
    "headwater": "Headwater",
}
PROMPT = "Say something short about rivers."


@dataclass
class BenchConfig:
    """How long each measurement lasts; `quick` is for checking the harness itself."""

    quick: bool = False
    duration: float = 6.0
    warmup: float = 1.0
    sweep: tuple[int, ...] = (1, 16, 64, 256)
    stream_tokens: int = 64
    stream_delay_ms: float = 5.0
    many_streams: int = 1000
    many_stream_tokens: int = 300
    many_stream_delay_ms: float = 50.0
    local_tokens: int = 128
    local_repeats: int = 4
    profile: bool = False

    @classmethod
    def for_mode(cls, quick: bool, profile: bool = False) -> "BenchConfig":
        if quick:
            return cls(quick=True, duration=2.0, warmup=0.5, sweep=(1, 16, 64), stream_tokens=16,
                       many_streams=200, many_stream_tokens=40, local_tokens=32, local_repeats=1, profile=profile)
        return cls(profile=profile)


@dataclass
class Context:
    config: BenchConfig
    results_dir: Path
    mock: Proc
    proxy: Proc
    headwater: Proc
    admin: HeadwaterAdmin
    chat_key: str
    monitor: Monitor
    records: list[dict[str, Any]] = field(default_factory=list)
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    current: str = ""

    # --- addresses and bodies
    def base_url(self, target: str) -> str:
        return {"floor": self.mock, "proxy": self.proxy, "headwater": self.headwater}[target].base_url

    def server_pids(self) -> dict[str, int]:
        return {"headwater": self.headwater.pid, "proxy": self.proxy.pid, "mock": self.mock.pid}

    def auth_headers(self, key: str | None = None) -> dict[str, str]:
        return {"x-api-key": key or self.chat_key}

    @staticmethod
    def mock_model(tokens: int, delay_ms: float) -> str:
        return f"t{tokens}-d{delay_ms:g}"

    def chatbot_for(self, tokens: int, delay_ms: float, **config: Any) -> dict[str, Any]:
        """A chatbot app on the mock with this answer shape (one per shape, reused)."""
        cache = self.__dict__.setdefault("_chatbots", {})
        key = (tokens, delay_ms, tuple(sorted(config.items())))
        if key not in cache:
            cache[key] = self.admin.create_chatbot(f"mock/{self.mock_model(tokens, delay_ms)}",
                                                   system_prompt="You are a benchmark.", **config)
        return cache[key]

    def openai_body(self, target: str, tokens: int, delay_ms: float, stream: bool = False) -> str:
        """A chat-completions body; through Headwater each client keeps its own conversation."""
        body: dict[str, Any] = {"messages": [{"role": "user", "content": PROMPT}], "stream": stream}
        if target == "headwater":
            body["model"] = self.chatbot_for(tokens, delay_ms)["slug"]
            body["conversation_id"] = f"bench-{uuid.uuid4().hex[:8]}-{{client}}"
        else:
            body["model"] = self.mock_model(tokens, delay_ms)
        if stream:
            body["stream_options"] = {"include_usage": True}
        return json.dumps(body)

    # --- measuring
    def measure(
        self, label: str, *, target: str, path: str, body: str, concurrency: int, stream: bool = False,
        headers: dict[str, str] | None = None, expect: str = "@", duration: float | None = None,
        method: str = "POST", client_vars: list[str] | None = None, **fields: Any,
    ) -> dict[str, Any]:
        """One closed-loop load run against a target, recorded with the servers' CPU and RSS."""
        spec = {
            "url": self.base_url(target) + path, "method": method, "body": body, "concurrency": concurrency,
            "duration": duration or self.config.duration, "warmup": self.config.warmup, "stream": stream,
            "expect": expect, "vars": client_vars, "headers": headers if headers is not None else
            (self.auth_headers() if target == "headwater" else {}),
        }
        self.monitor.phase = f"{self.current}:{label}"
        with CpuWindow(self.server_pids()) as window:
            raw = run_load(spec)
        self.monitor.phase = ""
        summary = summarise(raw)
        # CPU the measured server spent per answered request: steadier than throughput on a
        # machine shared with other work, and what sets throughput once the server saturates.
        server = "mock" if target == "floor" else target
        if summary["throughput_rps"]:
            summary["server_cpu_ms_per_request"] = window.cores[server] * 1000 / summary["throughput_rps"]
        record = self.record(label, target=target, concurrency=concurrency, stream=stream, **summary,
                             server_cores=window.cores, server_rss_mb=window.peak_rss_mb, **fields)
        self.samples[record["id"]] = {k: raw[k] for k in ("latency_ms", "ttft_ms", "gap_ms", "relay_ms") if raw.get(k)}
        return record

    def record(self, label: str, **fields: Any) -> dict[str, Any]:
        record = {"id": f"{self.current}/{label}/{len(self.records)}", "scenario": self.current, "label": label,
                  "at": time.time(), **fields}
        self.records.append(record)
        return record

    def find(self, scenario: str, label: str | None = None, **match: Any) -> list[dict[str, Any]]:
        return [r for r in self.records if r["scenario"] == scenario and (label is None or r["label"] == label)
                and all(r.get(k) == v for k, v in match.items())]

    def spawn_headwater(self, name: str, data_dir: Path) -> Proc:
        """Another Headwater process (not started) configured like the measured one."""
        extra = {"PYTHONPATH": self.headwater.env["PYTHONPATH"]} if "PYTHONPATH" in self.headwater.env else None
        return headwater_proc(name, data_dir, self.admin.admin_key, self.results_dir, extra)

    def note(self, text: str) -> None:
        self.notes.append(text)
