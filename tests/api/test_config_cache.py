"""Keys, apps and providers are cached per process, and a change made anywhere applies at once.

Two real server processes share one database (and data dir): what one of them changes,
the other must honour on the very next request, though it answered from its cache a
moment before. On SQLite the CLI, a third process, revokes a key under a running server.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from support.server import ServerProcess, create_pg_database, drop_pg_database, pg_url

from headwater.store.config_cache import ConfigCache

ASK = {"messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture(params=["sqlite", "postgresql"])
def two_servers(request, tmp_path, pg_skip_reason):
    database = None
    if request.param == "postgresql":
        if pg_skip_reason:
            pytest.skip(pg_skip_reason)
        database = create_pg_database()
    first = ServerProcess(data_dir=tmp_path / "data", database_url=pg_url(database) if database else None)
    second = ServerProcess(data_dir=first.data_dir, database_url=first.database_url, admin_key=first.admin_key)
    try:
        first.start()
        second.start()
        yield first, second
    finally:
        second.stop()
        first.stop()
        if database:
            drop_pg_database(database)


def chat(server: ServerProcess, key: str, model: str):
    with server.client(key) as c:
        return c.post("/v1/chat/completions", json={"model": model, **ASK})


def test_a_key_revoked_on_one_server_is_refused_by_the_other_at_once(two_servers):
    first, second = two_servers
    ws = first.new_workspace()
    app = ws.create_chatbot(model="fake/echo")
    with ws.client() as c:
        created = c.post("/v1/api-keys", json={"name": "k", "scopes": ["chatbot"]}).json()
    for _ in range(3):  # the second server now answers this key from its cache
        assert chat(second, created["key"], app["slug"]).status_code == 200
    with ws.client() as c:
        assert c.delete(f"/v1/api-keys/{created['id']}").status_code == 204
    refused = chat(second, created["key"], app["slug"])
    assert refused.status_code == 401, refused.text


def test_a_new_app_version_saved_on_one_server_runs_on_the_other(two_servers):
    first, second = two_servers
    ws = first.new_workspace()
    app = ws.create_chatbot(model="fake/context", system_prompt="version one")
    assert "version one" in chat(second, ws.admin_key, app["slug"]).json()["choices"][0]["message"]["content"]
    with ws.client() as c:
        saved = c.put(f"/v1/apps/{app['id']}", json={"config": {"model": "fake/context",
                                                                "system_prompt": "version two"}})
        assert saved.status_code == 200, saved.text
    reply = chat(second, ws.admin_key, app["slug"]).json()["choices"][0]["message"]["content"]
    assert "version two" in reply and "version one" not in reply


def test_a_provider_deleted_on_one_server_is_gone_on_the_other(two_servers):
    first, second = two_servers
    ws = first.new_workspace()
    with ws.client() as c:
        assert c.post("/v1/providers", json={"name": "nowhere", "type": "openai",
                                             "base_url": "http://127.0.0.1:9/v1"}).status_code == 201
    app = ws.create_chatbot(model="nowhere/some-model")
    assert chat(second, ws.admin_key, app["slug"]).status_code >= 502  # known provider, unreachable
    with ws.client() as c:
        assert c.delete("/v1/providers/nowhere").status_code == 204
    gone = chat(second, ws.admin_key, app["slug"])
    assert gone.status_code == 422 and "no provider named 'nowhere'" in gone.json()["detail"]


def test_a_key_revoked_by_the_cli_is_refused_by_the_running_server(tmp_path):
    server = ServerProcess(data_dir=tmp_path / "data").start()
    try:
        with server.client(server.admin_key) as c:  # the CLI manages the default workspace's keys
            app = c.post("/v1/apps", json={"name": "Bot", "kind": "chatbot", "config": {"model": "fake/echo"}}).json()
            created = c.post("/v1/api-keys", json={"name": "k", "scopes": ["chatbot"]}).json()
        assert chat(server, created["key"], app["slug"]).status_code == 200
        revoked = subprocess.run(
            [sys.executable, "-m", "headwater", "keys", "revoke", created["id"]],
            env=server.env(), capture_output=True, text=True, timeout=60,
        )
        assert revoked.returncode == 0, revoked.stderr
        assert chat(server, created["key"], app["slug"]).status_code == 401
    finally:
        server.stop()


# --- the cache itself ---------------------------------------------------------------------


async def test_a_value_read_while_a_change_lands_is_not_kept(tmp_path):
    cache = ConfigCache(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    loads = []

    async def load_racing_a_writer():
        loads.append(1)
        cache.announce()  # another request committed a change while this one was reading
        return "old value"

    assert await cache.get("k", load_racing_a_writer) == "old value"
    assert await cache.get("k", load_racing_a_writer) == "old value"
    assert len(loads) == 2  # the first answer was not cached


async def test_a_stamp_from_another_process_empties_the_cache(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    here, elsewhere = ConfigCache(url), ConfigCache(url)
    values = iter(["first", "second"])

    async def load():
        return next(values)

    assert await here.get("k", load) == "first"
    assert await here.get("k", load) == "first"  # cached
    elsewhere.announce()
    assert await here.get("k", load) == "second"


async def test_nothing_is_cached_without_a_postgres_listener():
    cache = ConfigCache("postgresql+asyncpg://nobody@127.0.0.1:9/none")  # never started: not listening
    values = iter(["first", "second"])

    async def load():
        return next(values)

    assert await cache.get("k", load) == "first"
    assert await cache.get("k", load) == "second"
