"""Another workspace's objects answer 404 on every verb, never 403 and never the object."""

from __future__ import annotations


def test_objects_of_another_workspace_are_404(server):
    owner, stranger = server.new_workspace("owner"), server.new_workspace("stranger")
    app = owner.create_chatbot(name="Private bot")
    with owner.client() as c:
        reply = c.post("/v1/chat/completions", json={"model": app["id"], "messages": [{"role": "user", "content": "hi"}]})
        assert reply.status_code == 200
        session_id = reply.json()["conversation_id"]
        run_id = reply.json()["id"].removeprefix("chatcmpl-")
        provider = c.post("/v1/providers", json={"name": "p1", "type": "openai", "base_url": "http://127.0.0.1:9/v1"})
        assert provider.status_code == 201
        key_id = c.get("/v1/api-keys").json()[0]["id"]

    with stranger.client() as c:
        assert c.get(f"/v1/apps/{app['id']}").status_code == 404
        assert c.get(f"/v1/apps/{app['slug']}").status_code == 404
        assert c.put(f"/v1/apps/{app['id']}", json={"name": "stolen"}).status_code == 404
        assert c.delete(f"/v1/apps/{app['id']}").status_code == 404
        chat = c.post("/v1/chat/completions", json={"model": app["id"], "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 404
        assert c.get(f"/v1/sessions/{session_id}/messages").status_code == 404
        assert c.get(f"/v1/runs/{run_id}").status_code == 404
        assert c.get(f"/v1/runs/{run_id}/events").status_code == 404
        assert c.get(f"/v1/providers/{provider.json()['id']}").status_code == 404
        assert c.delete(f"/v1/providers/{provider.json()['id']}").status_code == 404
        assert c.delete(f"/v1/api-keys/{key_id}").status_code == 404
        assert app["id"] not in c.get("/v1/apps").text
        assert app["slug"] not in c.get("/v1/models").text

    with owner.client() as c:  # nothing the stranger tried changed anything
        assert c.get(f"/v1/apps/{app['id']}").json()["name"] == "Private bot"
        assert len(c.get(f"/v1/sessions/{session_id}/messages").json()) == 2


def test_same_session_id_in_two_workspaces_stays_separate(server):
    first, second = server.new_workspace(), server.new_workspace()
    for ws, fact in ((first, "alpha"), (second, "beta")):
        app = ws.create_chatbot()
        with ws.client() as c:
            r = c.post("/v1/chat/completions", json={
                "model": app["id"], "conversation_id": "shared-id", "messages": [{"role": "user", "content": fact}],
            })
            assert r.status_code == 200
    with first.client() as c:
        contents = [m["content"] for m in c.get("/v1/sessions/shared-id/messages").json()]
    assert "alpha" in contents and "beta" not in " ".join(contents)


def test_deleting_a_workspace_removes_access(server):
    ws = server.new_workspace()
    with server.client(server.admin_key) as admin:
        assert admin.delete(f"/v1/workspaces/{ws.id}").status_code == 204
        assert admin.delete("/v1/workspaces/default").status_code == 422
    with ws.client() as c:
        assert c.get("/v1/apps").status_code == 401
