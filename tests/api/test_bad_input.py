"""Bad input gets a clear 4xx with {"detail": str}, and nothing is written."""

from __future__ import annotations

import pytest


def _counts(c) -> tuple[int, int]:
    return len(c.get("/v1/sessions").json()), len(c.get("/v1/runs").json())


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"model": "no-such-bot", "messages": [{"role": "user", "content": "hi"}]}, 404),
        ({"model": "BOT", "messages": []}, 422),
        ({"model": "BOT", "messages": [{"role": "user", "content": "   "}]}, 422),
        ({"model": "BOT", "messages": [{"role": "assistant", "content": "hi"}]}, 422),
        ({"model": "BOT", "messages": "hello"}, 422),
        ({"model": "BOT", "messages": [{"role": "wizard", "content": "hi"}]}, 422),
        ({"model": 42, "messages": [{"role": "user", "content": "hi"}]}, 422),
        ({"model": "BOT", "messages": [{"role": "user", "content": "hi"}], "temperature": "warm"}, 422),
        ({"model": "BOT", "messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}, 422),
        ({"model": "BOT", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]}, 422),
        ({"model": "BOT", "messages": [{"role": "user", "content": [{"type": "audio", "text": "x"}]}]}, 422),
        ({"messages": [{"role": "user", "content": "hi"}]}, 422),
    ],
)
def test_bad_chat_requests(workspace, body, status):
    app = workspace.create_chatbot(model="fake/echo")
    if body.get("model") == "BOT":
        body = {**body, "model": app["slug"]}
    with workspace.client() as c:
        before = _counts(c)
        response = c.post("/v1/chat/completions", json=body)
        assert response.status_code == status, response.text
        assert isinstance(response.json()["detail"], str) and response.json()["detail"]
        assert "Traceback" not in response.text
        assert _counts(c) == before


def test_images_for_a_text_only_model_are_refused(workspace):
    app = workspace.create_chatbot(model="local/gemma-3-270m")
    with workspace.client() as c:
        before = _counts(c)
        response = c.post("/v1/chat/completions", json={"model": app["slug"], "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]}]})
        assert response.status_code == 422
        assert "does not accept images" in response.json()["detail"]
        assert _counts(c) == before


def test_malformed_json_and_wrong_content_type(workspace):
    with workspace.client() as c:
        broken = c.post("/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"})
        assert broken.status_code == 422
        assert isinstance(broken.json()["detail"], str)


def test_oversized_body_is_413(workspace):
    app = workspace.create_chatbot(model="fake/echo")
    huge = "x" * (11 * 1024 * 1024)
    with workspace.client() as c:
        before = _counts(c)
        response = c.post("/v1/chat/completions", json={"model": app["slug"], "messages": [{"role": "user", "content": huge}]})
        assert response.status_code == 413
        assert "larger than" in response.json()["detail"]
        assert _counts(c) == before


def test_unknown_route_and_method_are_json_errors(workspace):
    with workspace.client() as c:
        assert c.get("/v1/nothing-here").json() == {"detail": "Not Found"}
        wrong_method = c.patch("/v1/apps")
        assert wrong_method.status_code == 405 and "detail" in wrong_method.json()


def test_chatbot_route_refuses_other_app_kinds(workspace):
    with workspace.client() as c:
        flow = c.post("/v1/apps", json={"name": "Flow", "kind": "agent", "config": {"mode": "react"}})
        assert flow.status_code == 201
        response = c.post("/v1/chat/completions", json={"model": flow.json()["slug"], "messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == 422
