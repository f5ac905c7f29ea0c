"""The periodic time-up sweep: open attempts whose candidate never came back are closed and graded.

Any access to an attempt closes it lazily too; the sweep makes sure results and qualifications do
not wait for that. Several workers may sweep at once: closing is a conditional update, so each
attempt is graded exactly once.

A task runs outside any request, so it is its own edge: each attempt is closed in a transaction of
its own, begun and committed here (a candidate's submit never waits for a whole batch, and a
crash loses at most the attempt being closed).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.exams.cache import ExamCache
from app.exams.rules import ClosedBy
from app.exams.services.grading import attempt_close, attempts_overdue
from app.lib.actor import SYSTEM
from app.lib.clock import utcnow
from app.lib.periodic import repeat, start_task, stop_task

log = logging.getLogger("app.exams")
SWEEP_SECONDS = 30.0
BATCH = 500


async def sweep_batch(maker: async_sessionmaker[AsyncSession], *, cache: ExamCache | None = None) -> int:
    """Close up to ``BATCH`` attempts past their time-up, one transaction each; how many it closed."""
    now = utcnow()
    async with maker() as db:
        ids = await attempts_overdue(db, now=now, limit=BATCH)
    closed = 0
    for attempt_id in ids:
        async with maker() as db, db.begin():
            if await attempt_close(
                db, attempt_id=attempt_id, by=ClosedBy.TIMEOUT, actor=SYSTEM, now=now, cache=cache
            ):
                closed += 1
    return closed


async def sweep_all(maker: async_sessionmaker[AsyncSession], *, cache: ExamCache | None = None) -> int:
    """Sweep until nothing is left past its time-up (``app exams sweep``)."""
    total = 0
    while closed := await sweep_batch(maker, cache=cache):
        total += closed
    return total


async def _sweep(maker: async_sessionmaker[AsyncSession], cache: ExamCache | None) -> None:
    closed = await sweep_batch(maker, cache=cache)
    if closed:
        log.info("closed %d exam attempts past their time-up", closed)


async def sweep_forever(
    maker: async_sessionmaker[AsyncSession],
    interval: float = SWEEP_SECONDS,
    *,
    cache: ExamCache | None = None,
) -> None:
    await repeat(lambda: _sweep(maker, cache), interval, what="exam time-up sweep", log=log)


def start_sweeper(app: Any) -> None:
    start_task(
        app,
        "exam_sweeper",
        sweep_forever(app.state.db_write_sessionmaker, cache=app.state.exam_cache),
    )


async def stop_sweeper(app: Any) -> None:
    await stop_task(app, "exam_sweeper")
