"""Fixtures shared by the bot chat dialect tests (WAYSCloud, Tailwinds/Flowise)."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture
def other_workspace(server):
    """A second tenant: its objects must be invisible (404) to the first one's keys."""
    return server.new_workspace("other")


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
