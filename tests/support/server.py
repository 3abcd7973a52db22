"""A real Headwater server process on 127.0.0.1 for tests, on SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PG_ADMIN_URL = os.environ.get("HEADWATER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_unavailable_reason() -> str | None:
    """None when the test PostgreSQL answers, else why not (tests then skip, saying so)."""
    try:
        asyncio.run(_pg_execute("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable here"
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc.__class__.__name__}: {exc}"
    return None


async def _pg_execute(sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def create_pg_database() -> str:
    name = f"headwater_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_execute(f'CREATE DATABASE "{name}"'))
    return name


def drop_pg_database(name: str) -> None:
    asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pg_url(database: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{database}"


@dataclass
class ServerProcess:
    """`python -m headwater serve` with its own data dir; stopped by pid."""

    data_dir: Path
    database_url: str | None = None
    admin_key: str = field(default_factory=lambda: "hw_admin_" + uuid.uuid4().hex)
    admin_password: str = "test-password"
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
        env.update({
            "HEADWATER_DATA_DIR": str(self.data_dir),
            "HEADWATER_ADMIN_KEY": self.admin_key,
            "HEADWATER_ADMIN_PASSWORD": self.admin_password,
            "HEADWATER_ENABLE_FAKE_PROVIDER": "true",
            "HEADWATER_RATE_LIMIT_PER_MINUTE": "100000",
            "HEADWATER_STUDIO_SIGN_IN_PER_MINUTE": "100000",
        })
        if self.database_url:
            env["HEADWATER_DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 30.0) -> "ServerProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "server.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "headwater", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_text()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy:\n{self.log_text()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_text(self) -> str:
        path = self.data_dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'headwater.db').resolve()}"

    def client(self, key: str | None = None, **headers: str) -> httpx.Client:
        if key:
            headers = {"X-API-Key": key, **headers}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)

    def new_workspace(self, name: str = "test") -> "Workspace":
        with self.client(self.admin_key) as admin:
            response = admin.post("/v1/workspaces", json={"name": name})
            response.raise_for_status()
            body = response.json()
        return Workspace(self, body["id"], body["admin_key"])


@dataclass
class Workspace:
    server: ServerProcess
    id: str
    admin_key: str

    def client(self, key: str | None = None) -> httpx.Client:
        return self.server.client(key or self.admin_key)

    def create_key(self, name: str = "k", scopes: list[str] | None = None, rate_limit: int | None = None) -> str:
        payload: dict = {"name": name, "scopes": scopes or ["chatbot"]}
        if rate_limit is not None:
            payload["rate_limit"] = rate_limit
        with self.client() as c:
            response = c.post("/v1/api-keys", json=payload)
            response.raise_for_status()
            return response.json()["key"]

    def create_chatbot(self, model: str = "fake/context", **config) -> dict:
        with self.client() as c:
            response = c.post("/v1/apps", json={
                "name": config.pop("name", "Bot"), "kind": "chatbot", "config": {"model": model, **config},
            })
            response.raise_for_status()
            return response.json()


def dump_database(database_url: str) -> str:
    """Every row of every table as text: to prove a secret is stored nowhere in clear."""
    from sqlalchemy import select

    from headwater.store.db import create_engine
    import headwater.store.all_models  # noqa: F401
    from headwater.store.models import Base

    async def dump() -> str:
        engine = create_engine(database_url)
        parts = []
        try:
            async with engine.connect() as connection:
                for table in Base.metadata.sorted_tables:
                    for row in await connection.execute(select(table)):
                        parts.append(repr(tuple(row)))
        finally:
            await engine.dispose()
        return "\n".join(parts)

    return asyncio.run(dump())
