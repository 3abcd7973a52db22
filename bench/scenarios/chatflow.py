"""A 3-node chatflow (start → llm → answer) through Waterflai's `/execute_chatflow`."""

from __future__ import annotations

import json

import httpx

from bench.context import PROMPT, Context
from bench.scenarios import ROUTE_MISSING, Skip, scenario

ROUTE = "/execute_chatflow/{id}/execute"
TOKENS = 16


def three_node_graph(model: str) -> dict:
    return {
        "nodes": [
            {"id": "in", "type": "start", "inputs": [{"name": "query", "type": "string", "required": True}]},
            {"id": "gen", "type": "llm", "model": model, "system": "You are a benchmark.",
             "prompt": "{{ in.query }}", "memory": True},
            {"id": "out", "type": "answer", "text": "{{ gen.text }}"},
        ],
        "edges": [{"source": "in", "target": "gen"}, {"source": "gen", "target": "out"}],
    }


@scenario("chatflow", "3-node chatflow", order=35)
def chatflow(ctx: Context) -> None:
    """`POST /execute_chatflow/{id}/execute` on start → llm → answer, 16-token answers from
    the mock with no delay, one conversation per client, at 1 and 16 clients."""
    if not ctx.admin.route_available("POST", ROUTE):
        raise Skip(ROUTE_MISSING)
    created = ctx.admin.create_app({"name": "bench-chatflow", "kind": "chatflow",
                                    "graph": three_node_graph(f"mock/{ctx.mock_model(TOKENS, 0)}")})
    if created.status_code != 201:
        raise Skip(f"the chatflow app was refused: {created.status_code} {created.text[:200]}")
    path = ROUTE.replace("{id}", created.json()["id"])
    # The contract lets a chatflow take conversation_id beside the start inputs; fall back to
    # a new conversation per call if this build does not accept it there.
    candidates = [{"input_data": {"query": PROMPT, "conversation_id": "{var}"}}, {"input_data": {"query": PROMPT}}]
    body = None
    with httpx.Client(base_url=ctx.headwater.base_url, headers=ctx.auth_headers(), timeout=30) as client:
        for candidate in candidates:
            text = json.dumps(candidate)
            reply = client.post(path, content=text.replace("{var}", "bench-probe"),
                                headers={"content-type": "application/json"})
            if reply.status_code == 200 and "@" in reply.text:
                body = text
                break
            last = f"{reply.status_code} {reply.text[:200]}"
    if body is None:
        raise Skip(f"the chatflow route did not answer a plain call: {last}")
    for concurrency in (1, 16):
        ctx.measure(f"c{concurrency}", target="headwater", path=path, body=body, concurrency=concurrency,
                    client_vars=[f"bench-cf-{i}" for i in range(concurrency)])
