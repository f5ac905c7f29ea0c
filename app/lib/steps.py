"""Long CPU work in steps, so that it can share the event loop (cooperative, no thread).

A function that would hold the loop for seconds (reading a 40,000-question bank) is written as a
generator that ``yield``\\ s between slices of its work and ``return``\\ s its result: :func:`finish`
runs it straight through (the console, tests), :func:`finish_yielding` gives the loop back at every
yield, so /health and the other requests are served between slices. Unlike a thread, this does not
make every request of the process wait for the GIL behind the CPU-bound worker (the convoy that a
parsing thread caused: /health p50 of 45 ms during an import).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Generator, Iterator
from typing import Final, TypeVar

T = TypeVar("T")

Steps = Generator[None, None, T]
"""Work that yields between slices and returns its result."""

SLICE: Final = 10
"""Items (questions; lines x 10) between two yields: well under a millisecond of CPU."""
BUDGET_S: Final = 0.004
"""How long :func:`finish_yielding` runs slices before it gives the loop back."""
YIELD_S: Final = 0.001
"""How long it gives the loop back: a real wait, not ``sleep(0)``. With ``sleep(0)`` the loop thread
never blocks, so it holds the GIL but for CPython's forced switches (every 5 ms), and a thread that
releases the GIL around many short calls (aiosqlite's connection threads, anyio's file reads) waits
up to 5 ms to get it back after each one: /health and a static file waited 2 s during a
40,000-question import on a quiet machine (bench/bank_import_stall.py). Blocking in the poller for
1 ms after every 4 ms of work lets those threads run; it costs the import about a fifth of its time."""


def finish(steps: Steps[T]) -> T:
    """Run ``steps`` to the end in one go and return the result."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


async def finish_yielding(steps: Steps[T], *, budget: float = BUDGET_S) -> T:
    """Run ``steps`` to the end on the event loop, giving the loop back (``YIELD_S``) after every
    ``budget`` seconds of slices (a yield per slice would cost a loop round trip per ten questions)."""
    started = time.perf_counter()
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
        if time.perf_counter() - started >= budget:
            await asyncio.sleep(YIELD_S)
            started = time.perf_counter()


_pauses = 0
_was_enabled = True


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block (nestable; the process's other tasks too).

    Reading a 40,000-question bank allocates about a million objects, and every 25 % of growth
    CPython runs a full collection over all of them in one go: 30-70 ms with the loop held, however
    finely the work is sliced (measured with bench/bank_import_stall.py --phases). Reference
    counting still frees everything as usual; cycles wait for the next collection after the block.
    """
    global _pauses, _was_enabled
    if _pauses == 0:
        _was_enabled = gc.isenabled()
        gc.disable()
    _pauses += 1
    try:
        yield
    finally:
        _pauses -= 1
        if _pauses == 0 and _was_enabled:
            gc.enable()
