"""A test's proof that the event loop was not held: count its 10 ms ticks while something waits."""

from __future__ import annotations

import asyncio
from types import TracebackType


class LoopTicks:
    """``async with LoopTicks() as ticks:``; ``ticks.count`` is how many 10 ms sleeps the loop has
    completed since (about 10 in 0.1 s when nothing holds it)."""

    def __init__(self) -> None:
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            self.count += 1

    async def __aenter__(self) -> LoopTicks:
        self._task = asyncio.ensure_future(self._tick())
        return self

    async def __aexit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
