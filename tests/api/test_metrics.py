"""Prometheus metrics for the instance admin."""

from __future__ import annotations


def test_metrics_count_runs_for_the_instance_admin_only(server, workspace):
    app = workspace.create_chatbot(model="fake/echo")
    with workspace.client() as c:
        assert c.post("/v1/chat/completions", json={"model": app["slug"], "messages": [{"role": "user", "content": "x"}]}).status_code == 200
        assert c.get("/metrics").status_code == 403
    with server.client(server.admin_key) as admin:
        response = admin.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    succeeded = [line for line in response.text.splitlines() if line.startswith('headwater_runs_stored{status="succeeded"}')]
    assert succeeded and float(succeeded[0].split()[-1]) >= 1
    assert "process_resident_memory_bytes" in response.text
