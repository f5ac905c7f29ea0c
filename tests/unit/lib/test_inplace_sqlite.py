"""SQLite queried in place (app.lib.inplace_sqlite): the ORM works on it, on the caller's thread."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.db import make_engine, make_read_only_sessionmaker, make_sessionmaker


async def test_reads_run_on_the_loops_thread_and_writes_are_refused(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/app.db"
    threaded = make_engine(url)
    in_place = make_engine(url, in_place=True)
    try:
        async with make_sessionmaker(threaded)() as db:
            await db.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"))
            await db.execute(text("INSERT INTO t (name) VALUES ('甲'), ('乙')"))
            await db.commit()
        callers: list[int] = []
        async with make_read_only_sessionmaker(in_place)() as db:
            raw = (await (await db.connection()).get_raw_connection()).driver_connection
            raw._conn.create_function("caller", 0, lambda: callers.append(threading.get_ident()) or 1)
            rows = (await db.execute(text("SELECT name, caller() FROM t ORDER BY id"))).all()
            assert [tuple(r) for r in rows] == [("甲", 1), ("乙", 1)]
            assert set(callers) == {threading.get_ident()}  # no thread of aiosqlite's
            # The engine's events ran on it: WAL and foreign keys, as on the threaded engine.
            assert (await db.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await db.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            with pytest.raises(OperationalError, match="readonly"):
                await db.execute(text("INSERT INTO t (name) VALUES ('丙')"))
        # A write through the in-place engine's own (write) sessions commits as usual.
        async with make_sessionmaker(in_place)() as db:
            await db.execute(text("INSERT INTO t (name) VALUES ('丁')"))
            await db.commit()
        async with make_sessionmaker(threaded)() as db:
            assert (await db.execute(text("SELECT count(*) FROM t"))).scalar() == 3
    finally:
        await in_place.dispose()
        await threaded.dispose()
