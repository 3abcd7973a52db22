"""Fixtures of the flow-engine scenarios: a `flows` helper per test workspace, and extra servers."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer

import pytest
from flow_support import FakeApi, Flows
from support.server import ServerProcess, create_pg_database, drop_pg_database, pg_url


@pytest.fixture
def flows(workspace) -> Flows:
    helper = Flows(workspace)
    yield helper
    helper.client.close()


@pytest.fixture
def other_flows(server) -> Flows:
    helper = Flows(server.new_workspace("other"))
    yield helper
    helper.client.close()


@pytest.fixture
def backend(server) -> str:
    return "postgresql" if server.database_url else "sqlite"


@pytest.fixture
def fresh_store(backend, tmp_path, pg_skip_reason):
    """A data dir and database of their own, for tests that start and kill servers."""
    database = None
    if backend == "postgresql":
        if pg_skip_reason:
            pytest.skip(pg_skip_reason)
        database = create_pg_database()
    yield tmp_path / "data", (pg_url(database) if database else None)
    if database:
        drop_pg_database(database)


@pytest.fixture
def start_server(fresh_store):
    """start_server(**env) -> a ServerProcess on the test's own store; all are stopped afterwards."""
    data_dir, database_url = fresh_store
    started: list[ServerProcess] = []
    admin_key = "hw_admin_flow_restart_" + str(id(started))

    def make(**env: str) -> ServerProcess:
        process = ServerProcess(data_dir=data_dir, database_url=database_url, admin_key=admin_key,
                                extra_env=dict(env))
        process.start()
        started.append(process)
        return process

    yield make
    for process in started:
        process.stop()


@pytest.fixture
def local_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeApi.hits.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
