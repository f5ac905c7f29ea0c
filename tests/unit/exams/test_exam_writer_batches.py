"""The SQLite exam writer's batches (``app.exams.writer.ExamWriter``): a batch commits when its
time budget is spent and the rest goes first into the next one, and the autosaves queued with
heavier items (submits, starts) are written early, though never at the cost of the heavy ones'
progress. Every item is acknowledged once its batch has committed, and only then."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.exams import writer as writer_module
from app.exams.writer import ExamWriter
from tests.looptime import LoopTicks


def _writer(tmp_path: Path) -> tuple[ExamWriter, Path]:
    path = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, name TEXT NOT NULL, seen INTEGER NOT NULL)")
    writer = ExamWriter(str(path))
    return writer, path


def _op(name: str, path: Path, *, pause: float = 0.0) -> Callable[[sqlite3.Connection], str]:
    """An item that writes a row with what another connection sees committed when it runs (the
    same count for every item of one batch), after ``pause`` seconds of work."""

    def op(conn: sqlite3.Connection) -> str:
        with contextlib.closing(sqlite3.connect(path)) as other:
            (committed,) = other.execute("SELECT count(*) FROM t").fetchone()
        if pause:
            time.sleep(pause)
        conn.execute("INSERT INTO t (name, seen) VALUES (?, ?)", (name, committed))
        return name

    return op


def _rows(path: Path) -> list[tuple[str, int]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT name, seen FROM t ORDER BY n").fetchall()


async def test_a_batch_commits_when_its_budget_is_spent_and_the_rest_follows_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "BATCH_BUDGET", 0.005)
    writer, path = _writer(tmp_path)
    try:
        names = [f"submit{i}" for i in range(6)]
        answers = await asyncio.gather(*(writer.run(_op(n, path, pause=0.003)) for n in names))
    finally:
        await writer.close()
    assert answers == names  # each acknowledged with its own answer
    rows = _rows(path)
    assert [name for name, _seen in rows] == names  # in the order they came
    batches = [seen for _name, seen in rows]
    # 3 ms an item against a budget of 5 ms: two items a batch at most, so three batches at least,
    # each seeing what the batches before it committed.
    assert len(set(batches)) >= 3
    assert batches == sorted(batches)
    for seen in set(batches):
        assert seen == batches.index(seen)  # a batch sees every item written before it


async def test_without_a_budget_spent_one_batch_takes_everything_queued(tmp_path: Path) -> None:
    writer, path = _writer(tmp_path)
    release, first = await _held(writer, path)
    try:
        saves = [asyncio.ensure_future(writer.run(_op(f"save{i}", path), light=True)) for i in range(20)]
        await asyncio.sleep(0.05)
        release.set()
        answers = await asyncio.gather(first, *saves)
    finally:
        await writer.close()
    assert len(answers) == 21
    rows = _rows(path)
    assert rows[0] == ("first", 0)
    assert {seen for _name, seen in rows[1:]} == {1}  # one transaction, one commit, after the first


async def _held(writer: ExamWriter, path: Path) -> tuple[threading.Event, asyncio.Future[str]]:
    """Holds the writer's thread in the turn of a first batch (as the other workers' turn would)
    until the event: what is queued meanwhile goes into the next batch, together."""
    entered, release = threading.Event(), threading.Event()

    @contextlib.contextmanager
    def turn() -> Iterator[None]:
        entered.set()
        release.wait()
        yield

    writer.turn = turn
    first = asyncio.ensure_future(writer.run(_op("first", path)))
    await asyncio.to_thread(entered.wait)
    return release, first


async def test_autosaves_go_ahead_of_the_heavy_items_but_the_first(tmp_path: Path) -> None:
    writer, path = _writer(tmp_path)
    release, first = await _held(writer, path)
    try:
        runs = [
            asyncio.ensure_future(writer.run(_op(name, path), light=name.startswith("save")))
            for name in ("submit1", "submit2", "save1", "submit3", "save2")
        ]
        await asyncio.sleep(0.05)
        assert not first.done() and not any(r.done() for r in runs)  # nothing acknowledged before its commit
        release.set()
        await asyncio.gather(first, *runs)
    finally:
        await writer.close()
    names = [name for name, _seen in _rows(path)]
    assert names == ["first", "submit1", "save1", "save2", "submit2", "submit3"]


async def test_heavy_items_progress_under_a_stream_of_autosaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Autosaves that alone fill every batch's budget still leave each batch one heavy item."""
    monkeypatch.setattr(writer_module, "BATCH_BUDGET", 0.001)
    writer, path = _writer(tmp_path)
    try:
        heavy = [asyncio.ensure_future(writer.run(_op(f"submit{i}", path))) for i in range(3)]
        saves = [
            asyncio.ensure_future(writer.run(_op(f"save{i}", path, pause=0.002), light=True))
            for i in range(9)
        ]
        await asyncio.gather(*heavy, *saves)
    finally:
        await writer.close()
    rows = _rows(path)
    batch_of = {name: seen for name, seen in rows}
    # Each batch: one submit, then saves until the budget is spent; the submits in their order.
    assert [name for name, _seen in rows if name.startswith("submit")] == ["submit0", "submit1", "submit2"]
    assert len({batch_of[f"submit{i}"] for i in range(3)}) == 3
    assert batch_of["submit2"] < batch_of["save8"]  # not after every save


async def test_a_failed_commit_acknowledges_nothing_of_its_batch(tmp_path: Path) -> None:
    writer, path = _writer(tmp_path)

    def breaks_the_commit(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO t (name, seen) VALUES ('x', 0)")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS p (id INTEGER PRIMARY KEY)")
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS c (p INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)"
        )
        conn.execute("INSERT INTO c VALUES (42)")  # a deferred violation: the COMMIT refuses
        return "x"

    release, first = await _held(writer, path)
    try:
        runs = [
            asyncio.ensure_future(writer.run(_op("save1", path), light=True)),
            asyncio.ensure_future(writer.run(breaks_the_commit)),
        ]
        await asyncio.sleep(0.05)
        release.set()
        assert await first == "first"
        results = await asyncio.gather(*runs, return_exceptions=True)
        assert all(isinstance(r, sqlite3.IntegrityError) for r in results)
        assert _rows(path) == [("first", 0)]
        assert await writer.run(_op("save2", path), light=True) == "save2"  # the writer goes on
    finally:
        await writer.close()
    assert [name for name, _seen in _rows(path)] == ["first", "save2"]


async def test_a_file_another_process_is_writing_is_waited_for_off_the_loop(tmp_path: Path) -> None:
    """A writer outside the workers' turns (a console command) holds the file: the batch waits
    for it on the writer's thread while the loop runs on, and is written once it is done."""
    writer, path = _writer(tmp_path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t (name, seen) VALUES ('console', 0)")
    try:
        async with LoopTicks() as ticks:
            run = asyncio.ensure_future(writer.run(_op("save1", path), light=True))
            await asyncio.sleep(0.3)
            assert not run.done()
            assert ticks.count >= 10  # the loop was not held by the wait
        other.execute("COMMIT")
        assert await run == "save1"
    finally:
        other.close()
        await writer.close()
    assert [name for name, _seen in _rows(path)] == ["console", "save1"]


async def test_an_item_that_fails_undoes_only_itself(tmp_path: Path) -> None:
    """An op that raises after writing: the batch is written again, that op alone undone and
    answered with its exception, the others written and acknowledged."""
    writer, path = _writer(tmp_path)

    def writes_then_fails(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO t (name, seen) VALUES ('bad', 0)")
        raise ValueError("this item fails")

    release, first = await _held(writer, path)
    try:
        runs = [
            asyncio.ensure_future(writer.run(_op("save1", path), light=True)),
            asyncio.ensure_future(writer.run(writes_then_fails)),
            asyncio.ensure_future(writer.run(_op("save2", path), light=True)),
        ]
        await asyncio.sleep(0.05)
        release.set()
        results = await asyncio.gather(first, *runs, return_exceptions=True)
    finally:
        await writer.close()
    assert results[0] == "first" and results[1] == "save1" and results[3] == "save2"
    assert isinstance(results[2], ValueError)
    assert [name for name, _seen in _rows(path)] == ["first", "save1", "save2"]
