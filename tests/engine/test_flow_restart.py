"""Pauses and background runs survive the server process: killed with SIGKILL, restarted on the same store."""

from __future__ import annotations

import os
import signal
import time

from flow_support import Flows, chain, node, node_started, start, trace


def _kill(process) -> None:
    os.kill(process.process.pid, signal.SIGKILL)
    process.process.wait(timeout=10)


def test_a_paused_run_resumes_after_a_restart_without_rerunning_nodes(start_server):
    first = start_server()
    workspace = first.new_workspace()
    flows = Flows(workspace)
    nodes = [start("request"), node("draft", "llm", model="fake/echo", prompt="{{ start.request }}"),
             node("ask", "human_input", prompt="ok?"), node("end", "end", outputs={"draft": "{{ draft.text }}", "answer": "{{ ask.text }}"})]
    app = flows.create("workflow", nodes, chain("start", "draft", "ask", "end"))
    paused = flows.run(app, {"request": "paint the fence"})
    assert paused["status"] == "waiting"
    flows.client.close()
    _kill(first)

    second = start_server()
    workspace.server = second
    flows = Flows(workspace)
    resumed = flows.client.post(f"/v1/runs/{paused['id']}/input", json={"message": "go ahead"})
    assert resumed.status_code == 200, resumed.text
    run = resumed.json()
    assert run["status"] == "succeeded"
    assert run["outputs"] == {"draft": "paint the fence", "answer": "go ahead"}
    events = flows.events(run["id"])
    assert node_started(events, "draft") == 1
    flows.client.close()


def test_a_background_execution_survives_sigkill_and_finishes(start_server):
    first = start_server()
    workspace = first.new_workspace()
    flows = Flows(workspace)
    words = " ".join(f"w{i}" for i in range(12))
    nodes = [start("text"),
             node("quick", "llm", model="fake/echo", prompt="{{ start.text }}"),
             node("slow", "llm", model="fake/slow-250", prompt="{{ quick.text }}"),
             node("end", "end", outputs={"text": "{{ slow.text }}"})]
    app = flows.create("workflow", nodes, chain("start", "quick", "slow", "end"))
    accepted = flows.client.post(f"/v1/executions/{app['id']}/async", json={"input_data": {"text": words}})
    assert accepted.status_code == 202, accepted.text
    execution_id = accepted.json()["execution_id"]
    flows.wait(execution_id, until=lambda r: trace_started(r, "slow"), timeout=20)
    time.sleep(0.5)
    flows.client.close()
    _kill(first)

    second = start_server()
    workspace.server = second
    flows = Flows(workspace)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        status = flows.client.get(f"/v1/executions/{execution_id}").json()
        if status["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            break
        time.sleep(0.2)
    assert status["status"] == "COMPLETED", status
    assert status["final_output"] == {"text": words}
    assert status["retry_count"] == 1 and status["completed_nodes"] == status["total_nodes"] == 4
    events = flows.events(execution_id)
    assert node_started(events, "quick") == 1  # finished before the kill: not run again
    assert node_started(events, "slow") == 2   # interrupted mid-call: run again
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert trace(flows.get(execution_id), "slow")["status"] == "succeeded"
    flows.client.close()


def trace_started(run, node_id) -> bool:
    return any(n["node_id"] == node_id for n in run["nodes"])
