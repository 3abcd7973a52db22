"""The routes the Studio's editor and pickers use: validate, import, export an app document; a provider's models."""

from __future__ import annotations

import json

import yaml

CHATFLOW = {
    "headwater_app": 1, "name": "Doc flow", "kind": "chatflow", "config": {},
    "graph": {
        "nodes": [
            {"id": "start", "type": "start", "inputs": [{"name": "query", "type": "string", "required": True}]},
            {"id": "reply", "type": "llm", "model": "fake/echo", "prompt": "{{ start.query }}"},
            {"id": "out", "type": "answer", "text": "{{ reply.text }}"},
        ],
        "edges": [{"source": "start", "target": "reply"}, {"source": "reply", "target": "out"}],
    },
}


def _validate(client, document, format="json"):
    source = json.dumps(document) if format == "json" else yaml.safe_dump(document)
    response = client.post("/v1/apps/validate", json={"source": source, "format": format})
    assert response.status_code == 200, response.text
    return response.json()


def test_valid_document_in_json_and_yaml(workspace):
    with workspace.client() as client:
        for format in ("json", "yaml"):
            report = _validate(client, CHATFLOW, format)
            assert report["valid"] is True and report["errors"] == []
            assert report["document"] == CHATFLOW
            assert {"start", "llm", "answer", "human_input"} <= set(report["node_types"])


def test_every_node_problem_is_reported_with_its_node(workspace):
    broken = json.loads(json.dumps(CHATFLOW))
    broken["graph"]["nodes"][1]["type"] = "llmm"  # unknown type
    broken["graph"]["nodes"][2]["text"] = 42  # wrong config type
    with workspace.client() as client:
        report = _validate(client, broken)
    assert report["valid"] is False
    by_node = {p["node_id"]: p["message"] for p in report["errors"]}
    assert "unknown node type 'llmm'" in by_node["reply"]
    assert "answer config" in by_node["out"]
    assert report["document"]["name"] == "Doc flow"  # still drawable


def test_graph_problems_name_their_node(workspace):
    dangling = json.loads(json.dumps(CHATFLOW))
    dangling["graph"]["nodes"][2]["text"] = "{{ nowhere.text }}"
    with workspace.client() as client:
        report = _validate(client, dangling)
    assert report["errors"] == [{"message": "template refers to unknown node 'nowhere'", "node_id": "out", "line": None}]


def test_parse_errors_give_the_line(workspace):
    with workspace.client() as client:
        bad_json = client.post("/v1/apps/validate", json={"source": '{\n  "name": "x",\n  oops\n}', "format": "json"}).json()
        bad_yaml = client.post("/v1/apps/validate", json={"source": "name: x\nkind: [chatflow\n", "format": "yaml"}).json()
        not_object = client.post("/v1/apps/validate", json={"source": "- a\n- b\n", "format": "yaml"}).json()
    assert bad_json["valid"] is False and bad_json["errors"][0]["line"] == 3
    assert bad_yaml["errors"][0]["message"].startswith("not valid YAML") and bad_yaml["errors"][0]["line"]
    assert not_object["document"] is None and "object" in not_object["errors"][0]["message"]


def test_yaml_tags_are_never_constructed(workspace):
    source = "name: !!python/object/apply:os.system ['true']\nkind: chatflow\n"
    with workspace.client() as client:
        report = client.post("/v1/apps/validate", json={"source": source, "format": "yaml"}).json()
    assert report["valid"] is False and report["document"] is None


def test_chatbot_with_unknown_model_is_reported(workspace):
    with workspace.client() as client:
        report = _validate(client, {"name": "b", "kind": "chatbot", "config": {"model": "nobody/nothing"}})
    assert report["valid"] is False and "nobody" in report["errors"][0]["message"]


def test_import_then_export_round_trip(workspace):
    with workspace.client() as client:
        created = client.post("/v1/apps/import", json={"source": yaml.safe_dump(CHATFLOW), "format": "yaml"})
        assert created.status_code == 201, created.text
        app = created.json()
        exported = client.get(f"/v1/apps/{app['id']}/export?format=yaml")
        assert exported.status_code == 200
        assert exported.headers["content-disposition"] == f'attachment; filename="{app["slug"]}.yaml"'
        document = yaml.safe_load(exported.text)
        assert document["graph"] == CHATFLOW["graph"] and document["slug"] == app["slug"]
        # Importing a document with that slug adds a version instead of a second app.
        again = client.post("/v1/apps/import", json={"source": client.get(f"/v1/apps/{app['id']}/export?format=json").text,
                                                     "format": "json"})
        assert again.status_code == 201 and again.json()["id"] == app["id"] and again.json()["version"] == 2
        refused = client.post("/v1/apps/import", json={"source": "{", "format": "json"})
        assert refused.status_code == 422 and "line 1" in refused.json()["detail"]


def test_validate_and_import_need_an_admin_key(workspace):
    chatbot_key = workspace.create_key("narrow", ["chatbot"])
    with workspace.client(chatbot_key) as client:
        body = {"source": json.dumps(CHATFLOW), "format": "json"}
        assert client.post("/v1/apps/validate", json=body).status_code == 403
        assert client.post("/v1/apps/import", json=body).status_code == 403


def test_provider_models(workspace):
    with workspace.client() as client:
        local = client.get("/v1/providers/local/models").json()
        assert local == {"provider": "local", "models": ["gemma-3-270m"], "source": "configured"}
        fake = client.get("/v1/providers/fake/models").json()
        assert fake["source"] == "provider" and "echo" in fake["models"]
        created = client.post("/v1/providers", json={"name": "mine", "type": "openai", "base_url": "http://127.0.0.1:9",
                                                     "models": ["m1", "m2"]}).json()
        assert client.get(f"/v1/providers/{created['id']}/models").json()["models"] == ["m1", "m2"]
        assert client.get("/v1/providers/nobody/models").status_code == 404
