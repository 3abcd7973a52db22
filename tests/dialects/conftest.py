"""Fixtures shared by the bot chat dialect tests (WAYSCloud, Tailwinds/Flowise)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from dialect_support import llm_chatflow


@pytest.fixture
def other_workspace(server):
    """A second tenant: its objects must be invisible (404) to the first one's keys."""
    return server.new_workspace("other")


@pytest.fixture(params=["chatbot", "chatflow"])
def app_of_kind(request, workspace) -> Callable[..., dict]:
    """Makes an app of each kind the dialects serve, answering with `model` (and the model's settings):
    a chatbot, or a chatflow start -> llm -> answer."""
    if request.param == "chatbot":
        return lambda model, **settings: workspace.create_chatbot(model=model, **settings)
    return lambda model, **settings: llm_chatflow(workspace, model=model, **settings)


@pytest.fixture
def written(workspace) -> Callable[[], tuple[int, int, int]]:
    """(sessions, runs, messages) of the workspace: to prove a refused request wrote nothing."""

    def count() -> tuple[int, int, int]:
        with workspace.client() as c:
            sessions = c.get("/v1/sessions").json()
            runs = c.get("/v1/runs", params={"limit": 500}).json()
            messages = sum(len(c.get(f"/v1/sessions/{s['id']}/messages").json()) for s in sessions)
        return len(sessions), len(runs), messages

    return count
