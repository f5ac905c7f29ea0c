"""The workers of one server on SQLite take turns to write on a kernel lock (``<file>.writer``,
``app.db._take_turns``): a write connection waits for the other worker's turn without stopping the
event loop, and gets it as soon as that worker gives it back."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import text

from app.db import WriterTurn, make_sessionmaker, make_writer_engine
from app.exams.writer import ExamWriter
from tests.looptime import LoopTicks

# Another worker: takes the turn, says so, gives it back when told (a line on stdin).
_OTHER_WORKER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("holding", flush=True)
sys.stdin.readline()
fcntl.flock(fd, fcntl.LOCK_UN)
print("released", flush=True)
"""


async def test_a_writer_waits_for_the_other_workers_turn_with_the_loop_running(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    engine = make_writer_engine(url)
    assert engine is not None
    other = subprocess.Popen(  # noqa: S603, ASYNC220 - this interpreter; started before the waits
        [sys.executable, "-c", _OTHER_WORKER, str(tmp_path / "app.db.writer")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None and other.stdin is not None
        assert other.stdout.readline().strip() == "holding"

        async def write() -> None:
            async with make_sessionmaker(engine)() as db, db.begin():
                await db.execute(text("CREATE TABLE t (x INTEGER)"))

        async with LoopTicks() as ticks:
            writing = asyncio.create_task(write())
            await asyncio.sleep(0.3)
            assert not writing.done() and ticks.count >= 10  # waiting for the turn; the loop runs on
        other.stdin.write("go\n")
        other.stdin.flush()
        await asyncio.wait_for(writing, 10)  # the turn came as soon as it was given back
        assert other.stdout.readline().strip() == "released"
    finally:
        other.kill()
        other.wait()
    # Given back at checkin: another process takes it at once.
    taken = subprocess.run(  # noqa: S603, ASYNC221 - this interpreter; the test is over
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR); "
            "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print('taken')",
            str(tmp_path / "app.db.writer"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert taken.stdout.strip() == "taken", taken.stderr
    await engine.dispose()


def _turn_is_free(path: Path) -> bool:
    """Whether another process could take the workers' writer turn of ``path`` now."""
    probe = (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')\n"
        "except BlockingIOError:\n    print('held')"
    )
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed program
        [sys.executable, "-c", probe, str(path) + ".writer"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() == "free"


async def test_the_exam_writer_takes_turns_with_this_process_write_connection(tmp_path: Path) -> None:
    """The exam writer's thread takes the turn with descriptors of its own: it waits while this
    process's ORM write connection holds it (as for another worker's), without holding the loop,
    and gives it back right after its batch's commit."""
    path = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x INTEGER)")
    engine = make_writer_engine(f"sqlite+aiosqlite:///{path}")
    assert engine is not None
    writer = ExamWriter(str(path))
    try:
        async with engine.connect(), LoopTicks() as ticks:  # the ORM's writer holds the turn
            run = asyncio.ensure_future(writer.run(lambda c: c.execute("INSERT INTO t VALUES (1)").rowcount))
            await asyncio.sleep(0.3)
            assert not run.done() and ticks.count >= 10
        assert await asyncio.wait_for(run, 10) == 1  # written once the connection went back
        assert await asyncio.to_thread(_turn_is_free, path)  # given back after the commit
    finally:
        await writer.close()
        await engine.dispose()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]


def _until_someone_queues(path: str) -> bool:
    """Whether a writer came to wait for the turn within 2 s (it holds the queue lock while it
    waits: ``app.db._take``)."""
    fd = os.open(path + ".writer-queue", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        for _ in range(2000):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fd, fcntl.LOCK_UN)
            time.sleep(0.001)
        return False
    finally:
        os.close(fd)


def test_a_writer_that_gives_the_turn_back_queues_behind_the_one_waiting(tmp_path: Path) -> None:
    """A writer that asks again right after giving the turn back (the exam writer's thread, batch
    after batch) does not take it again before a writer already waiting for it."""
    path = str(tmp_path / "app.db")
    busy, other = WriterTurn(path), WriterTurn(path)
    order: list[str] = []
    queued: list[bool] = []
    holding = threading.Event()

    def batches() -> None:
        for i in range(20):
            with busy:
                order.append(f"batch{i}")
                if i == 0:
                    holding.set()
                    queued.append(_until_someone_queues(path))  # the other writer waits now
                time.sleep(0.002)

    def once() -> None:
        holding.wait(5)  # asks for the turn while the batches hold it
        with other:
            order.append("other")

    try:
        threads = [threading.Thread(target=batches), threading.Thread(target=once)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    finally:
        busy.close()
        other.close()
    assert queued == [True]  # it waited in the queue
    assert order.index("other") == 1, order  # right after the batch it waited for
