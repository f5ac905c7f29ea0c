"""The outbox drain: every server process chains the audit outbox into the audit log each second.

Several processes may drain at once: each batch is taken under the chain's lock, so an event is
chained exactly once and the chain never forks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.lib.audit import audit_drain

log = logging.getLogger("app.audit")
DRAIN_SECONDS = 1.0


async def drain_forever(maker: async_sessionmaker[AsyncSession], interval: float = DRAIN_SECONDS) -> None:
    while True:
        try:
            async with maker() as db:
                while await audit_drain(db):  # a full batch: more may be waiting
                    pass
        except Exception:  # a failed drain must not end the loop; the events wait in the outbox
            log.exception("audit outbox drain failed")
        await asyncio.sleep(interval)


def start_drain(app: Any) -> None:
    app.state.audit_drain = asyncio.create_task(drain_forever(app.state.db_write_sessionmaker))


async def stop_drain(app: Any) -> None:
    task = app.state.get("audit_drain")
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    # Chain what is left, so a clean shutdown leaves an empty outbox.
    with contextlib.suppress(Exception):
        async with app.state.db_write_sessionmaker() as db:
            while await audit_drain(db):
                pass
