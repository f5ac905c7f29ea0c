"""Does a big GIFT import hold the event loop? /health latency while one server imports 40,000 questions.

    .venv/bin/python bench/bank_import_stall.py                           # before (git ref) vs this tree
    .venv/bin/python bench/bank_import_stall.py --before 139501d --runs 3 --questions 40000
    .venv/bin/python bench/bank_import_stall.py --sides after --runs 1    # this tree only
    .venv/bin/python bench/bank_import_stall.py --phases                 # where the loop is held (in process)

One run of a side: a fresh SQLite database (`app db upgrade`, `app demo-data --officers 20` for the
authority's account), one server (`app serve`, one worker) started from that side's code, then the
upload of a generated GIFT file of `--questions` questions (each with its `// 依据：` line and a
`::title::`) to POST /api/exams/banks/import, while another connection GETs /health every 50 ms
(/health answers from the same event loop after a `SELECT 1`). Printed per run: the import's wall
time and status, and the health latencies (median, p99, max, how many polls). Sides are interleaved
(before, after, before, after, ...) and the medians over the runs are printed with the ratio.

`--before REF`: the code of that git commit, exported with `git archive` into a temporary folder and
put first on PYTHONPATH (same virtualenv); "after" is this working tree.

`--phases`: in this process, on this tree's code, a loop-lag probe (a task that sleeps 5 ms and
records how late it wakes) runs while the import's steps run one after another on a fresh SQLite
database: reading the file (thread), and writing it (bank_import); prints each step's time and the
longest the loop was held in it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.httpkit import csrf_token, session_cookie, wait_healthy  # noqa: E402  (after sys.path)

POLL_S = 0.05


def gift_file(n: int) -> bytes:
    """``n`` distinct single-choice questions with a basis and a title (~150 bytes each)."""
    out = []
    for i in range(n):
        out.append(
            f"// 依据：《中华人民共和国行政处罚法》第{i % 86 + 1}条\n"
            f"::第{i}题:: 压测题库第 {i} 题：下列哪一项符合规定？"
            f"{{=正确选项{i} ~错误选项甲{i} ~错误选项乙{i} ~错误选项丙{i}}}\n"
        )
    return "\n".join(out).encode("utf-8")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def exported(ref: str) -> Iterator[Path]:
    """The tree of git commit ``ref`` in a temporary folder (no worktree: ``git archive``)."""
    with tempfile.TemporaryDirectory(prefix="bank-import-before-") as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        yield Path(tmp)


def app_cli(tree: Path, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=tree, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"`app {' '.join(args)}` failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def authority_account(url: str) -> int:
    import sqlite3

    path = url.split(":///", 1)[1]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        row = conn.execute(
            "SELECT id FROM accounts WHERE role = 'authority_admin' ORDER BY id LIMIT 1"
        ).fetchone()
    return int(row[0])


def stored_questions(url: str) -> int:
    import sqlite3

    with contextlib.closing(sqlite3.connect(url.split(":///", 1)[1])) as conn:
        return int(conn.execute("SELECT count(*) FROM exam_questions").fetchone()[0])


@dataclass
class Run:
    side: str
    import_s: float
    status: int
    polls: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    stored: int
    idle_p99_ms: float
    """/health p99 over 3 s before the upload: what the machine's load alone does."""
    corrected_p99_ms: float
    """p99 with the polls a stall swallowed put back (:func:`corrected`)."""


def corrected(latencies: list[float]) -> list[float]:
    """The polls a stall swallowed, put back (coordinated omission, as HdrHistogram corrects it):
    a poll answered after L ms stood for the L / 50 polls that should have been sent meanwhile,
    answered after L - 50, L - 100, ... ms. Without it a 10 s stall is one sample out of hundreds."""
    out = list(latencies)
    for value in latencies:
        missed = value - POLL_S * 1000
        while missed > 0:
            out.append(missed)
            missed -= POLL_S * 1000
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def poll_health(port: int, stop: Any, out: Any) -> None:
    """In its own process (the uploading client must not delay the polls): GET /health every
    ``POLL_S`` over one keep-alive connection until ``stop`` is set; sends the latencies (ms)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies = []
    while not stop.is_set():
        t0 = time.perf_counter()
        conn.request("GET", "/health")
        response = conn.getresponse()
        response.read()
        latencies.append((time.perf_counter() - t0) * 1000)
        assert response.status == 200
        time.sleep(max(0.0, POLL_S - (time.perf_counter() - t0)))
    out.send(latencies)


def measure(port: int, seconds: float | None, upload: Any = None) -> tuple[float, Any, list[float]]:
    """Health latencies while ``upload()`` runs (or for ``seconds``: the idle baseline)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    receive, send = ctx.Pipe(duplex=False)
    poller = ctx.Process(target=poll_health, args=(port, stop, send))
    poller.start()
    time.sleep(1.0)  # the poller is up and connected before the upload starts
    t0 = time.perf_counter()
    result = upload() if upload is not None else time.sleep(seconds or 0)
    elapsed = time.perf_counter() - t0
    stop.set()
    latencies = receive.recv()
    poller.join()
    return elapsed, result, latencies


def upload_file(port: int, cookie: str, csrf: str, data: bytes) -> int:
    import httpx

    headers = {
        "cookie": f"zf_session={cookie}; zf_csrf={csrf}",
        "x-csrftoken": csrf,
        "accept": "application/json",
    }
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600, headers=headers) as client:
        r = client.post(
            "/api/exams/banks/import",
            params={"code": "stall", "category": "public_law"},
            files={"file": ("stall.gift", data, "text/plain")},
        )
    if r.status_code != 200:
        print(f"  import answered {r.status_code}: {r.text[:300]}")
    return r.status_code


@contextlib.contextmanager
def server(tree: Path, env: dict[str, str], port: int, log: Path, *, where: bool = False) -> Iterator[None]:
    """``app serve`` (one worker) from ``tree``'s code until the block ends (``where``: timed callbacks)."""
    command = ["-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if where:
        command = [str(Path(__file__).resolve()), "--serve-instrumented", str(port)]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, *command],
            cwd=tree,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_healthy(port)
            yield
        finally:
            with contextlib.suppress(ProcessLookupError):
                # uvicorn re-raises the signal it stopped on: SIGINT lets atexit report.
                os.killpg(proc.pid, signal.SIGINT if where else signal.SIGTERM)
            proc.wait(timeout=30)


def one_run(side: str, tree: Path, data: bytes, *, where: bool = False) -> Run:
    with tempfile.TemporaryDirectory(prefix="bank-import-") as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        secret = secrets.token_urlsafe(48)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "APP_ENV": "development",
            "SECRET_KEY": secret,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(tree),
        }
        app_cli(tree, env, "db", "upgrade")
        app_cli(tree, env, "demo-data", "--officers", "20")
        cookie = session_cookie(secret, authority_account(url))
        port = free_port()
        log = Path(tmp) / "server.log"
        with server(tree, env, port, log, where=where):
            csrf = csrf_token(port)
            _idle_s, _none, idle = measure(port, 3.0)
            elapsed, status, lat = measure(port, None, lambda: upload_file(port, cookie, csrf, data))
        stored = stored_questions(url)
        if where:
            print("\n".join(log.read_text().splitlines()[-12:]))
    fixed = corrected(lat)
    return Run(
        side,
        elapsed,
        status,
        len(lat),
        pct(lat, 50),
        pct(lat, 99),
        max(lat),
        stored,
        pct(idle, 99),
        pct(fixed, 99),
    )


class HeldMeter:
    """The CPU time (``time.thread_time``) each loop callback runs before it gives the loop back:
    how long the loop is held, whatever else the machine runs (wall-clock lag, measured alongside
    by a probe task, also counts the time the process waits for a core or for the GIL)."""

    SAMPLE_AFTER = 0.004
    """A callback running longer than this (wall) has its stack sampled: where the loop is held."""

    def __init__(self) -> None:
        self.longest = (0.0, "")
        self._run = asyncio.events.Handle._run
        self._started = 0.0
        self._stop = False
        self.samples: Counter[str] = Counter()
        self.last = ""
        self.slow: list[tuple[float, float, str]] = []
        self._t_start = time.perf_counter()

    def _sample(self, loop_thread: int) -> None:
        while not self._stop:
            time.sleep(0.002)
            started = self._started
            if started and time.perf_counter() - started > self.SAMPLE_AFTER:
                frame = sys._current_frames().get(loop_thread)
                where = []
                while frame is not None and len(where) < 3:
                    name = frame.f_code.co_filename
                    if "/app/" in name and "/site-packages/" not in name:
                        where.append(f"{name.rsplit('/app/', 1)[1]}:{frame.f_lineno} {frame.f_code.co_name}")
                    frame = frame.f_back
                self.samples[" < ".join(where) or "(library code)"] += 1
                self.last = " < ".join(where) or "(library code)"

    def __enter__(self) -> HeldMeter:
        meter, run = self, self._run

        def timed(handle: asyncio.events.Handle) -> None:
            t0 = time.thread_time()
            meter.last = ""
            meter._started = time.perf_counter()
            run(handle)
            meter._started = 0.0
            held = time.thread_time() - t0
            if held > meter.longest[0]:
                meter.longest = (held, meter.last)
            if held > 0.01:
                meter.slow.append((held, time.perf_counter() - meter._t_start, meter.last))

        asyncio.events.Handle._run = timed  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._sample, args=(threading.get_ident(),), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.events.Handle._run = self._run  # type: ignore[method-assign]
        self._stop = True
        self._thread.join()


async def phases(n: int) -> None:
    """Where the loop is held: each step of an import as the upload route runs it, timed, with the
    longest CPU slice of the loop in it and the probe's longest wall-clock lag."""
    from app.db import make_engine, make_sessionmaker
    from app.exams import formats, importer
    from app.exams.services.banks import bank_import
    from app.lib.security import system_principal

    data = gift_file(n)
    lags: list[float] = []

    async def probe() -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append((time.perf_counter() - t0 - 0.005) * 1000)

    async def parse() -> object:
        if getattr(formats, "stepped", None):  # this change: GIFT read in slices on the loop
            from app.lib.steps import finish_yielding

            return await finish_yielding(formats.parse_steps(data, filename="stall.gift", code="stall"))
        return await asyncio.to_thread(importer.parse_bytes, data, filename="stall.gift", code="stall")

    with tempfile.TemporaryDirectory(prefix="bank-import-phases-") as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        env = {**os.environ, "DATABASE_URL": url, "APP_ENV": "development", "SECRET_KEY": "x" * 48}
        app_cli(ROOT, env, "db", "upgrade")
        engine = make_engine(url)
        task = asyncio.create_task(probe())
        await asyncio.sleep(0.1)
        try:
            async with make_sessionmaker(engine)() as db:

                async def step(name: str, coro: Any) -> Any:
                    lags.clear()
                    t0 = time.perf_counter()
                    with HeldMeter() as meter:
                        result = await coro
                    held, where = meter.longest
                    print(
                        f"  {name:<28} {time.perf_counter() - t0:6.2f} s  loop held (CPU) at most "
                        f"{held * 1000:6.1f} ms  probe lag max {max(lags or [0]):7.1f} ms"
                    )
                    print(f"      the longest: {where or '(not sampled)'}")
                    for where, count in meter.samples.most_common(4):
                        print(f"      {count * 2:5d} ms sampled in callbacks > 4 ms at {where}")
                    return result

                await step("idle (machine noise)", asyncio.sleep(2))
                paused = contextlib.ExitStack()
                with contextlib.suppress(ImportError):
                    from app.lib.steps import gc_paused  # this change: as importer.import_files does

                    paused.enter_context(gc_paused())
                parsed = await step("read + validate the file", parse())
                principal = system_principal()
                await step(
                    "write (bank_import)", bank_import(db, principal=principal, bank=parsed.bank, source="s")
                )
                await step("commit", db.commit())
                await step(
                    "re-import unchanged", bank_import(db, principal=principal, bank=parsed.bank, source="s")
                )
        finally:
            task.cancel()
            await engine.dispose()


def serve_instrumented(port: int) -> None:
    """``app serve`` with every loop callback timed; at exit, the ones over 10 ms of CPU (stderr)."""
    import atexit

    from app.cli import cli

    if os.environ.get("BENCH_SWITCH_INTERVAL"):  # an experiment: the GIL's hand-over interval
        sys.setswitchinterval(float(os.environ["BENCH_SWITCH_INTERVAL"]))
    meter = HeldMeter().__enter__()

    def report() -> None:
        meter.__exit__()
        print(f"[held] callbacks over 10 ms of CPU: {len(meter.slow)}", file=sys.stderr)
        for held, at, where in sorted(meter.slow, reverse=True)[:8]:
            print(
                f"[held] {held * 1000:7.1f} ms at t={at:6.1f} s: {where or '(not sampled)'}", file=sys.stderr
            )

    atexit.register(report)
    cli(["serve", "--host", "127.0.0.1", "--port", str(port)], standalone_mode=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=40_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", default="139501d", help="git ref of the code before the change")
    parser.add_argument("--sides", default="before,after")
    parser.add_argument(
        "--phases", action="store_true", help="time the import's steps in process (this tree)"
    )
    parser.add_argument("--where", action="store_true", help="the server's callbacks over 10 ms of CPU")
    parser.add_argument("--serve-instrumented", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_instrumented:
        serve_instrumented(args.serve_instrumented)
        return
    print(f"load average at start: {os.getloadavg()}")
    if args.phases:
        print(f"{args.questions:,} questions, this tree, SQLite:")
        asyncio.run(phases(args.questions))
        print(f"load average at end: {os.getloadavg()}")
        return

    data = gift_file(args.questions)
    print(
        f"GIFT file: {args.questions:,} questions, {len(data) / 1e6:.1f} MB; health polled every {POLL_S * 1000:.0f} ms"
    )
    sides = args.sides.split(",")
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        trees = {s: (stack.enter_context(exported(args.before)) if s == "before" else ROOT) for s in sides}
        for i in range(args.runs):
            for side in sides:
                run = one_run(side, trees[side], data, where=args.where)
                runs.append(run)
                print(
                    f"run {i + 1} {side:<6} import {run.import_s:6.2f} s (HTTP {run.status}, {run.stored:,} rows)  "
                    f"health p50 {run.p50_ms:6.1f} ms  p99 {run.p99_ms:7.1f} ms (corrected {run.corrected_p99_ms:7.1f})  "
                    f"max {run.max_ms:7.1f} ms  "
                    f"({run.polls} polls; idle p99 {run.idle_p99_ms:5.1f} ms)  load {os.getloadavg()[0]:.2f}"
                )
    print("\nmedians over the runs:")
    medians: dict[str, tuple[float, float, float]] = {}
    for side in sides:
        mine = [r for r in runs if r.side == side]
        medians[side] = (
            statistics.median(r.import_s for r in mine),
            statistics.median(r.p99_ms for r in mine),
            statistics.median(r.max_ms for r in mine),
            statistics.median(r.corrected_p99_ms for r in mine),
            statistics.median(r.p50_ms for r in mine),
            statistics.median(r.idle_p99_ms for r in mine),
        )
        imp, p99, mx, cp99, p50, idle = medians[side]
        print(
            f"  {side:<6} import {imp:6.2f} s   health p50 {p50:6.1f} ms  p99 {p99:7.1f} ms  "
            f"corrected p99 {cp99:7.1f} ms   max {mx:7.1f} ms   (idle p99 {idle:5.1f} ms)"
        )
    if {"before", "after"} <= set(medians):
        b, a = medians["before"], medians["after"]
        print(
            f"  after/before: import x{a[0] / b[0]:.2f}, health p99 x{a[1] / b[1]:.2f}, "
            f"corrected p99 x{a[3] / b[3]:.3f}, max x{a[2] / b[2]:.3f}"
        )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
