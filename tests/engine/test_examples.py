"""The example apps shipped in the package import with the CLI and run (on the fake provider here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from flow_support import FakeApi, Flows

import headwater

EXAMPLES = Path(headwater.__file__).parent / "examples"


def _document(name: str, **replace: str) -> dict:
    text = (EXAMPLES / name).read_text().replace("local/gemma-3-270m", "fake/echo")
    for old, new in replace.items():
        text = text.replace(old, new)
    return yaml.safe_load(text)


def _create(flows: Flows, document: dict) -> dict:
    fields = {k: document[k] for k in ("name", "kind", "description", "graph")}
    response = flows.client.post("/v1/apps", json=fields)
    assert response.status_code == 201, response.text
    return response.json()


def test_examples_import_with_the_cli(tmp_path):
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert len(files) >= 3
    env = {"HEADWATER_DATA_DIR": str(tmp_path), "HEADWATER_ADMIN_KEY": "hw_cli_admin", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "headwater", "apps", "import", *map(str, files)],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for slug in ("support-assistant", "repository-summary", "purchase-approval"):
        assert slug in result.stdout


def test_support_chatflow_routes_by_condition_and_classifier(flows):
    app = _create(flows, _document("support_chatflow.yaml"))
    assert flows.run(app, {"query": "hi"})["outputs"]["text"].startswith("Could you tell me")
    billing = flows.run(app, {"query": "my billing is wrong"})
    assert billing["outputs"]["text"] == "my billing is wrong"
    ran = {n["node_id"] for n in billing["nodes"]}
    assert "billing_reply" in ran and not ran & {"technical_reply", "general_reply", "ask_more"}
    general = flows.run(app, {"query": "where is the office"}, session_id=billing["session_id"])
    assert {n["node_id"] for n in general["nodes"]} >= {"general_reply", "general_answer"}
    messages = flows.client.get(f"/v1/sessions/{billing['session_id']}/messages").json()
    assert [m["content"] for m in messages] == ["my billing is wrong", "my billing is wrong",
                                                "where is the office", "where is the office"]


def test_repository_workflow_calls_the_api_and_templates_the_result(start_server, local_api):
    server = start_server(HEADWATER_EGRESS_ALLOW_PRIVATE="true")
    flows = Flows(server.new_workspace())
    app = _create(flows, _document("github_repo_workflow.yaml", **{"https://api.github.com": local_api}))
    run = flows.run(app, {"repo": "acme/rockets"})
    assert run["status"] == "succeeded", run
    assert run["outputs"]["status_code"] == 200 and run["outputs"]["stars"] == 42
    assert run["outputs"]["summary"].startswith("acme/rockets: no description (42 stars")
    assert FakeApi.hits == ["/repos/acme/rockets"]
    flows.client.close()


def test_approval_workflow_waits_for_a_person(flows):
    app = _create(flows, _document("approval_workflow.yaml"))
    paused = flows.run(app, {"request": "two monitors", "amount": 480, "requester": "Sam"})
    assert paused["status"] == "waiting" and "480" in paused["waiting"][0]["prompt"]
    done = flows.client.post(f"/v1/runs/{paused['id']}/input", json={"message": "yes"}).json()
    assert done["outputs"]["approved"] is True
    assert done["outputs"]["note"] == "Approved: two monitors (480) for Sam."
    rejected = flows.run(app, {"request": "a yacht", "amount": 1e6})
    rejected = flows.client.post(f"/v1/runs/{rejected['id']}/input", json={"message": "no way"}).json()
    assert rejected["outputs"]["approved"] is False and "no way" in rejected["outputs"]["note"]


@pytest.mark.parametrize("name", ["support_chatflow.yaml", "github_repo_workflow.yaml", "approval_workflow.yaml"])
def test_examples_are_valid_as_shipped(flows, name):
    document = yaml.safe_load((EXAMPLES / name).read_text())
    _create(flows, document)
