"""Why `app serve` runs one process on SQLite: what a second writer process costs the writes.

SQLite has one writer at a time. In one process the exam writer (app/exams/writer.py) queues the
saves in memory and commits them in batches, so a save waits for at most the batch before it.
Several server processes would each have their own writer, and they would meet at SQLite's lock:
a writer that finds it taken does not queue, it sleeps in SQLite's busy handler (1, 2, 5, 10, 15,
20, 25, 25, 25, 50, 50, 100 ms, then 100 ms steps) and tries again, however soon the lock is free.

This bench writes the same stream of batches (the exam writer's shape: BEGIN IMMEDIATE, a batch of
answer rows, COMMIT, synchronous=FULL in WAL) from one process, and split over 2 or 4 processes
with busy_timeout as the app sets it, and prints how long a batch waited from the moment it was due
to its commit: p50, p99, max, and how many batches waited longer than 100 ms (an autosave's budget).
A mode ending in ``L`` (``2L``, ``4L``) has the processes queue on an exclusive ``flock`` of a lock
file around each transaction instead: the kernel wakes the next waiter when the lock is released,
where SQLite's busy handler sleeps its fixed steps. It measures what a cross-process write lock
would give several server processes; the app does not do this (it serves a SQLite file from one
process). The modes run interleaved, `--rounds` times each, at normal priority; the load average
is printed.

    .venv/bin/python bench/sqlite_writers.py                 # 3 rounds, 8 s each, 200 batches/s in all
    .venv/bin/python bench/sqlite_writers.py --rate 400 --rows 20 --rounds 5 --modes 1,2,2L
"""

from __future__ import annotations

import argparse
import fcntl
import multiprocessing as mp
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BUSY_TIMEOUT_MS = 10_000  # app.db._sqlite_pragmas


def _open(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")  # the exam writer's batches
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


def writer(
    path: str, rate: float, rows: int, seconds: float, start_at: float, out: mp.Queue, locked: bool
) -> None:
    """Batches due every 1/rate s from ``start_at``; each waits for the lock, writes, commits.
    ``locked``: each transaction inside an exclusive flock of ``<path>.lock`` (the processes queue
    in the kernel, not in SQLite's busy handler)."""
    conn = _open(path)
    lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    waits: list[float] = []
    interval = 1.0 / rate
    due = start_at
    n = 0
    while due < start_at + seconds:
        now = time.time()
        if due > now:
            time.sleep(due - now)
        if locked:
            fcntl.flock(lock, fcntl.LOCK_EX)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO answers (attempt_id, position, choice, seq) VALUES (?, ?, ?, ?)",
            [(n, i, "1", i) for i in range(rows)],
        )
        conn.execute("COMMIT")
        if locked:
            fcntl.flock(lock, fcntl.LOCK_UN)
        waits.append(time.time() - due)
        n += 1
        due += interval
    conn.close()
    os.close(lock)
    out.put(waits)


def run(mode: str, rate: float, rows: int, seconds: float) -> list[float]:
    processes, locked = int(mode.rstrip("L")), mode.endswith("L")
    with tempfile.TemporaryDirectory(prefix="sqlite-writers-") as folder:
        path = str(Path(folder) / "w.db")
        conn = _open(path)
        conn.execute(
            "CREATE TABLE answers (id INTEGER PRIMARY KEY, attempt_id INTEGER, position INTEGER,"
            " choice TEXT, seq INTEGER)"
        )
        conn.execute("CREATE INDEX ix_answers ON answers (attempt_id, position)")
        conn.close()
        out: mp.Queue = mp.Queue()
        start_at = time.time() + 0.5
        procs = [
            mp.Process(
                target=writer,
                args=(path, rate / processes, rows, seconds, start_at + k / rate, out, locked),
            )
            for k in range(processes)
        ]
        for p in procs:
            p.start()
        waits = [w for _ in procs for w in out.get()]
        for p in procs:
            p.join()
        return waits


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rate", type=float, default=200.0, help="batches per second, all processes together"
    )
    parser.add_argument("--rows", type=int, default=20, help="answer rows per batch")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--modes", default="1,2,4,2L,4L", help="writer processes per mode; L: queued on a flock"
    )
    args = parser.parse_args()
    modes = args.modes.split(",")
    print(
        f"{args.rate:g} batches/s of {args.rows} rows for {args.seconds:g} s, modes {modes} interleaved,"
        f" {args.rounds} rounds; load average (1 min) {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    results: dict[str, list[list[float]]] = {m: [] for m in modes}
    for r in range(args.rounds):
        for m in modes:
            results[m].append(sorted(run(m, args.rate, args.rows, args.seconds)))
            w = results[m][-1]
            print(
                f"  round {r + 1}, {m} process(es): p99 {1000 * w[int(0.99 * (len(w) - 1))]:.1f} ms,"
                f" max {1000 * w[-1]:.1f} ms",
                flush=True,
            )
    print(
        f"\nwait from due to commit, medians over {args.rounds} rounds; load average {os.getloadavg()[0]:.1f}"
    )
    print("| writer processes | batches | p50 | p99 | max | over 100 ms |")
    print("|---|---|---|---|---|---|")
    for m in modes:
        runs = results[m]

        def med(f: Callable[[list[float]], float], runs: list[list[float]] = runs) -> float:
            return statistics.median(f(w) for w in runs)

        print(
            f"| {m} | {statistics.median(len(w) for w in runs):.0f}"
            f" | {1000 * med(lambda w: w[len(w) // 2]):.1f} ms"
            f" | {1000 * med(lambda w: w[int(0.99 * (len(w) - 1))]):.1f} ms"
            f" | {1000 * med(lambda w: w[-1]):.1f} ms"
            f" | {med(lambda w: sum(x > 0.1 for x in w)):.0f} |"
        )


if __name__ == "__main__":
    main()
