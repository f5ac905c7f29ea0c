"""The outbox drain: every server process chains the audit outbox into the audit log each second.

Several processes may drain at once: each batch is taken under the chain's lock, so an event is
chained exactly once and the chain never forks. Each batch is its own transaction, committed here
(the service never commits), so the lock is held for one batch at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.services import DRAIN_BATCH, audit_drain, drain_sqlite
from app.db import WriterTurn, make_sync_sqlite_writer, sqlite_file
from app.lib.periodic import repeat, start_task, stop_task

log = logging.getLogger("app.audit")
DRAIN_SECONDS = 1.0
SQLITE_DRAIN_BATCH = 200
"""On SQLite a batch holds the server's one write connection, which the exam writer's batches
(every autosave and start) wait for in turn: 2,000 events took it for a few hundred milliseconds on
exam day, and saves queued behind each batch. 200 events hold it for tens of milliseconds; the
writers queued meanwhile go before the next batch (the connection is handed over first come, first
served)."""


async def audit_drain_all(db: AsyncSession) -> int:
    """Chain everything in the outbox, a batch per transaction; returns how many (the drain task,
    `app audit verify`, tests). Whatever ``db`` held before is committed with the first batch."""
    sqlite = db.bind is not None and db.bind.dialect.name == "sqlite"
    batch = SQLITE_DRAIN_BATCH if sqlite else DRAIN_BATCH
    total = 0
    while True:
        moved = await audit_drain(db, batch=batch)
        await db.commit()  # one batch, one transaction: releases the chain's lock
        total += moved
        if moved < batch:  # a full batch: more may be waiting
            return total


async def _drain_all(maker: async_sessionmaker[AsyncSession]) -> None:
    async with maker() as db:
        await audit_drain_all(db)


class SqliteDrain:
    """The drain of a server on a SQLite file: each batch on a connection of its own, in a thread.

    Through the server's write sessions every statement of a batch was a round trip through the
    event loop, and while the loop was busy (the submit burst of an exam day) a batch held the
    write lock, which every autosave of every worker waits for, up to 1.8 s. In a thread it holds
    it for its statements only. Each batch waits for the workers' writer turn (``app.db.WriterTurn``)
    and gives it back before the next, so writers queued meanwhile go in between.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._engine: Engine | None = None
        self._turn: WriterTurn | None = None

    def drain_all(self) -> int:
        if self._engine is None:
            self._engine, self._turn = make_sync_sqlite_writer(self.path), WriterTurn(self.path)
        assert self._turn is not None
        total = 0
        while True:
            with self._turn, self._engine.begin() as conn:
                moved = drain_sqlite(conn, SQLITE_DRAIN_BATCH)
            total += moved
            if moved < SQLITE_DRAIN_BATCH:
                return total

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if self._turn is not None:
            self._turn.close()
        self._engine = self._turn = None


async def drain_forever(maker: async_sessionmaker[AsyncSession], interval: float = DRAIN_SECONDS) -> None:
    # A failed drain leaves the events in the outbox for the next tick.
    await repeat(lambda: _drain_all(maker), interval, what="audit outbox drain", log=log)


async def drain_sqlite_forever(drain: SqliteDrain, interval: float = DRAIN_SECONDS) -> None:
    await repeat(lambda: asyncio.to_thread(drain.drain_all), interval, what="audit outbox drain", log=log)


def start_drain(app: Any) -> None:
    path = sqlite_file(app.state.settings.database_url)
    if path is None:
        start_task(app, "audit_drain", drain_forever(app.state.db_write_sessionmaker))
        return
    app.state.sqlite_drain = drain = SqliteDrain(path)
    start_task(app, "audit_drain", drain_sqlite_forever(drain))


async def stop_drain(app: Any) -> None:
    if not await stop_task(app, "audit_drain"):
        return
    # Chain what is left, so a clean shutdown leaves an empty outbox.
    drain: SqliteDrain | None = app.state.get("sqlite_drain")
    with contextlib.suppress(Exception):
        if drain is not None:
            await asyncio.to_thread(drain.drain_all)
        else:
            await _drain_all(app.state.db_write_sessionmaker)
    if drain is not None:
        drain.close()
