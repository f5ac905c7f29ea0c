"""app.lib.steps: work in slices that gives the event loop back, and the paused garbage collector."""

from __future__ import annotations

import asyncio
import gc
import time

from app.lib.steps import Steps, finish, finish_yielding, gc_paused


def count_to(n: int, seen: list[int]) -> Steps[int]:
    total = 0
    for i in range(n):
        seen.append(i)
        total += i
        yield
    return total


def test_finish_runs_the_steps_through() -> None:
    seen: list[int] = []
    assert finish(count_to(5, seen)) == 10
    assert seen == [0, 1, 2, 3, 4]


async def test_finish_yielding_lets_other_tasks_run_between_slices() -> None:
    seen: list[int] = []
    ticks: list[int] = []

    async def other() -> None:
        while True:
            ticks.append(len(seen))
            await asyncio.sleep(0)

    task = asyncio.create_task(other())
    await asyncio.sleep(0)
    assert await finish_yielding(count_to(50, seen), budget=0) == sum(range(50))
    task.cancel()
    # With no budget the loop comes back after every slice: the other task ran in between.
    assert len({t for t in ticks if 0 < t < 50}) >= 40


async def test_finish_yielding_with_a_budget_runs_several_slices_per_turn() -> None:
    seen: list[int] = []
    ticks: list[int] = []

    async def other() -> None:
        while True:
            ticks.append(len(seen))
            await asyncio.sleep(0)

    task = asyncio.create_task(other())
    await asyncio.sleep(0)
    await finish_yielding(count_to(50, seen), budget=3600)
    task.cancel()
    assert not [t for t in ticks if 0 < t < 50]  # one turn: nobody ran in between


def test_gc_paused_nests_and_restores() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer block still holds it
    assert gc.isenabled()


def test_gc_paused_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


async def test_threads_get_the_gil_while_a_stepped_task_runs() -> None:
    """The loop thread must block now and then: a thread that releases the GIL around many short
    calls (aiosqlite's connection, a file read: what /health and a static file need) finishes
    while a long stepped task is still running, not after it (the GIL convoy: with ``sleep(0)``
    between slices the 200 releases below waited for the whole task)."""

    def busy() -> Steps[int]:
        end = time.perf_counter() + 3.0
        while time.perf_counter() < end:
            sum(range(200))
            yield
        return 1

    def short_calls() -> None:
        for _ in range(200):
            time.sleep(0)  # releases and takes back the GIL, as each SQLite call does

    task = asyncio.ensure_future(finish_yielding(busy()))
    await asyncio.sleep(0)  # the stepped task is running
    await asyncio.to_thread(short_calls)
    assert not task.done(), "the thread's calls waited for the stepped task to end"
    await task
