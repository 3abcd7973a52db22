"""Apps: create, slugs, versions on every save, validation that writes nothing."""

from __future__ import annotations


def test_every_save_makes_a_version_and_old_versions_stay_readable(workspace):
    app = workspace.create_chatbot(system_prompt="v1 prompt")
    assert app["version"] == 1 and app["slug"] == "bot"
    with workspace.client() as c:
        updated = c.put(f"/v1/apps/{app['id']}", json={"config": {"model": "fake/context", "system_prompt": "v2 prompt"}})
        assert updated.status_code == 200
        assert updated.json()["version"] == 2
        renamed = c.put(f"/v1/apps/{app['slug']}", json={"name": "Renamed"})
        assert renamed.json()["version"] == 3
        assert renamed.json()["config"]["system_prompt"] == "v2 prompt"
        assert c.get(f"/v1/apps/{app['id']}?version=1").json()["config"]["system_prompt"] == "v1 prompt"
        assert [v["version"] for v in c.get(f"/v1/apps/{app['id']}/versions").json()] == [1, 2, 3]
        assert c.get(f"/v1/apps/{app['id']}?version=9").status_code == 404
        # runs use the latest version
        reply = c.post("/v1/chat/completions", json={"model": app["id"], "messages": [{"role": "user", "content": "x"}]})
        assert "v2 prompt" in reply.json()["choices"][0]["message"]["content"]


def test_slugs_are_derived_unique_and_checked(workspace):
    with workspace.client() as c:
        first = c.post("/v1/apps", json={"name": "Support Bot!", "kind": "chatbot", "config": {"model": "fake/echo"}})
        second = c.post("/v1/apps", json={"name": "Support Bot!", "kind": "chatbot", "config": {"model": "fake/echo"}})
        assert (first.json()["slug"], second.json()["slug"]) == ("support-bot", "support-bot-2")
        taken = c.post("/v1/apps", json={"name": "x", "slug": "support-bot", "kind": "chatbot"})
        assert taken.status_code == 409
        bad = c.post("/v1/apps", json={"name": "x", "slug": "Not A Slug", "kind": "chatbot"})
        assert bad.status_code == 422


def test_invalid_definitions_are_refused_and_nothing_is_written(workspace):
    with workspace.client() as c:
        before = c.get("/v1/apps").json()
        cases = [
            {"name": "x", "kind": "chatbot", "config": {"model": "nosuch/model"}},
            {"name": "x", "kind": "chatbot", "config": {"model": "local/not-a-model"}},
            {"name": "x", "kind": "chatbot", "config": {"model": "no-slash"}},
            {"name": "x", "kind": "chatbot", "config": {"temperature": "hot"}},
            {"name": "x", "kind": "chatbot", "config": {"unknown_field": 1}},
            {"name": "x", "kind": "robot"},
            {"name": "", "kind": "chatbot"},
            {"name": "x", "kind": "chatflow"},
            {"kind": "chatbot"},
            {"name": "x", "kind": "chatbot", "surprise": True},
        ]
        for body in cases:
            response = c.post("/v1/apps", json=body)
            assert response.status_code == 422, (body, response.text)
            assert isinstance(response.json()["detail"], str)
        assert c.get("/v1/apps").json() == before


def test_kind_cannot_change_and_unknown_model_update_keeps_the_old_version(workspace):
    app = workspace.create_chatbot()
    with workspace.client() as c:
        assert c.put(f"/v1/apps/{app['id']}", json={"kind": "workflow"}).status_code == 422
        assert c.put(f"/v1/apps/{app['id']}", json={"config": {"model": "ghost/model"}}).status_code == 422
        current = c.get(f"/v1/apps/{app['id']}").json()
    assert current["version"] == 1 and current["config"]["model"] == "fake/context"


def test_delete_app(workspace):
    app = workspace.create_chatbot()
    with workspace.client() as c:
        assert c.delete(f"/v1/apps/{app['id']}").status_code == 204
        assert c.get(f"/v1/apps/{app['id']}").status_code == 404
        assert c.delete(f"/v1/apps/{app['id']}").status_code == 404
