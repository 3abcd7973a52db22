"""One turn of each agent mode on the embedded model, through the playground: the mechanics must hold
(the turn completes with an answer, the plan and steps are recorded), whatever the small model says."""

from __future__ import annotations

import pytest
from threads_support import create_agent, wait_for

pytestmark = pytest.mark.local_model


@pytest.mark.parametrize("mode", ["react", "actionplan"])
def test_each_agent_mode_completes_on_the_local_model(workspace, mode):
    with workspace.client() as c:
        c.timeout = 120
        app = create_agent(c, model="local/gemma-3-270m", tools=["calculator"], mode=mode, max_steps=3,
                           max_tokens=4000)
        started = c.post("/api/chat/playground/start", params={"appId": app["id"]},
                         json={"input": "What is 12 times 7?"})
        assert started.status_code == 200, started.text
        workflow = started.json()
        status = wait_for(lambda: c.get(f"/api/workflows/{workflow['id']}/status").json(),
                          lambda s: s["status"] != "running", timeout=600, interval=0.5)
        assert status["status"] == "completed", status
        data = c.get(f"/api/chat/playground/{workflow['id']}/chatData").json()
        assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
        assert data["messages"][1]["content"].strip()
        [stats] = data["stats"]
        assert stats["modelCalls"] >= (3 if mode == "actionplan" else 1) and stats["completionTokens"] > 0
        if mode == "actionplan":
            assert any(log["type"] == "plan" for log in data["logs"])
            assert status["progress"] == 100
