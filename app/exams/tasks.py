"""The periodic time-up sweep: open attempts whose candidate never came back are closed and graded.

Any access to an attempt closes it lazily too; the sweep makes sure results and qualifications do
not wait for that. Several workers may sweep at once: closing is a conditional update, so each
attempt is graded exactly once.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.exams.services import attempts_sweep
from app.lib.periodic import repeat, start_task, stop_task

log = logging.getLogger("app.exams")
SWEEP_SECONDS = 30.0


async def sweep_once(database_url: str) -> int:
    from app.db import make_engine, make_sessionmaker

    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            total = 0
            while closed := await attempts_sweep(db):
                total += closed
            return total
    finally:
        await engine.dispose()


async def _sweep(maker: async_sessionmaker[AsyncSession]) -> None:
    async with maker() as db:
        closed = await attempts_sweep(db)
    if closed:
        log.info("closed %d exam attempts past their time-up", closed)


async def sweep_forever(maker: async_sessionmaker[AsyncSession], interval: float = SWEEP_SECONDS) -> None:
    await repeat(lambda: _sweep(maker), interval, what="exam time-up sweep", log=log)


def start_sweeper(app: Any) -> None:
    start_task(app, "exam_sweeper", sweep_forever(app.state.db_write_sessionmaker))


async def stop_sweeper(app: Any) -> None:
    await stop_task(app, "exam_sweeper")
