"""Two first calls naming the same new conversation at once both succeed and share it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


def test_simultaneous_first_calls_with_one_new_conversation_id(workspace):
    app = workspace.create_chatbot(model="fake/slow-20")

    def call(i: int) -> int:
        with workspace.client() as c:
            return c.post("/v1/chat/completions", json={
                "model": app["slug"], "conversation_id": "shared-new-conversation",
                "messages": [{"role": "user", "content": f"hello {i}"}],
            }).status_code

    for _ in range(3):
        with ThreadPoolExecutor(max_workers=6) as pool:
            assert list(pool.map(call, range(6))) == [200] * 6
    with workspace.client() as c:
        assert len(c.get("/v1/sessions/shared-new-conversation/messages").json()) == 36


CHATFLOW = {
    "nodes": [
        {"id": "start", "type": "start", "inputs": [{"name": "query", "required": True}]},
        {"id": "gen", "type": "llm", "model": "fake/echo", "prompt": "{{ start.query }}", "memory": True},
        {"id": "out", "type": "answer", "text": "{{ gen.text }}"},
    ],
    "edges": [{"source": "start", "target": "gen"}, {"source": "gen", "target": "out"}],
}


def test_simultaneous_first_chatflow_calls_with_one_new_conversation_id(workspace):
    with workspace.client() as c:
        app = c.post("/v1/apps", json={"name": "flow", "kind": "chatflow", "graph": CHATFLOW}).json()

    def call(i: int) -> int:
        with workspace.client() as c:
            return c.post(f"/execute_chatflow/{app['id']}/execute", json={"input_data": {
                "query": f"hello {i}", "conversation_id": "shared-new-flow-conversation"}}).status_code

    for _ in range(3):
        with ThreadPoolExecutor(max_workers=6) as pool:
            assert list(pool.map(call, range(6))) == [200] * 6
