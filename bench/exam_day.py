"""Exam day: many candidates start at once, fetch a 100-question paper, autosave, submit — against the
running server (`app serve`) on PostgreSQL. Then every acknowledged autosave is looked up in the database.

    .venv/bin/python bench/exam_day.py --start-postgres --candidates 2000
    .venv/bin/python bench/exam_day.py --start-postgres --candidates 2000 --kill-at 90   # kill -9 mid-run
    .venv/bin/python bench/exam_day.py --postgres-url postgresql://postgres@127.0.0.1:5432/postgres ...

What one run does:
1. a fresh database (`app db upgrade`, `app demo-data --officers N`: officers and the starter banks),
   one officer account per candidate, an exam whose public part draws 100 questions, a session open
   now, every candidate enrolled (not timed);
2. the server: `app serve --workers W` on that database (the time-up sweep runs in it);
3. candidates: each starts within the first `--spread` seconds (the exam-start spike: start + paper),
   then autosaves every `--interval` seconds (1–3 changed answers, increasing sequence numbers),
   retrying a failed save until it is acknowledged, and submits at `--duration`;
4. figures: paper fetch and autosave latency p50/p99, saves/s, errors; then "lost answers": every
   acknowledged (attempt, question, seq) must be a row of `exam_answers`, and every closed attempt
   must have been graded on the newest acknowledged answer of each question.

Logins are not part of the run: a candidate's session cookie is minted with the server's secret
(what a login returns). Logging in is argon2 by design (~50 ms of CPU each) and limited per address;
on exam day candidates log in before the start, and this measures the exam itself.
With `--kill-at S` the server is killed with SIGKILL after S seconds and started again; candidates
retry until their saves are acknowledged, and the lost-answer count must still be 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.training import postgres_database, throwaway_postgres

ROOT = Path(__file__).resolve().parent.parent
BLUEPRINT = [
    ("public_law", "single", 50, 1.0),
    ("public_law", "multiple", 20, 1.0),
    ("public_law", "judge", 20, 1.0),
    ("new_law", "single", 10, 1.0),
]


def _env(url: str, secret: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "APP_ENV": "development",
        "SECRET_KEY": secret,
        "PYTHONUNBUFFERED": "1",
        "DB_POOL_SIZE": os.environ.get("DB_POOL_SIZE", "10"),
    }


def app_cli(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"`app {' '.join(args)}` failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


async def seed(url: str, candidates: int) -> tuple[int, int, list[tuple[int, int]]]:
    """Accounts, the 100-question exam, an open session, enrolments. Returns (session, part, [(account, officer)])."""
    from sqlalchemy import select

    from app.accounts.models import Account, Officer
    from app.db import make_engine, make_sessionmaker
    from app.exams.models import Exam, ExamEnrolment, ExamPartRow, ExamSession
    from app.lib.clock import utcnow

    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as db:
            officers = (await db.execute(select(Officer.id, Officer.agency_id).order_by(Officer.id))).all()
            taken = set(
                (await db.scalars(select(Account.officer_id).where(Account.officer_id.is_not(None)))).all()
            )
            free = [o for o in officers if o.id not in taken][:candidates]
            if len(free) < candidates:
                raise SystemExit(f"only {len(free)} officers without an account; raise --officers")
            accounts = [
                Account(
                    username=f"cand{o.id}",
                    display_name=f"考生{o.id}",
                    password_hash="!bench-no-login",  # noqa: S106 - never verified: no login
                    role="officer",
                    agency_id=o.agency_id,
                    officer_id=o.id,
                    must_change_password=False,
                )
                for o in free
            ]
            db.add_all(accounts)
            province = await db.scalar(select(Exam.agency_id).limit(1))
            exam = Exam(
                agency_id=province, title="压测考试", pass_mark=60, retakes=1, created_by_name="bench"
            )
            db.add(exam)
            await db.flush()
            part = ExamPartRow(
                exam_id=exam.id,
                position=1,
                part="public",
                title="公共法律知识",
                duration_minutes=120,
                blueprint_json=json.dumps(
                    [
                        {"category": c, "type": t, "count": n, "points": p, "bank": ""}
                        for c, t, n, p in BLUEPRINT
                    ]
                ),
            )
            now = utcnow()
            import datetime as dt

            session = ExamSession(
                exam_id=exam.id,
                agency_id=province,
                title="压测场次",
                opens_at=now - dt.timedelta(minutes=5),
                closes_at=now + dt.timedelta(hours=3),
                review_policy="after_close",
                created_by_name="bench",
            )
            db.add_all([part, session])
            await db.flush()
            db.add_all(
                ExamEnrolment(session_id=session.id, officer_id=o.id, created_by_name="bench") for o in free
            )
            await db.commit()
            return session.id, part.id, [(a.id, a.officer_id or 0) for a in accounts]
    finally:
        await engine.dispose()


def session_cookie(secret: str, account_id: int) -> str:
    """What a login sets: the encrypted client-side session naming the account (epoch 1)."""
    from litestar.middleware.session.client_side import ClientSideSessionBackend, CookieBackendConfig

    from app.settings import load_settings

    settings = load_settings({"APP_ENV": "development", "SECRET_KEY": secret, "DATABASE_URL": "sqlite://"})
    config = CookieBackendConfig(secret=settings.session_key, key="zf_session")
    session = {"aid": account_id, "ep": 1, "iat": int(time.time())}
    chunks = ClientSideSessionBackend(config=config).dump_data(session)
    assert len(chunks) == 1
    return chunks[0].decode()


@contextlib.contextmanager
def server(
    env: dict[str, str], port: int, workers: int, log: Path, profile: Path | None = None
) -> Iterator[Any]:
    holder: dict[str, subprocess.Popen[bytes]] = {}
    # --profile: one worker under cProfile (written when the server stops on SIGTERM).
    prefix = ["-m", "cProfile", "-o", str(profile)] if profile else []

    def start() -> None:
        out = log.open("ab")
        holder["proc"] = subprocess.Popen(
            [
                sys.executable,
                *prefix,
                "-m",
                "app",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_healthy(port)

    def kill9() -> None:
        os.killpg(holder["proc"].pid, signal.SIGKILL)
        holder["proc"].wait()

    start()
    try:
        yield type("Server", (), {"start": staticmethod(start), "kill9": staticmethod(kill9)})
    finally:
        with contextlib.suppress(ProcessLookupError):
            # uvicorn re-raises the signal it stopped on: SIGINT lets cProfile write its stats.
            os.killpg(holder["proc"].pid, signal.SIGINT if profile else signal.SIGTERM)
        holder["proc"].wait(timeout=20)


def wait_healthy(port: int, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not start")


class Conn:
    """A minimal HTTP/1.1 keep-alive client, one connection per candidate (as a browser holds one).

    httpx spends more CPU per request than the server does; on a shared 2-core machine the client
    would measure itself. This one writes the request and reads Content-Length bytes back.
    """

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        self.base = "".join(f"{k}: {v}\r\n" for k, v in {"host": "127.0.0.1", **headers}.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: Any = None, *, decode: bool = True, headers: str = ""
    ) -> tuple[int, Any]:
        """(status, the JSON body); ``decode=False``: the raw body (for answers the candidate does not
        read: decoding a 46 KB submit answer costs the shared machine's CPU, not the server's).
        ``headers``: more header lines, each ending in CRLF."""
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\n{self.base}{headers}content-length: {len(payload)}\r\n"
        if body is not None:
            head += "content-type: application/json\r\n"
        for attempt in (1, 2):
            try:
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
                assert self.reader is not None
                self.writer.write(head.encode() + b"\r\n" + payload)
                await self.writer.drain()
                status_line = await self.reader.readline()
                if not status_line:
                    raise ConnectionError("closed")
                status = int(status_line.split()[1])
                length = 0
                while (line := await self.reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                data = await self.reader.readexactly(length) if length else b""
                return status, ((json.loads(data) if decode else data) if data else None)
            except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Stats:
    paper: list[float] = field(default_factory=list)
    save: list[float] = field(default_factory=list)
    save_at: list[float] = field(default_factory=list)
    """When each acknowledged save was sent (seconds since the run began), for the per-phase figures."""
    submit: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    acknowledged: list[tuple[int, int, int, str]] = field(
        default_factory=list
    )  # attempt, position, seq, choice
    started: int = 0
    submitted: int = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000


async def candidate(
    port: int,
    stats: Stats,
    *,
    cookie: str,
    csrf: str,
    session_id: int,
    part_id: int,
    start_at: float,
    interval: float,
    end_at: float,
    t0: float,
    rng: random.Random,
) -> None:
    headers = {
        "cookie": f"zf_session={cookie}; zf_csrf={csrf}",
        "x-csrftoken": csrf,
        "accept": "application/json",
    }
    client = Conn(port, headers)
    await asyncio.sleep(max(0.0, t0 + start_at - time.perf_counter()))
    url = f"/api/my/exams/sessions/{session_id}/parts/{part_id}/start"
    while True:
        began = time.perf_counter()
        try:
            status, body = await client.request("POST", url)
            if status == 200:
                stats.paper.append(time.perf_counter() - began)
                break
            stats.error(f"start {status}")
        except Exception as exc:  # the server may be down (--kill-at): retry
            stats.error(f"start {type(exc).__name__}")
        await asyncio.sleep(1 + rng.random())
    paper = body
    stats.started += 1
    attempt = paper["id"]
    questions = paper["questions"]
    seq = 0
    next_save = time.perf_counter() + rng.uniform(0, interval)
    while next_save < t0 + end_at:
        await asyncio.sleep(max(0.0, next_save - time.perf_counter()))
        batch = []
        for q in rng.sample(questions, rng.randint(1, 3)):
            seq += 1
            n = len(q["options"])
            choice = sorted(rng.sample(range(n), 2)) if q["type"] == "multiple" else [rng.randrange(n)]
            batch.append({"position": q["position"], "choice": choice, "seq": seq})
        save_body = {"answers": batch}
        while True:  # a save is retried until acknowledged, as the page does
            began = time.perf_counter()
            try:
                status, answer = await client.request(
                    "PUT", f"/api/my/exams/attempts/{attempt}/answers", save_body
                )
                if status == 200:
                    stats.save.append(time.perf_counter() - began)
                    stats.save_at.append(began - t0)
                    for a in batch:
                        if a["position"] in answer["saved"]:
                            stats.acknowledged.append(
                                (attempt, a["position"], a["seq"], ",".join(map(str, a["choice"])))
                            )
                    break
                stats.error(f"save {status}")
                if status in (400, 404, 409):
                    break
            except Exception as exc:
                stats.error(f"save {type(exc).__name__}")
            await asyncio.sleep(0.5 + rng.random())
        next_save += interval
    while True:
        began = time.perf_counter()
        try:
            status, result = await client.request(
                "POST", f"/api/my/exams/attempts/{attempt}/submit", decode=False
            )
            if status == 200:
                assert b'"status":"closed"' in result, result[:200]
                stats.submit.append(time.perf_counter() - began)
                stats.submitted += 1
                client.close()
                return
            stats.error(f"submit {status}")
            if status != 503:  # 503: the server was busy or restarting, try again
                client.close()
                return
        except Exception as exc:
            stats.error(f"submit {type(exc).__name__}")
        await asyncio.sleep(1 + rng.random())


def csrf_token(port: int) -> str:
    """The CSRF cookie any page sets (not tied to a session: one serves every candidate)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/login") as login:
        cookie_headers = login.headers.get_all("set-cookie") or []
    return next(c.split(";")[0].split("=", 1)[1] for c in cookie_headers if c.startswith("zf_csrf="))


async def drive(
    args: argparse.Namespace,
    port: int,
    secret: str,
    session_id: int,
    part_id: int,
    accounts: list[tuple[int, int]],
    srv: Any,
) -> Stats:
    stats = Stats()
    csrf = await asyncio.to_thread(csrf_token, port)
    cookies = await asyncio.to_thread(lambda: [session_cookie(secret, a) for a, _o in accounts])
    rng = random.Random(7)
    t0 = time.perf_counter()

    async def killer() -> None:
        if args.kill_at is None:
            return
        await asyncio.sleep(args.kill_at)
        print(f"  t={time.perf_counter() - t0:.0f}s: kill -9 the server", flush=True)
        await asyncio.to_thread(srv.kill9)
        await asyncio.sleep(1)
        await asyncio.to_thread(srv.start)
        print(f"  t={time.perf_counter() - t0:.0f}s: server back", flush=True)

    async def progress() -> None:
        while True:
            await asyncio.sleep(15)
            print(
                f"  t={time.perf_counter() - t0:.0f}s started {stats.started} saves {len(stats.save)} "
                f"submitted {stats.submitted} errors {sum(stats.errors.values())}",
                flush=True,
            )

    ticker = asyncio.create_task(progress())
    await asyncio.gather(
        killer(),
        *(
            candidate(
                port,
                stats,
                cookie=c,
                csrf=csrf,
                session_id=session_id,
                part_id=part_id,
                start_at=rng.uniform(0, args.spread),
                interval=args.interval,
                end_at=args.duration,
                t0=t0,
                rng=random.Random(i),
            )
            for i, c in enumerate(cookies)
        ),
    )
    ticker.cancel()
    stats.errors["_elapsed"] = int(time.perf_counter() - t0)
    return stats


async def verify(url: str, stats: Stats) -> tuple[int, int, int]:
    """(acknowledged saves, lost, attempts graded on something other than the newest acknowledged answer)."""
    import asyncpg

    from bench.training import _libpq

    conn = await asyncpg.connect(_libpq(url))
    try:
        rows = await conn.fetch("SELECT attempt_id, position, seq, choice FROM exam_answers")
        stored = {(r["attempt_id"], r["position"], r["seq"]): r["choice"] for r in rows}
        lost = sum(1 for a, p, s, c in stats.acknowledged if stored.get((a, p, s)) != c)
        newest: dict[tuple[int, int], int] = {}
        for a, p, s, _c in stats.acknowledged:
            newest[(a, p)] = max(newest.get((a, p), 0), s)
        in_db: dict[tuple[int, int], int] = {}
        for a, p, s in stored:
            in_db[(a, p)] = max(in_db.get((a, p), 0), s)
        stale = sum(1 for k, s in newest.items() if in_db.get(k, 0) < s)
        open_left = await conn.fetchval("SELECT count(*) FROM exam_attempts WHERE status = 'open'")
        if open_left:
            print(f"  {open_left} attempts still open", flush=True)
        # The audit trail: the server's drain empties the outbox within a second or two; then every
        # start, every stored answer and every close is an event of the chain.
        waited = 0.0
        while (pending := await conn.fetchval("SELECT count(*) FROM audit_outbox")) and waited < 10:
            await asyncio.sleep(0.5)
            waited += 0.5
        counts = dict(
            await conn.fetch(
                "SELECT action, count(*) FROM audit_events WHERE action LIKE 'exam.%' GROUP BY action"
            )
        )
        saved_in_chain = await conn.fetchval(
            "SELECT coalesce(sum(json_array_length(data::json -> 'answers')), 0) FROM audit_events "
            "WHERE action = 'exam.answers.save'"
        )
        attempts = await conn.fetchval("SELECT count(*) FROM exam_attempts")
        closed = await conn.fetchval("SELECT count(*) FROM exam_attempts WHERE status = 'closed'")
        print(
            f"audit: outbox {pending} left after {waited:.1f} s; chained starts {counts.get('exam.attempt.start', 0)}"
            f" of {attempts} attempts, closes {counts.get('exam.attempt.close', 0)} of {closed},"
            f" saved answers {saved_in_chain} of {len(rows)} rows",
            flush=True,
        )
        return len(stats.acknowledged), lost, stale
    finally:
        await conn.close()


def prepare(
    stack: contextlib.ExitStack, args: argparse.Namespace, *, officers: int
) -> tuple[str, str, dict[str, str], tuple[int, int, list[tuple[int, int]]], int]:
    """A fresh database on the given (or a throwaway) PostgreSQL, migrated, with demo officers and
    ``args.candidates`` enrolled candidates; a free port. (url, secret, env, seed, port)."""
    if not (args.start_postgres or args.postgres_url):
        raise SystemExit("give --start-postgres or --postgres-url")
    server_url = args.postgres_url or stack.enter_context(throwaway_postgres())
    url = stack.enter_context(postgres_database(server_url))
    secret = secrets.token_hex(24)
    env = _env(url, secret)
    app_cli(env, "db", "upgrade")
    app_cli(env, "demo-data", "--officers", str(officers))
    seeded = asyncio.run(seed(url, args.candidates))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return url, secret, env, seeded, port


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--candidates", type=int, default=2000)
    parser.add_argument(
        "--officers", type=int, default=None, help="demo officers (default: candidates + 100)"
    )
    parser.add_argument("--spread", type=float, default=60.0, help="seconds over which candidates start")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between autosaves")
    parser.add_argument("--duration", type=float, default=180.0, help="seconds until candidates submit")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-at", type=float, default=None, help="SIGKILL the server after S seconds")
    parser.add_argument(
        "--profile", type=Path, default=None, help="run one worker under cProfile, write the stats here"
    )
    parser.add_argument(
        "--client-gc",
        action="store_true",
        help="keep the client's cycle collector on during the run (its pauses then count as latency)",
    )
    parser.add_argument("--start-postgres", action="store_true")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL"))
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        t = time.perf_counter()
        url, secret, env, (session_id, part_id, accounts), port = prepare(
            stack, args, officers=args.officers or args.candidates + 100
        )
        print(
            f"seeded {len(accounts)} candidates in {time.perf_counter() - t:.0f} s (not measured)", flush=True
        )
        log = Path(tempfile.gettempdir()) / f"exam_day_server_{port}.log"
        if args.profile:
            args.workers = 1
        srv = stack.enter_context(server(env, port, args.workers, log, args.profile))
        print(
            f"server: {args.workers} workers on PostgreSQL; {args.candidates} candidates start within "
            f"{args.spread:g} s, autosave every {args.interval:g} s, submit at {args.duration:g} s",
            flush=True,
        )
        cpu0, load0 = time.process_time(), os.getloadavg()
        pauses: list[float] = []  # the client's own garbage-collection pauses (they delay its clock)
        began: list[float] = [0.0]

        def gc_pause(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                began[0] = time.perf_counter()
            elif info.get("generation") == 2:
                pauses.append(time.perf_counter() - began[0])

        gc.callbacks.append(gc_pause)
        # The client holds every candidate's paper (half a million objects at 4,000 candidates): a
        # full collection of that stopped its event loop for up to 0.7 s, timed as server latency.
        # It makes almost no garbage cycles, so it runs without the cycle collector (--client-gc on
        # turns it back on; the pauses are printed either way).
        if not args.client_gc:
            gc.disable()
        try:
            stats = asyncio.run(drive(args, port, secret, session_id, part_id, accounts, srv))
        finally:
            gc.enable()
            gc.callbacks.remove(gc_pause)
        client_cpu, load1 = time.process_time() - cpu0, os.getloadavg()
        elapsed = stats.errors.pop("_elapsed")
        acknowledged, lost, stale = asyncio.run(verify(url, stats))
        print(app_cli(env, "audit", "verify").strip().splitlines()[0], flush=True)
        save_window = max(1.0, args.duration - args.spread / 2)
        print(
            f"\ncandidates {args.candidates}: started {stats.started}, submitted {stats.submitted} in {elapsed} s"
        )
        print(
            f"paper fetch (start, 100 questions): n={len(stats.paper)} p50 {pct(stats.paper, 50):.0f} ms "
            f"p99 {pct(stats.paper, 99):.0f} ms max {max(stats.paper, default=0) * 1000:.0f} ms"
        )
        print(
            f"autosave: n={len(stats.save)} (~{len(stats.save) / save_window:.0f}/s) p50 {pct(stats.save, 50):.0f} ms "
            f"p99 {pct(stats.save, 99):.0f} ms max {max(stats.save, default=0) * 1000:.0f} ms"
        )
        phases = {
            "start spike": lambda t: t < args.spread,
            "steady": lambda t: args.spread <= t < args.duration - args.interval,
            "submit burst": lambda t: t >= args.duration - args.interval,
        }
        print(
            "autosave p99 by phase: "
            + ", ".join(
                f"{name} {pct([d for d, t in zip(stats.save, stats.save_at, strict=True) if inside(t)], 99):.0f} ms"
                for name, inside in phases.items()
            )
        )
        print(
            f"submit: n={len(stats.submit)} p50 {pct(stats.submit, 50):.0f} ms p99 {pct(stats.submit, 99):.0f} ms"
        )
        print(f"errors (retried): {stats.errors or 'none'}")
        print(
            f"client CPU {client_cpu:.0f} s of {elapsed} s; load average (1 min) "
            f"{load0[0]:.1f} before, {load1[0]:.1f} after"
        )
        print(
            f"client full GC pauses: {len(pauses)}, longest {max(pauses, default=0) * 1000:.0f} ms, "
            f"total {sum(pauses) * 1000:.0f} ms"
        )
        print(f"acknowledged answers {acknowledged}; lost {lost}; graded on an older answer {stale}")
        if stats.save:
            print(f"mean autosave {statistics.mean(stats.save) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
