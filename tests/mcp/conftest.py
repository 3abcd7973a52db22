"""Fixtures of the MCP client scenarios: a Headwater allowed to reach 127.0.0.1, and a real MCP server there."""

from __future__ import annotations

import pytest
from remote_support import start_remote
from support.server import ServerProcess


@pytest.fixture(scope="module")
def intranet(tmp_path_factory):
    """A Headwater instance that allows private egress (an intranet setup), on SQLite."""
    process = ServerProcess(data_dir=tmp_path_factory.mktemp("intranet"),
                            extra_env={"HEADWATER_EGRESS_ALLOW_PRIVATE": "true"})
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    server = start_remote(tmp_path_factory.mktemp("remote"))
    yield server
    server.stop()
