"""Background work every server process repeats (the exam time-up sweep, the audit outbox drain).

A step that fails is logged and tried again at the next tick: the loop ends only when the task is
cancelled, on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any


async def repeat(
    step: Callable[[], Awaitable[object]], interval: float, *, what: str, log: logging.Logger
) -> None:
    while True:
        try:
            await step()
        except Exception:  # a failed step must not end the loop; the next tick retries
            log.exception("%s failed", what)
        await asyncio.sleep(interval)


def start_task(app: Any, name: str, loop: Coroutine[Any, Any, None]) -> None:
    """Run ``loop`` as a task kept in ``app.state.<name>``."""
    setattr(app.state, name, asyncio.create_task(loop))


async def stop_task(app: Any, name: str) -> bool:
    """Cancel the task ``app.state.<name>`` and wait for it; False when it was never started."""
    task = app.state.get(name)
    if task is None:
        return False
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return True
