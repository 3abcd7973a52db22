"""A real MCP server process (tests/mcp/remote_server.py) on 127.0.0.1, and a Headwater allowed to reach it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from support.server import free_port

REMOTE_SCRIPT = Path(__file__).with_name("remote_server.py")


@dataclass
class RemoteMcp:
    port: int
    token: str
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start_remote(log_dir: Path, token: str = "remote-secret-token", timeout: float = 20.0) -> RemoteMcp:
    port = free_port()
    log = open(log_dir / f"remote-mcp-{port}.log", "ab")
    process = subprocess.Popen([sys.executable, str(REMOTE_SCRIPT), "--port", str(port), "--token", token],
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"remote MCP server exited early (see {log.name})")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return RemoteMcp(port, token, process)
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    raise RuntimeError("remote MCP server did not start")


def register(workspace, name: str, url: str, token: str | None = None):
    with workspace.client() as c:
        return c.post("/v1/mcp-servers", json={
            "name": name, "url": url, **({"headers": {"Authorization": f"Bearer {token}"}} if token else {})})


def mcp_flow(server: str, tool: str, arguments: dict, outputs: dict, inputs: list[dict] | None = None) -> dict:
    return {
        "nodes": [
            {"id": "in", "type": "start", "inputs": inputs or []},
            {"id": "call", "type": "mcp_tool", "server": server, "tool": tool, "arguments": arguments},
            {"id": "out", "type": "end", "outputs": outputs},
        ],
        "edges": [{"source": "in", "target": "call"}, {"source": "call", "target": "out"}],
    }
