"""The periodic time-up sweep: open attempts whose candidate never came back are closed and graded.

Any access to an attempt closes it lazily too; the sweep makes sure results and qualifications do
not wait for that. Several workers may sweep at once: closing is a conditional update, so each
attempt is graded exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.exams.services import attempts_sweep

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


async def sweep_forever(maker: async_sessionmaker[AsyncSession], interval: float = SWEEP_SECONDS) -> None:
    while True:
        try:
            async with maker() as db:
                closed = await attempts_sweep(db)
            if closed:
                log.info("closed %d exam attempts past their time-up", closed)
        except Exception:  # a failed sweep must not end the loop; the next one retries
            log.exception("exam time-up sweep failed")
        await asyncio.sleep(interval)


def start_sweeper(app: Any) -> None:
    app.state.exam_sweeper = asyncio.create_task(sweep_forever(app.state.db_write_sessionmaker))


async def stop_sweeper(app: Any) -> None:
    task = app.state.get("exam_sweeper")
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
