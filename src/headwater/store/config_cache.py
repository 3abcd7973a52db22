"""Per-process cache of the stored configuration every call reads: API keys, apps, providers.

Every request used to read its key, its app and its provider from the store: three
statements of the eight a chat call makes, for rows that change perhaps once a day.
This cache keeps what was read and drops everything the moment any of those rows
changes anywhere, so a revoked key still fails on the very next request:

- Changes are noticed where they are made: an ORM session that writes to a watched
  table (insert, update, delete, by statement or by flush) marks itself, and after its
  commit the process's epoch moves on. No service has to remember to invalidate.
- Other processes hear of it through the database's own means: on PostgreSQL the
  writing transaction sends `NOTIFY headwater_config` (delivered only if it commits) and
  every server LISTENs; while that listening connection is down, nothing is cached. On
  SQLite, whose writers share one machine, the commit stamps a file beside the database
  and readers compare its modification time (one `stat`).
- A value read while the epoch moved is not kept: a reader racing a writer's commit
  can't cache what the writer just replaced.

A stale answer is therefore impossible within a process and lasts, across processes,
only as long as a NOTIFY or a file stamp takes to arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import ORMExecuteState, Session

log = logging.getLogger(__name__)

CHANNEL = "headwater_config"
WATCHED_TABLES = frozenset({"workspaces", "api_keys", "apps", "app_versions", "providers"})
# Writes that change nothing a cached lookup returns (a key's last-used time) say so with this option.
NOT_A_CONFIG_CHANGE = {"headwater_not_config": True}
MAX_ENTRIES = 10_000
LISTEN_RETRY_SECONDS = 1.0
_SESSION_FLAG = "headwater_config_changed"

T = TypeVar("T")


class ConfigCache:
    """Values read from the watched tables, valid while the epoch they were read under holds."""

    def __init__(self, database_url: str):
        self._local = 0
        self._entries: dict[Hashable, tuple[Any, Any]] = {}
        self._stamp = _stamp_path(database_url)
        self._listener: _PostgresListener | None = None
        if make_url(database_url).get_backend_name() == "postgresql":
            self._listener = _PostgresListener(database_url, self.bump)

    def epoch(self) -> Hashable | None:
        """What the cached values were read under; None while changes elsewhere can't be heard."""
        if self._listener is not None:
            return (self._local, self._listener.generation) if self._listener.listening else None
        if self._stamp is not None:
            try:
                return self._local, os.stat(self._stamp).st_mtime_ns
            except FileNotFoundError:
                return self._local, 0
        return self._local

    def bump(self) -> None:
        self._local += 1
        self._entries.clear()

    def announce(self) -> None:
        """A committed change here: forget locally and tell the other processes on this machine."""
        self.bump()
        if self._stamp is not None:
            _touch(self._stamp)

    async def get(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """The cached value, or `load()`'s, kept when no change happened while it ran (None is never kept)."""
        epoch = self.epoch()
        if epoch is not None:
            found = self._entries.get(key)
            if found is not None and found[0] == epoch:
                return found[1]
        value = await load()
        if value is not None and epoch is not None and self.epoch() == epoch:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (epoch, value)
        return value

    async def start(self) -> None:
        if self._listener is not None:
            await self._listener.start()

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.stop()


_caches: "WeakKeyDictionary[Engine, ConfigCache]" = WeakKeyDictionary()


def attach(engine: AsyncEngine, database_url: str) -> ConfigCache:
    cache = _caches[engine.sync_engine] = ConfigCache(database_url)
    return cache


def cache_of(engine: AsyncEngine | Engine) -> ConfigCache:
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    return _caches[sync_engine]


def _stamp_path(database_url: str) -> Path | None:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).with_name(Path(url.database).name + ".config-stamp")


def _touch(path: Path) -> None:
    # Strictly later than the last stamp, even when two commits fall in one clock tick.
    try:
        previous = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        path.touch()
        previous = 0
    stamp = max(time.time_ns(), previous + 1)
    os.utime(path, ns=(stamp, stamp))


# --- noticing changes --------------------------------------------------------------------


def _mark_changed(session: Session) -> None:
    if session.info.get(_SESSION_FLAG):
        return
    session.info[_SESSION_FLAG] = True
    if session.get_bind().dialect.name == "postgresql":
        # Inside the writing transaction: PostgreSQL delivers it on commit, drops it on rollback.
        session.connection().exec_driver_sql(f"NOTIFY {CHANNEL}")


@event.listens_for(Session, "do_orm_execute")
def _on_statement(state: ORMExecuteState) -> None:
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    if state.execution_options.get("headwater_not_config"):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in WATCHED_TABLES:
        _mark_changed(state.session)


@event.listens_for(Session, "after_flush")
def _on_flush(session: Session, _context) -> None:
    for instance in (*session.new, *session.dirty, *session.deleted):
        if getattr(instance, "__tablename__", None) in WATCHED_TABLES:
            _mark_changed(session)
            return


@event.listens_for(Session, "after_commit")
def _on_commit(session: Session) -> None:
    if session.info.pop(_SESSION_FLAG, False):
        cache = _caches.get(session.get_bind())
        if cache is not None:
            cache.announce()


@event.listens_for(Session, "after_rollback")
def _on_rollback(session: Session) -> None:
    session.info.pop(_SESSION_FLAG, None)


# --- hearing other processes (PostgreSQL) --------------------------------------------------


class _PostgresListener:
    """One connection per process that LISTENs; `listening` is False whenever it may miss a change."""

    def __init__(self, database_url: str, on_change: Callable[[], None]):
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._on_change = on_change
        self._connection = None
        self._task: asyncio.Task | None = None
        self.listening = False
        self.generation = 0

    async def start(self) -> None:
        if self._task is None:
            connected = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._keep_listening(connected), name="config-listener")
            with contextlib.suppress(TimeoutError):  # not fatal: the server runs uncached until it connects
                await asyncio.wait_for(asyncio.shield(connected), 10)

    async def stop(self) -> None:
        self.listening = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _heard(self, *_args) -> None:
        self.generation += 1
        self._on_change()

    def _lost(self, *_args) -> None:
        self.listening = False

    async def _keep_listening(self, connected: asyncio.Future) -> None:
        import asyncpg

        while True:
            try:
                connection = await asyncpg.connect(self._dsn)
                try:
                    connection.add_termination_listener(self._lost)
                    await connection.add_listener(CHANNEL, self._heard)
                    # Whatever changed while nobody listened is unknown: start from nothing.
                    self._heard()
                    self.listening = True
                    if not connected.done():
                        connected.set_result(None)
                    while not connection.is_closed():
                        await asyncio.sleep(LISTEN_RETRY_SECONDS)
                finally:
                    self.listening = False
                    with contextlib.suppress(Exception):
                        await connection.close(timeout=2)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: serve uncached, retry
                log.warning("config change listener disconnected (%s); caching paused", type(exc).__name__)
            await asyncio.sleep(LISTEN_RETRY_SECONDS)
