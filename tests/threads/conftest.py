"""Fixtures of the agent and thread scenarios: a server that may call 127.0.0.1 (the slow API the tools call),
a slow HTTP API that records when each request came and went, and the OpenAI-compatible mock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest
from support.provider_mocks import MockState, ServedApp, openai_app
from support.server import ServerProcess, create_pg_database, drop_pg_database, pg_url
from threads_support import SlowApi

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session", params=BACKENDS)
def server(request, tmp_path_factory, pg_skip_reason) -> Iterator[ServerProcess]:
    """Like the suite's server, but its tools may reach 127.0.0.1 (the slow API below)."""
    database = None
    if request.param == "postgresql":
        if pg_skip_reason:
            pytest.skip(pg_skip_reason)
        database = create_pg_database()
    process = ServerProcess(
        data_dir=tmp_path_factory.mktemp(f"threads-{request.param}"),
        database_url=pg_url(database) if database else None,
        extra_env={"HEADWATER_EGRESS_ALLOW_PRIVATE": "true", "HEADWATER_BACKGROUND_CONCURRENCY": "8"},
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()
        if database:
            drop_pg_database(database)


@pytest.fixture
def slow_api() -> Iterator[str]:
    api = ThreadingHTTPServer(("127.0.0.1", 0), SlowApi)
    api.daemon_threads = True
    thread = threading.Thread(target=api.serve_forever, daemon=True)
    thread.start()
    SlowApi.calls = []
    yield f"http://127.0.0.1:{api.server_address[1]}"
    api.shutdown()
    api.server_close()


@pytest.fixture(scope="session")
def openai_mock() -> Iterator[ServedApp]:
    state = MockState()
    served = ServedApp(openai_app(state), state).start()
    yield served
    served.stop()
