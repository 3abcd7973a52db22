"""Processes that die mid-run, in the scale-out deployment: nothing stays `running`, nothing runs twice.

- A worker killed with SIGKILL in the middle of a background run: its lease runs out (3 s
  here), the run goes back to the queue, another worker resumes it after its last finished
  node, and a follower on an API process sees one gap-free stream from the first event to
  the last.
- An API process killed with SIGKILL while it streams a chat turn: nobody can finish that
  turn, so once its lease runs out another process ends it `failed` with the reason
  `interrupted`, and its followers see the end.
The embedded mode's counterpart (the one process killed and restarted on the same store) is
tests/engine/test_flow_restart.py.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from cluster import create_flow, run_status, sse_frames, wait_for
from support.provider_mocks import MockState, ServedApp, openai_app
from support.server import ServerProcess, Workspace


@pytest.fixture
def scaleout(cluster):
    if cluster.mode != "scaleout":
        pytest.skip("process failures across processes: the embedded mode's are tests/engine/test_flow_restart.py")
    return cluster


def _follow_all(workspace, run_id: str, frames: list[dict]) -> threading.Thread:
    """Follow the run on `workspace`'s process until its stream ends, collecting frames (in a thread)."""
    def follow() -> None:
        with workspace.client() as c, c.stream("GET", f"/v1/runs/{run_id}/stream") as response:
            assert response.status_code == 200
            frames.extend(sse_frames(response.iter_lines()))

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    return thread


def _started(frames: list[dict], node_id: str) -> int:
    return sum(1 for f in frames if f.get("event") == "node_started" and f["data"]["node_id"] == node_id)


@pytest.fixture
def upstream() -> Iterator[ServedApp]:
    """An OpenAI-compatible model on 127.0.0.1 that counts the calls it gets (whichever process makes them)."""
    state = MockState()
    served = ServedApp(openai_app(state), state).start()
    yield served
    served.stop()


def _calls_for(upstream: ServedApp, prefix: str) -> int:
    return sum(1 for body in upstream.state.requests
               if any(str(m.get("content", "")).startswith(prefix) for m in body["messages"] if m["role"] == "user"))


def test_a_run_of_a_killed_worker_is_resumed_by_another_worker(scaleout, upstream):
    on_a, on_b = scaleout.new_workspace()
    with on_a.client() as a:
        assert a.post("/v1/providers", json={"name": "upstream", "type": "openai", "api_key": "k",
                                             "base_url": f"{upstream.base_url}/v1",
                                             "models": ["mock-small"]}).status_code == 201
    # The first node's call answers, the second's hangs until its worker is killed, the retry answers.
    upstream.state.script[:] = ["ok", "hang", "ok"]
    flow = create_flow(on_a, "workflow", [
        {"id": "start", "type": "start", "inputs": [{"name": "text", "type": "string"}]},
        {"id": "first", "type": "llm", "model": "upstream/mock-small", "prompt": "first: {{ start.text }}"},
        {"id": "second", "type": "llm", "model": "upstream/mock-small", "prompt": "second: {{ first.text }}"},
        {"id": "end", "type": "end", "outputs": {"text": "{{ second.text }}"}}])
    with on_a.client() as a:
        accepted = a.post(f"/v1/executions/{flow['id']}/async", json={"input_data": {"text": "hello"}})
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["execution_id"]
    frames: list[dict] = []
    follower = _follow_all(on_b, run_id, frames)
    wait_for(lambda: _calls_for(upstream, "second:") == 1, timeout=30)  # the worker waits on the hung call
    for worker in scaleout.workers:
        worker.kill()
    killed_at = time.monotonic()
    scaleout.start_worker()

    follower.join(timeout=60)
    assert not follower.is_alive(), "the follower's stream did not end"
    with on_b.client() as b:
        status = b.get(f"/v1/executions/{run_id}").json()
    assert status["status"] == "COMPLETED", status
    assert status["final_output"] == {"text": "echo: second: echo: first: hello"}
    assert status["retry_count"] == 1  # the killed attempt counted: the resuming one is its retry
    # The provider, counted on its side: the finished node was not called again, the interrupted one was.
    assert (_calls_for(upstream, "first:"), _calls_for(upstream, "second:")) == (1, 2)
    # One stream, no gap, no duplicate, across both executors.
    assert [int(f["id"]) for f in frames] == list(range(1, len(frames) + 1))
    assert frames[-1]["event"] == "run_finished" and frames[-1]["data"]["status"] == "succeeded"
    # The killed attempt's last events may not have been committed (so never published): the
    # stream shows what was stored, and the finished node once.
    assert _started(frames, "first") == 1 and _started(frames, "second") >= 1
    assert time.monotonic() - killed_at < 30


def test_a_stream_of_a_killed_api_process_ends_interrupted(scaleout):
    on_a, on_b = scaleout.new_workspace()
    # A third API process of the same deployment, to be killed.
    c_process = ServerProcess(data_dir=scaleout.a.data_dir, database_url=scaleout.a.database_url,
                              admin_key=scaleout.a.admin_key, extra_env=scaleout.a.extra_env).start()
    try:
        on_c = Workspace(c_process, on_a.id, on_a.admin_key)
        app = on_a.create_chatbot(model="fake/slow-200")
        run_id: list[str] = []

        def stream_on_c() -> None:
            body = {"model": app["slug"], "stream": True,
                    "messages": [{"role": "user", "content": " ".join(f"w{i}" for i in range(40))}]}
            try:
                with on_c.client() as c, c.stream("POST", "/v1/chat/completions", json=body) as response:
                    run_id.append(response.headers["x-run-id"])
                    for _ in response.iter_lines():
                        pass
            except Exception:  # the process dies under it: expected
                pass

        streamer = threading.Thread(target=stream_on_c, daemon=True)
        streamer.start()
        wait_for(lambda: run_id, timeout=20)
        with on_b.client() as b:
            wait_for(lambda: run_status(b, run_id[0]) == "running", timeout=20)
        frames: list[dict] = []
        follower = _follow_all(on_b, run_id[0], frames)
        wait_for(lambda: any(f.get("event") == "token" for f in frames), timeout=20)
        os.kill(c_process.process.pid, signal.SIGKILL)
        c_process.process.wait()
        killed_at = time.monotonic()

        follower.join(timeout=30)
        assert not follower.is_alive(), "the follower's stream did not end"
        with on_b.client() as b:
            run = b.get(f"/v1/runs/{run_id[0]}").json()
        assert run["status"] == "failed" and run["error"]["code"] == "interrupted", run
        assert time.monotonic() - killed_at < 15  # a 3 s lease, renewed every second, reaped within a round
        assert frames[-1]["event"] == "run_finished" and frames[-1]["data"]["status"] == "failed"
        assert [int(f["id"]) for f in frames] == list(range(1, len(frames) + 1))
    finally:
        c_process.stop()
