"""SQLite writers of one process take turns on the event loop instead of napping in SQLite's busy handler."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from headwater.store.db import create_engine


async def test_writers_queued_behind_an_open_transaction_write_in_arrival_order(tmp_path):
    # In SQLite's busy handler each waiter naps on its own schedule (longer the longer it has
    # waited), so the last to arrive tends to win; taking turns keeps them first come, first served.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}")
    try:
        async with engine.begin() as setup:
            await setup.execute(text("CREATE TABLE notes (body TEXT)"))
        first = await engine.connect()
        await first.execute(text("INSERT INTO notes VALUES ('first')"))  # holds the write lock, uncommitted

        async def writer(name: str):
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO notes VALUES (:name)"), {"name": name})

        names = [f"w{i}" for i in range(5)]
        waiting = []
        for name in names:
            waiting.append(asyncio.create_task(writer(name)))
            await asyncio.sleep(0.1)
        assert not any(task.done() for task in waiting)  # queued, not failed
        await first.commit()
        await first.close()
        await asyncio.wait_for(asyncio.gather(*waiting), 10)
        async with engine.connect() as reader:
            rows = (await reader.execute(text("SELECT body FROM notes ORDER BY rowid"))).scalars().all()
        assert rows == ["first", *names]
    finally:
        await engine.dispose()


async def test_a_rolled_back_writer_gives_its_turn_back(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}")
    try:
        async with engine.begin() as setup:
            await setup.execute(text("CREATE TABLE notes (body TEXT)"))
        for _ in range(3):  # a leaked turn would block the next writer for good
            connection = await engine.connect()
            await connection.execute(text("INSERT INTO notes VALUES ('dropped')"))
            await connection.rollback()
            await connection.close()
        async with engine.begin() as writer:
            await asyncio.wait_for(writer.execute(text("INSERT INTO notes VALUES ('kept')")), 5)
        async with engine.connect() as reader:
            assert (await reader.execute(text("SELECT body FROM notes"))).scalars().all() == ["kept"]
    finally:
        await engine.dispose()
