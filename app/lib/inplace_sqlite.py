"""SQLite queried in place: what aiosqlite's connection offers SQLAlchemy, without its thread.

aiosqlite runs every connection in a thread of its own and hands it each call (execute, fetch,
close, commit) through a queue: a thread hop and two hand-overs of the GIL per call, where a read
by an index takes SQLite tens of microseconds. For the small reads of a candidate's pages that hop
was most of the cost. ``connect`` opens a ``sqlite3`` connection whose calls run at once on the
caller's thread (the event loop's), behind the interface SQLAlchemy's aiosqlite dialect drives
(``create_async_engine(..., async_creator=...)``), so the ORM, the pool and the engine's events
work unchanged.

Only for reads that are short by construction: while SQLite works, the loop waits. In WAL mode a
reader never waits for the writer or for another reader, so nothing holds it but the read itself.
A long report stays on aiosqlite's threads.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any


class _Cursor:
    """aiosqlite's ``Cursor`` (the calls SQLAlchemy's adapter awaits), on a sqlite3 cursor."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> _Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Any = ()) -> _Cursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Any) -> _Cursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def nextset(self) -> None:
        return None

    async def setinputsizes(self, *sizes: Any) -> None:
        return None

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _Now:
    """aiosqlite's call queue as SQLAlchemy's adapter uses it (``put_nowait((future, function))``),
    run at once."""

    def put_nowait(self, item: tuple[Any, Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:  # handed to the awaiting adapter, as aiosqlite's thread would
            future.set_exception(exc)


class InPlaceConnection:
    """aiosqlite's ``Connection`` as SQLAlchemy's aiosqlite dialect drives it, on a sqlite3
    connection whose calls run on the caller's thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._connection: sqlite3.Connection | None = conn  # the adapter asks whether it is open
        self._tx = _Now()

    def cursor(self) -> _Cursor:
        return _Cursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Any = ()) -> _Cursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._conn.create_function(*args, **kw)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._conn.isolation_level = value  # type: ignore[assignment]


def creator(path: str) -> Callable[[], Any]:
    """``async_creator`` for ``create_async_engine``: a new in-place connection to ``path``."""

    async def connect() -> InPlaceConnection:
        # Like aiosqlite's: any thread may call (the engine is the loop's), SQLAlchemy opens the
        # transactions (the engine's "connect" event sets isolation_level to None).
        return InPlaceConnection(sqlite3.connect(path, check_same_thread=False, timeout=10))

    return connect
