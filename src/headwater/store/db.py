"""Engine and session factory for the configured database."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections import deque
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from headwater.store import config_cache


def _json_dumps(value: Any) -> str:
    # orjson: several times faster than json.dumps on the run/event payloads written per call.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


SQLITE_POOL_SIZE = 16
WRITE_TURN_TIMEOUT_SECONDS = 30.0
JSON_OPTIONS = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}


def create_engine(url: str) -> AsyncEngine:
    engine = _create_engine(url)
    config_cache.attach(engine, url)
    return engine


def _create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, connect_args={"timeout": 30}, async_creator=_fused_sqlite_creator(url),
            # No extra ROLLBACK each time a connection goes back to the pool: sessions and
            # connections already end their transaction when closed, and sqlite3 opens none
            # for plain reads. That ROLLBACK was one more thread hop per session, three per call.
            pool_reset_on_return=None,
            # SQLite runs one write at a time whatever the pool size; under a burst (a thousand
            # streams opening at once) a request should wait its turn, not fail after 30 s.
            pool_timeout=300,
            # Connections kept open between bursts: each new one costs a thread, a connect and
            # its PRAGMAs, and with the default 5 a burst of concurrent turns opened and closed
            # overflow connections all the time (bench profile: 2% of the server's CPU).
            pool_size=SQLITE_POOL_SIZE,
            max_overflow=SQLITE_POOL_SIZE * 3,
            **JSON_OPTIONS,
        )
        _tune_sqlite(engine)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True, **JSON_OPTIONS)


def _tune_sqlite(engine: AsyncEngine) -> None:
    # WAL lets readers proceed during a write; NORMAL sync is durable across
    # application crashes (only an OS crash may lose the last transactions).
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no cover - trivial
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


# --- SQLite: one thread hop per statement --------------------------------------------------
#
# aiosqlite runs each sqlite3 call on the connection's own thread and SQLAlchemy's adapter
# makes three or four such calls per statement (open cursor, execute, fetch, close). Every
# hop is a queue put, a thread wake-up, a GIL hand-over and an event-loop wake-up; on a
# busy 2-core machine that cost far more than SQLite itself (bench/REPORT.md, profiling).
# The cursor below does the whole statement in one hop: the sqlite3 cursor is opened,
# executed, drained and closed on the connection's thread, and the adapter then reads the
# rows it already has. The database work is the same and still never runs on the event loop.


def _fused_sqlite_creator(url: str):
    from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite

    import aiosqlite

    args, kwargs = SQLiteDialect_aiosqlite().create_connect_args(make_url(url))
    kwargs = {**kwargs, "timeout": 30}
    write_turn = asyncio.Lock()

    class FusedConnection(aiosqlite.Connection):
        # SQLite lets one transaction write at a time, and a connection that finds the lock
        # taken naps in SQLite's busy handler (up to 100 ms a time) with no one to wake it:
        # under load the naps grew into a convoy (3-node chatflow at 16 clients: p50 68 ms,
        # p99 2 s). So this process's writers take turns on the event loop instead: a
        # transaction takes `write_turn` before its first write and gives it back when it
        # commits or rolls back; the busy handler is left to writers in other processes.
        holds_write_turn = False

        def cursor(self) -> "_FusedCursor":  # type: ignore[override]
            return _FusedCursor(self)

        async def take_write_turn(self) -> None:
            if self.holds_write_turn:
                return
            try:
                async with asyncio.timeout(WRITE_TURN_TIMEOUT_SECONDS):  # as SQLite's own busy timeout
                    await write_turn.acquire()
            except TimeoutError:
                raise sqlite3.OperationalError("database is locked") from None
            self.holds_write_turn = True

        def _give_back_write_turn(self) -> None:
            if self.holds_write_turn:
                self.holds_write_turn = False
                write_turn.release()

        async def commit(self) -> None:
            try:
                await super().commit()
            finally:
                self._give_back_write_turn()

        async def rollback(self) -> None:
            try:
                await super().rollback()
            finally:
                self._give_back_write_turn()

        async def close(self) -> None:
            try:
                await super().close()
            finally:
                self._give_back_write_turn()

    async def connect() -> aiosqlite.Connection:
        connection = FusedConnection(lambda: sqlite3.connect(*args, **kwargs), 64)
        connection._thread.daemon = True  # as SQLAlchemy does: never keep the process alive
        return await connection

    return connect


def _run_statement(connection: sqlite3.Connection, sql: str, parameters: Any, many: bool):
    """Runs on the connection's thread: the whole statement, rows included."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        elif parameters is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


# Statements that write, and so open (or continue) a transaction holding SQLite's write lock.
_WRITES = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER)\b", re.IGNORECASE)


class _FusedCursor:
    """The slice of aiosqlite's cursor that SQLAlchemy's adapter uses, one hop per statement."""

    arraysize = 1

    def __init__(self, connection) -> None:
        self._connection = connection
        self._rows: deque = deque()
        self.description = None
        self.rowcount = -1
        self.lastrowid = None

    async def __aenter__(self) -> "_FusedCursor":
        return self

    async def __aexit__(self, *exc) -> None:
        return None

    async def _run(self, sql: str, parameters: Any, many: bool) -> "_FusedCursor":
        connection = self._connection
        if _WRITES.match(sql):
            await connection.take_write_turn()
        description, rows, self.rowcount, self.lastrowid = await connection._execute(
            _run_statement, connection._conn, sql, parameters, many
        )
        self.description = description
        self._rows = deque(rows)
        return self

    async def execute(self, sql: str, parameters: Any = None) -> "_FusedCursor":
        return await self._run(sql, parameters, False)

    async def executemany(self, sql: str, parameters: Any) -> "_FusedCursor":
        return await self._run(sql, parameters, True)

    async def fetchall(self) -> list:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    async def fetchone(self):
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list:
        count = min(size or self.arraysize, len(self._rows))
        return [self._rows.popleft() for _ in range(count)]

    async def close(self) -> None:
        self._rows.clear()

    async def setinputsizes(self, *sizes: Any) -> None:
        return None


def insert_ignoring_duplicates(dialect: str, table):
    """INSERT that leaves an existing row with the same key alone (two requests creating one row at once)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(table).on_conflict_do_nothing()
