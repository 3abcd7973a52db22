"""A foreground run cut off by a server crash is reported as interrupted after the restart, not `running` forever."""

from __future__ import annotations

import os
import signal

import httpx
from support.server import ServerProcess


def test_foreground_run_killed_with_the_server_is_marked_failed(tmp_path):
    server = ServerProcess(data_dir=tmp_path / "data").start()
    try:
        ws = server.new_workspace()
        app = ws.create_chatbot(model="fake/slow-300")
        body = {"model": app["slug"], "stream": True, "messages": [{"role": "user", "content": "a b c d e f g h"}]}
        with httpx.Client(base_url=server.base_url, headers={"X-API-Key": ws.admin_key}, timeout=30) as c:
            with c.stream("POST", "/v1/chat/completions", json=body) as response:
                first = next(line for line in response.iter_lines() if line.startswith("data: "))
                os.kill(server.process.pid, signal.SIGKILL)
                server.process.wait()
        run_id = first.split('"id":"chatcmpl-')[1].split('"')[0]
        server.start()
        with ws.client() as c:
            run = c.get(f"/v1/runs/{run_id}").json()
        assert run["status"] == "failed"
        assert run["error"]["code"] == "interrupted"
    finally:
        server.stop()
