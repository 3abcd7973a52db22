"""Several requests on the embedded model at once: `HEADWATER_LOCAL_MODEL_SLOTS` decode together,
the rest wait in arrival order and their place in line reaches the run trace."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest
from support.server import ServerProcess

from headwater.config import Settings
from headwater.providers.base import ChatDelta, ChatMessage, GenerationParams, QueueWait
from headwater.providers.local_llama import DEFAULT_MODEL_NAME, LocalLlamaProvider, load_local_model, local_model_info
from headwater.providers.local_runtime import LoadKey, SlotQueue, Ticket

# Greedy, the base model goes on counting until max_tokens: a request that holds its slot.
LONG = [ChatMessage("user", "Count from 1 to 200, separated by commas.")]


# --- the queue alone -------------------------------------------------------------


def key(slots: int = 2, name: str = "a.gguf") -> LoadKey:
    return LoadKey(path=Path(name), n_ctx=512, n_threads=1, slots=slots)


class Held:
    """A ticket whose run blocks until released, recording its start and its places in line."""

    def __init__(self, queue: SlotQueue, name: str, log: list[str], load: LoadKey | None = None):
        self.name, self.log = name, log
        self.places: list[int] = []
        self.release = threading.Event()
        self.started = threading.Event()
        self.ticket = Ticket(load or key(), self._run, self.places.append)
        queue.submit(self.ticket)

    def _run(self) -> None:
        self.log.append(self.name)
        self.started.set()
        self.release.wait(10)


def finish(*held: Held) -> None:
    for h in held:
        h.release.set()


def eventually(condition, limit: float = 5) -> bool:
    """Admission runs on the finishing request's thread: give it a moment."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def test_requests_beyond_the_slots_wait_in_arrival_order():
    queue, log = SlotQueue(), []
    a, b = Held(queue, "a", log), Held(queue, "b", log)
    c, d, e = Held(queue, "c", log), Held(queue, "d", log), Held(queue, "e", log)
    assert a.started.wait(5) and b.started.wait(5)
    assert queue.snapshot() == {"slots": 2, "busy": 2, "waiting": 3}
    assert (c.places, d.places, e.places) == ([1], [2], [3])
    queue.withdraw(d.ticket)  # its caller went away: the ones behind move up at once
    assert e.places == [3, 2] and queue.snapshot()["waiting"] == 2
    finish(b)
    assert c.started.wait(5) and eventually(lambda: e.places == [3, 2, 1])
    finish(a)
    assert e.started.wait(5)
    finish(c, e)
    assert log == ["a", "b", "c", "e"] and not d.started.is_set()


def test_another_model_waits_for_the_running_ones_and_nobody_overtakes_it():
    queue, log = SlotQueue(), []
    a = Held(queue, "a", log)
    other = Held(queue, "other", log, load=key(name="b.gguf"))
    late = Held(queue, "late", log)  # same model as `a` and a slot is free, but it came after `other`
    assert a.started.wait(5)
    time.sleep(0.05)
    assert not other.started.is_set() and not late.started.is_set()
    finish(a)
    assert other.started.wait(5)
    finish(other)
    assert late.started.wait(5)
    finish(late)
    assert log == ["a", "other", "late"]


def test_the_trace_records_where_a_request_entered_the_line_and_how_long_it_waited():
    wait = QueueWait()
    wait.see(ChatDelta(text="x"))
    assert wait.as_dict() is None  # never waited: nothing to show
    for place in (3, 2, 1):
        wait.see(ChatDelta(queue_position=place))
    time.sleep(0.02)
    wait.see(ChatDelta(queue_position=0))
    recorded = wait.as_dict()
    assert recorded["position"] == 3 and recorded["waited_ms"] >= 20


# --- the real model ------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_provider(tmp_path_factory) -> LocalLlamaProvider:
    pytest.importorskip("xllamacpp")
    data_dir = tmp_path_factory.getbasetemp() / "headwater-local-model"  # shared with the provider tests
    settings = Settings(data_dir=data_dir, local_model_slots=2)
    asyncio.run(load_local_model(settings))
    return LocalLlamaProvider(settings)


class Stream:
    """One streamed request, its tokens stamped into a shared log as they arrive."""

    def __init__(self, provider: LocalLlamaProvider, name: str, log: list[tuple[float, str]], max_tokens: int = 60):
        self.name, self.log = name, log
        self.deltas: list[ChatDelta] = []
        self.tokens = asyncio.Event()
        self._stream = provider.stream_chat(DEFAULT_MODEL_NAME, LONG, GenerationParams(max_tokens=max_tokens,
                                                                                      temperature=0.0))
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for delta in self._stream:
            self.deltas.append(delta)
            if delta.text:
                self.log.append((time.perf_counter(), self.name))
                if sum(1 for d in self.deltas if d.text) >= 3:
                    self.tokens.set()

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    @property
    def places(self) -> list[int]:
        return [d.queue_position for d in self.deltas if d.queue_position is not None]


async def wait_until(condition, limit: float = 5) -> float:
    started = time.perf_counter()
    while not condition():
        assert time.perf_counter() - started < limit, "timed out"
        await asyncio.sleep(0.002)
    return time.perf_counter() - started


@pytest.mark.local_model
async def test_two_streams_decode_together_and_stopping_one_leaves_the_other_alone(local_provider):
    log: list[tuple[float, str]] = []
    a, b = Stream(local_provider, "a", log, max_tokens=400), Stream(local_provider, "b", log, max_tokens=60)
    await asyncio.wait_for(asyncio.gather(a.tokens.wait(), b.tokens.wait()), 60)
    assert local_model_info()["busy"] == 2 and not a.places and not b.places  # nobody waited
    order = [name for _, name in log]
    # Both progress at once: their tokens interleave instead of one stream after the other.
    assert sum(1 for x, y in zip(order, order[1:]) if x != y) >= 3, order
    stopped_at = time.perf_counter()
    await a.stop()
    freed_after = await wait_until(lambda: local_model_info()["busy"] == 1)
    await asyncio.wait_for(b.task, 60)
    final = b.deltas[-1]
    assert final.finish_reason == "length" and final.usage.completion_tokens == 60
    assert any(t > stopped_at and name == "b" for t, name in log)  # b went on after a stopped
    assert not any(t > stopped_at + 0.1 and name == "a" for t, name in log)
    # One decoding step frees the slot (~15-40 ms); the bound is loose for shared 2-core machines.
    assert freed_after < 0.5, f"slot freed after {freed_after:.3f}s"


@pytest.mark.local_model
async def test_a_third_request_waits_for_a_slot_and_hears_its_place(local_provider):
    log: list[tuple[float, str]] = []
    a, b = Stream(local_provider, "a", log, max_tokens=400), Stream(local_provider, "b", log, max_tokens=400)
    await asyncio.wait_for(asyncio.gather(a.tokens.wait(), b.tokens.wait()), 60)
    c, d = Stream(local_provider, "c", log, max_tokens=5), Stream(local_provider, "d", log, max_tokens=5)
    await wait_until(lambda: c.places == [1] and d.places == [2])
    assert not c.tokens.is_set() and local_model_info()["waiting"] == 2
    await a.stop()  # frees a slot: c (first in line) gets it, d moves up
    await asyncio.wait_for(c.task, 60)
    assert c.places == [1, 0] and d.places[:2] == [2, 1]
    assert c.deltas[-1].usage.completion_tokens > 0
    await b.stop()
    await asyncio.wait_for(d.task, 60)
    assert d.places == [2, 1, 0]
    await wait_until(lambda: local_model_info()["busy"] == 0)


@pytest.mark.local_model
async def test_a_request_that_leaves_the_line_never_runs(local_provider):
    log: list[tuple[float, str]] = []
    a, b = Stream(local_provider, "a", log, max_tokens=400), Stream(local_provider, "b", log, max_tokens=400)
    await asyncio.wait_for(asyncio.gather(a.tokens.wait(), b.tokens.wait()), 60)
    c = Stream(local_provider, "c", log, max_tokens=5)
    await wait_until(lambda: c.places == [1])
    await c.stop()
    assert local_model_info()["waiting"] == 0
    await a.stop()
    await b.stop()
    await wait_until(lambda: local_model_info()["busy"] == 0)
    assert not any(name == "c" for _, name in log)


@pytest.mark.local_model
def test_the_run_trace_shows_the_place_in_line(tmp_path):
    """Through the server, one slot: a chat turn started while another holds the slot waits,
    and its trace says where it entered the line and how long it waited."""
    pytest.importorskip("xllamacpp")
    server = ServerProcess(data_dir=tmp_path, extra_env={"HEADWATER_LOCAL_MODEL_SLOTS": "1"}).start()
    try:
        workspace = server.new_workspace()
        app = workspace.create_chatbot(model="local/gemma-3-270m", temperature=0.0, max_tokens=200)
        headers = {"X-API-Key": workspace.admin_key}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=120) as client:
            client.post("/v1/runs", json={"app_id": app["slug"], "inputs": {"message": "hi"}})  # loads the model
            first = client.post("/v1/runs", json={
                "app_id": app["slug"], "background": True,
                "inputs": {"message": LONG[0].content}})
            second = client.post("/v1/runs", json={
                "app_id": app["slug"], "background": True, "inputs": {"message": "What is the capital of France?"}})
            assert first.status_code == second.status_code == 202
            runs = [first.json()["id"], second.json()["id"]]
            deadline = time.monotonic() + 120
            details = {}
            while time.monotonic() < deadline and len(details) < 2:
                for run_id in runs:
                    detail = client.get(f"/v1/runs/{run_id}").json()
                    if detail["status"] not in ("running", "queued"):
                        details[run_id] = detail
                time.sleep(0.2)
        first_node, second_node = (next(n for n in details[run_id]["nodes"] if n["node_type"] == "llm")
                                   for run_id in runs)
        assert "queue" not in first_node["inputs"]
        assert second_node["inputs"]["queue"]["position"] == 1
        assert second_node["inputs"]["queue"]["waited_ms"] > 0
    finally:
        server.stop()
