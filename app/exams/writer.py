"""The exam-day writer on SQLite: group commit of the candidates' autosaves and submits.

SQLite has one writer at a time, and every transaction through the ORM takes the write lock up
front (``BEGIN IMMEDIATE``), runs its statements from the event loop through aiosqlite's thread,
and commits: at exam day's rates (hundreds of saves a second, a burst of submits at the end) the
requests queue on the lock and on the hops between the loop and the driver's thread. This writer
owns a connection of its own and one thread; the fast lane (``app.exams.fastlane``) hands it the
ordinary save or submit and awaits the answer. It takes whatever has queued, writes it all in ONE
transaction (one item's failure undoes only that item: ``ExamWriter._batch``), commits once, and
only then acknowledges each item: one commit (with ``synchronous=FULL`` one fsync of the log)
carries many candidates' saves, and no answer is acknowledged before it is durable. An item the
batch cannot answer (not the ordinary case, or an error) is declined, and the normal route answers
it as it would have.

Each item's statements are those of the route's checks (``app.exams.statements``): the account live
and an officer, the attempt theirs, open, within its time and grace, every position on the paper,
no clash with a stored seq; the batch holds the write lock, so nothing changes between an item's
check and its write. They are as few as the checks allow, and what needs no statement is done
before the batch: the lock is held by a thread that gives the GIL up at every statement and gets
it back only when the event loop lets go of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from app.db import WriterTurn, sqlite_file
from app.exams import statements as sql

Op = Callable[[sqlite3.Connection], Any]
"""One item of a batch: runs its statements on the writer's connection, returns its answer (None:
declined)."""

MAX_BATCH = 512
"""Items per transaction at most (a batch of saves holds the lock for a few milliseconds)."""

BATCH_BUDGET = 0.010
"""Seconds of work after which a batch commits with what it has done; the rest of what was queued
goes first into the next one. A submit (grading, the close, its event) takes ~1 ms of the lock, a
save a tenth of that: in the burst at the end of an exam a batch that took everything queued held
the lock for tens of milliseconds, while the saves behind it, and the other workers' batches, waited
(bench/README.md, exam day, stop 32)."""

_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def sqlite_time(value: dt.datetime) -> str:
    """A UTC time as the SQLite columns hold it (``app.db.UTCDateTime`` through SQLAlchemy)."""
    return value.astimezone(dt.UTC).strftime(_FORMAT)


def time_of(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)


class _ItemFailed(Exception):
    """An op of a batch raised: the batch is written again up to it, ``count`` ops."""

    def __init__(self, count: int) -> None:
        self.count = count


class _Stop:
    """Queued by ``close``: the writer's thread stops once what was queued before is written."""


_Item = tuple[Op, asyncio.Future[Any], bool]
"""A queued op, the future its caller awaits (on that caller's loop), and whether it is light."""


class ExamWriter:
    """One per server process on SQLite (``app.state.exam_writer``): a queue, and one thread that
    owns the write connection and writes what is queued in batches, one transaction each.

    The thread runs its batches back to back, never waiting for the event loop in between: it takes
    the workers' writer turn itself (``app.db.WriterTurn``, descriptors of its own, so it takes
    turns with this process's ORM writers as with the other workers'), and hands each batch's
    answers to the loop in one call. Driven from the loop instead, each batch waited for the busy
    loop three times (to be taken, to be handed to the thread, to give the write connection back),
    and on exam day's submit burst that, not the writing, was most of a save's time (bench/README.md,
    stop 33)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None  # a test's (``bind``); the thread has its own
        self._queue: queue.SimpleQueue[_Item | _Stop] | None = None
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self.turn: Callable[[], AbstractContextManager[Any]] | None = None
        """Held around each batch, on the writer's thread: the workers' writer turn (the default,
        ``WriterTurn``); tests hold the batches with one of their own."""

    @classmethod
    def for_url(cls, database_url: str) -> ExamWriter | None:
        """The writer of a SQLite file (None for PostgreSQL and an in-memory database)."""
        path = sqlite_file(database_url)
        return None if path is None else cls(path)

    def bind(self, conn: sqlite3.Connection | None) -> None:
        """Tests: run each item at once on ``conn`` (inside the test's outer transaction), or, with
        None, go back to a connection and thread of the writer's own."""
        self._conn = conn

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA journal_mode=WAL")
        # An acknowledged answer survives a power cut, not only kill -9: the batch's commit syncs
        # the log (one fsync per batch, whatever its size).
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    async def run(self, op: Op, *, light: bool = False) -> Any:
        """``op``'s answer once the transaction that wrote it has committed.

        A ``light`` op (an autosave: a few rows, a latency the candidate feels) goes ahead of the
        heavier ones queued with it (submits, starts), but for the first of them: each batch
        writes at least one heavy op, so none of them waits for ever. Ops queued together were in
        flight together, so either order is one in which their candidates could have sent them."""
        if self._conn is not None:
            (answer,) = self._batch(self._conn, [op])
            if isinstance(answer, Exception):
                raise answer  # as the thread's answer would be raised
            return answer
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._started().put((op, future, light))
        return await future

    def _started(self) -> queue.SimpleQueue[_Item | _Stop]:
        with self._start:
            if self._queue is None or self._thread is None or not self._thread.is_alive():
                self._queue = queue.SimpleQueue()
                self._thread = threading.Thread(
                    target=self._work, args=(self._queue,), name="exam-writer", daemon=True
                )
                self._thread.start()
            return self._queue

    def _work(self, items: queue.SimpleQueue[_Item | _Stop]) -> None:
        """The writer's thread: batches of what is queued, until ``close``, on a connection and a
        turn of its own."""
        conn: sqlite3.Connection | None = None
        own: WriterTurn | None = None
        waiting: list[_Item] = []  # queued, not yet written
        stopping = False
        try:
            while True:
                if not waiting:
                    got = _Stop() if stopping else items.get()
                    if isinstance(got, _Stop):
                        return
                    waiting.append(got)
                while not stopping and len(waiting) < MAX_BATCH:
                    try:
                        got = items.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(got, _Stop):
                        stopping = True
                    else:
                        waiting.append(got)
                heavy = [i for i in waiting if not i[2]]
                batch = heavy[:1] + [i for i in waiting if i[2]] + heavy[1:]  # the light ones early
                try:
                    conn = conn or self._connect()
                    if self.turn is not None:
                        turn: AbstractContextManager[Any] = self.turn()
                    else:
                        own = turn = own or WriterTurn(self.path)
                    with turn:
                        results = self._batch(conn, [i[0] for i in batch], budget=BATCH_BUDGET)
                except Exception as exc:  # the commit failed: nothing of the batch is acknowledged
                    results = [exc] * len(batch)
                waiting = batch[len(results) :]  # past the batch's budget: first into the next one
                _answer(batch, results)
        finally:
            if own is not None:
                own.close()
            if conn is not None:
                conn.close()

    def _batch(self, conn: sqlite3.Connection, ops: list[Op], *, budget: float | None = None) -> list[Any]:
        """The ops in one transaction (a savepoint in a test's outer one): all of them, or, with a
        ``budget`` (seconds), those begun before it ran out (at least one). Returns the answers of
        the ops written, in order; an op that raised answers its exception, and nothing it wrote
        stays.

        The ops run without a savepoint each: two statements more per item, and each statement
        the writer's thread runs gives the GIL up and waits for the busy event loop to let it go
        again (bench/README.md, stop 33). If one raises, the transaction is rolled back and the
        same ops, up to that one, are written again, each in a savepoint of its own. An op's
        answer depends on nothing but the database, which the rollback restored."""
        try:
            return self._transaction(conn, ops, budget, each_alone=False)
        except _ItemFailed as failed:
            return self._transaction(conn, ops[: failed.count], None, each_alone=True)

    @staticmethod
    def _transaction(
        conn: sqlite3.Connection, ops: list[Op], budget: float | None, *, each_alone: bool
    ) -> list[Any]:
        outer = conn.in_transaction
        conn.execute("SAVEPOINT exam_batch" if outer else "BEGIN IMMEDIATE")
        results: list[Any] = []
        end = None if budget is None else time.perf_counter() + budget
        try:
            for op in ops:
                if results and end is not None and time.perf_counter() >= end:
                    break
                if not each_alone:
                    try:
                        results.append(op(conn))
                    except Exception as exc:
                        raise _ItemFailed(len(results) + 1) from exc
                    continue
                conn.execute("SAVEPOINT exam_item")
                try:
                    results.append(op(conn))
                except Exception as exc:  # this item declines; the others stand
                    conn.execute("ROLLBACK TO exam_item")
                    results.append(exc)
                conn.execute("RELEASE exam_item")
            conn.execute("RELEASE exam_batch" if outer else "COMMIT")
        except BaseException:
            if outer:
                conn.execute("ROLLBACK TO exam_batch")
                conn.execute("RELEASE exam_batch")
            elif conn.in_transaction:  # (an error SQLite answers by rolling back has done it)
                conn.execute("ROLLBACK")
            raise
        return results

    async def close(self) -> None:
        """Stop the thread once what is queued is written (and answered)."""
        with self._start:
            thread, items = self._thread, self._queue
            self._thread = self._queue = None
        if thread is not None and items is not None:
            items.put(_Stop())
            await asyncio.to_thread(thread.join)


def _answer(batch: list[_Item], results: list[Any]) -> None:
    """Hand a batch's answers to the loops that wait for them, one call per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
    for (_op, future, _light), result in zip(batch, results, strict=False):
        by_loop.setdefault(future.get_loop(), []).append((future, result))
    for loop, answers in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_settle, answers)


def _settle(answers: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, result in answers:
        if future.done():  # the request went away (its client disconnected)
            continue
        if isinstance(result, Exception):
            future.set_exception(result)
        else:
            future.set_result(result)


def save_op(
    *,
    account_id: int,
    epoch: int,
    attempt_id: int,
    now: dt.datetime,
    limit: dt.datetime,
    answers: list[tuple[int, int, str]],
    event: Callable[[int, str, list[list[Any]]], tuple[Any, ...]],
) -> Op:
    """The ordinary autosave: every answer stored, or none (declined: None). ``answers`` are
    (position, seq, choice text); ``event(agency, username, stored)`` the outbox row's values."""

    # Everything but the statements is done here, on the loop, not while the batch holds the lock.
    given = json.dumps([[p, s, c] for p, s, c in answers], separators=(",", ":"))
    check = (given, account_id, epoch, attempt_id, sqlite_time(limit), max(p for p, _s, _c in answers))
    saved_at = sqlite_time(now)

    def op(conn: sqlite3.Connection) -> dt.datetime | None:
        found = conn.execute(sql.SQLITE_SAVE_ATTEMPT, check).fetchone()
        if found is None:
            return None
        agency_id, deadline, username, clash = found
        if clash:
            return None  # the route answers 409
        stored = conn.execute(sql.SQLITE_SAVE_INSERT, (attempt_id, saved_at, given)).fetchall()
        if stored:
            conn.execute(sql.SQLITE_OUTBOX_INSERT, event(agency_id, username, sorted(map(list, stored))))
        return time_of(deadline)

    return op


def start_op(values: dict[str, Any], event: Callable[[int], tuple[Any, ...]]) -> Op:
    """A new attempt (``values``: its row) and its outbox event (``event(attempt id)``); None when
    a unique index refuses it (the part was started meanwhile: the route resumes that one)."""
    row = tuple(
        sqlite_time(v) if isinstance(v, dt.datetime) else v
        for v in (values[c] for c in sql.SQLITE_START_COLUMNS)
    )

    def op(conn: sqlite3.Connection) -> int | None:
        try:
            (attempt_id,) = conn.execute(sql.SQLITE_START_INSERT, row).fetchone()
        except sqlite3.IntegrityError:
            return None
        conn.execute(sql.SQLITE_OUTBOX_INSERT, event(attempt_id))
        return int(attempt_id)

    return op


__all__ = ["ExamWriter", "save_op", "sqlite_time", "start_op", "time_of"]
