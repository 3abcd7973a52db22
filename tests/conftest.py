"""Shared fixtures: one real server per database backend for the whole session.

Tests isolate themselves by creating their own workspace (`workspace` fixture),
which is also how real tenants are isolated, so one server can serve them all.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.server import (
    ServerProcess,
    Workspace,
    create_pg_database,
    drop_pg_database,
    pg_url,
    postgres_unavailable_reason,
)

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg_skip_reason() -> str | None:
    return postgres_unavailable_reason()


@pytest.fixture(scope="session", params=BACKENDS)
def server(request, tmp_path_factory, pg_skip_reason) -> Iterator[ServerProcess]:
    database = None
    if request.param == "postgresql":
        if pg_skip_reason:
            pytest.skip(pg_skip_reason)
        database = create_pg_database()
    process = ServerProcess(
        data_dir=tmp_path_factory.mktemp(f"server-{request.param}"),
        database_url=pg_url(database) if database else None,
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()
        if database:
            drop_pg_database(database)


@pytest.fixture
def workspace(server: ServerProcess) -> Workspace:
    return server.new_workspace()
