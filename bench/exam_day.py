"""Exam day as candidates' browsers run it: many candidates start within a minute, load the exam page,
autosave as the page's script does, submit; on SQLite as `make run` serves it, or on PostgreSQL.
Afterwards every acknowledged answer is looked up in the database.

    .venv/bin/python bench/exam_day.py                                   # SQLite, 300 candidates
    .venv/bin/python bench/exam_day.py --engine sqlite --candidates 10000
    .venv/bin/python bench/exam_day.py --engine postgresql --start-postgres --workers 2 --candidates 20000
    .venv/bin/python bench/exam_day.py --candidates 2000 --kill-at 90   # kill -9 the server mid-run

What one run does:
1. a fresh database (`app db upgrade`, `app demo-data --officers N`), one officer account per
   candidate (all with one password), an exam whose public part draws 100 questions, a session open
   now, every candidate enrolled (not timed);
2. the server as it is run: `app serve` (SQLite: the workers it chooses, as `make run` starts it;
   PostgreSQL: `--workers`, default 2), with its time-up sweep and audit drain;
3. the waiting room, before the exam (not part of the phases): each candidate's browser opens
   `/login` (the CSRF cookie and the form's token), signs in through the form (`--logins` of them:
   argon2 costs ~150 ms of server CPU per login by design, 25 CPU-minutes for 10,000, so the rest get
   the session cookie a login sets, made with the server's secret) and opens 我的考试 (`/my/exams`);
4. the exam, each candidate on one keep-alive connection from an address of its own (127.x.y.z):
   - start, within the first `--spread` seconds: the page's start form is posted (its CSRF token),
     the redirect followed to the exam page (the paper, server-rendered), its script and style sheet
     fetched unless the browser's cache holds them (each page's assets are loaded as a browser does,
     kept as long as their `Cache-Control: max-age` says: the log-in page's style sheet is the exam
     page's);
   - autosave, what `app/static/js/exam.js` sends: `PUT /api/my/exams/attempts/{id}/answers`,
     headers `content-type: application/json`, `x-csrftoken` (the page's meta tag), `accept`, the
     body `{"answers":[{"position":…,"choice":[…],"seq":…}]}` with the pending changes (1–3 per
     save, one save per `--interval` seconds on average, seq +1 per change, starting at the page's
     `data-max-seq`); a failed save is retried until acknowledged, as the page does after 3 s;
   - submit, at `--duration` minus up to one interval (the burst): the page's flush, then
     `POST …/submit` with `prefer: return=minimal`, then the result page (`location.replace`).
5. figures per phase (start: the first `--spread` s; steady; submit burst: the last `--interval` s):
   latency p50/p99, errors, server CPU; acknowledged answers against what `exam_answers` holds
   (lost = acknowledged but not stored), the audit outbox and chain, the client's own CPU and loop
   lag (how late a 10 ms sleep wakes: what the client adds to every latency), the load average.
   Nothing is reniced.

The client is a lean HTTP/1.1 keep-alive client on asyncio streams (`bench/httpkit.py`; cookies,
redirects, CSRF token): httpx spends more CPU per request than the server does, which on this shared
2-core machine would make the load generator what is measured. Its own CPU time is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import os
import random
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.httpkit import KeepAlive, session_cookie, wait_healthy
from bench.training import _libpq, postgres_database, throwaway_postgres

ROOT = Path(__file__).resolve().parent.parent
BLUEPRINT = [
    ("public_law", "single", 50, 1.0),
    ("public_law", "multiple", 20, 1.0),
    ("public_law", "judge", 20, 1.0),
    ("new_law", "single", 10, 1.0),
]
PASSWORD = "Bench-2026-candidate"  # noqa: S105 - the bench accounts' password
PHASES = ("start", "steady", "burst")


def _env(url: str, secret: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "APP_ENV": "development",
        "SECRET_KEY": secret,
        "PYTHONUNBUFFERED": "1",
    }


def app_cli(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"`app {' '.join(args)}` failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


async def seed(url: str, candidates: int) -> tuple[int, int, list[tuple[int, str]]]:
    """Accounts, the 100-question exam, an open session, enrolments. (session, part, [(account id, username)])."""
    from sqlalchemy import select

    from app.accounts.models import Account, Officer
    from app.db import make_engine, make_sessionmaker
    from app.exams.models import Exam, ExamEnrolment, ExamPartRow, ExamSession
    from app.lib.clock import utcnow
    from app.lib.security import pwd_context

    password_hash = pwd_context.hash(PASSWORD)  # one hash for all: the server verifies it at full cost
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
                    password_hash=password_hash,
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
            return session.id, part.id, [(a.id, a.username) for a in accounts]
    finally:
        await engine.dispose()


def process_cpu(pgid: int) -> float:
    """CPU seconds (user + system) of every process in the server's process group."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 of stat: the process group
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def chosen_workers(log: Path) -> int:
    """The worker processes ``app serve`` chose, from its start-up line (``运行配置：… N 个工作进程``)."""
    found = re.search(r"运行配置：\S*?(\d+) 个工作进程|运行配置：.*单进程", log.read_text(errors="replace"))
    return int(found.group(1)) if found and found.group(1) else 1


@contextlib.contextmanager
def server(
    env: dict[str, str], port: int, workers: int | None, log: Path, *, cwd: Path = ROOT
) -> Iterator[Any]:
    """``app serve`` of the checkout ``cwd`` (this one unless an A/B bench names another)."""
    holder: dict[str, subprocess.Popen[bytes]] = {}

    def start() -> None:
        out = log.open("ab")
        more = ["--workers", str(workers)] if workers else []  # SQLite: `app serve` as `make run` runs it
        holder["proc"] = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port), *more],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_healthy(port)

    def kill9() -> None:
        os.killpg(holder["proc"].pid, signal.SIGKILL)
        holder["proc"].wait()

    # The server runs in a session of its own (a kill -9 test kills its group): a bench stopped by
    # SIGTERM (kill, pkill, timeout) exits through the cleanup below instead of leaving it running.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    start()
    try:
        yield type(
            "Server",
            (),
            {
                "start": staticmethod(start),
                "kill9": staticmethod(kill9),
                "cpu": staticmethod(lambda: process_cpu(holder["proc"].pid)),
            },
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(holder["proc"].pid, signal.SIGTERM)
        holder["proc"].wait(timeout=30)
        signal.signal(signal.SIGTERM, previous)


class HttpError(Exception):
    pass


class Browser(KeepAlive):
    """One candidate's browser: one keep-alive HTTP/1.1 connection from its own loopback address,
    a cookie jar (Set-Cookie kept, sent back), redirects followed (303 → GET)."""

    def __init__(self, port: int, address: str) -> None:
        super().__init__(port, address)
        self.cookies: dict[str, str] = {}
        self.cached: dict[str, float] = {}  # the HTTP cache: address -> fresh until (perf_counter)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers by lower-case name, body). One retry on a connection closed under it."""
        head = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if self.cookies:
            head.append("cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if body or method in ("POST", "PUT"):
            head.append(f"content-length: {len(body)}")
        status, got, cookies, data = await self.exchange(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        for cookie in cookies:
            self._keep_cookie(cookie)
        return status, got, data

    def _keep_cookie(self, value: str) -> None:
        pair, _, attributes = value.partition(";")
        name, _, content = pair.partition("=")
        if "max-age=0" in attributes.lower().replace(" ", "") or content in ("", '""', "null"):
            self.cookies.pop(name.strip(), None)
        else:
            self.cookies[name.strip()] = content.strip()

    async def get(self, path: str, *, expect: int = 200) -> bytes:
        status, headers, data = await self.request("GET", path, headers={"accept": "text/html"})
        if status == 303 or status == 302:
            return await self.get(headers["location"], expect=expect)
        if status != expect:
            raise HttpError(f"GET {status}")
        return data

    async def assets(self, page: bytes) -> None:
        """What the browser loads for a page: its style sheets and scripts, unless its HTTP cache holds
        them fresh (``Cache-Control: max-age``; ``no-store``, ``no-cache`` or none: fetched again)."""
        for asset in dict.fromkeys(a.decode() for a in _ASSETS.findall(page)):
            if self.cached.get(asset, 0.0) > time.perf_counter():
                continue
            status, headers, _data = await self.request("GET", asset)
            if status != 200:
                raise HttpError(f"asset {status}")
            control = headers.get("cache-control", "")
            age = re.search(r"max-age=(\d+)", control)
            if age and "no-store" not in control and "no-cache" not in control:
                self.cached[asset] = time.perf_counter() + int(age.group(1))

    async def post_form(self, path: str, fields: dict[str, str]) -> tuple[int, bytes]:
        """A form post; a redirect is followed (the page it loads is the answer)."""
        body = urllib.parse.urlencode(fields).encode()
        status, headers, data = await self.request(
            "POST",
            path,
            body,
            {"content-type": "application/x-www-form-urlencoded", "accept": "text/html"},
        )
        if status in (302, 303):
            return 200, await self.get(headers["location"])
        return status, data


_TOKEN = re.compile(rb'name="_csrf_token" value="([^"]+)"')
_META = re.compile(rb'<meta name="csrf-token" content="([^"]+)"')
_START = re.compile(rb'action="(/my/exams/sessions/\d+/parts/\d+/start)"')
_EXAM = re.compile(rb'data-attempt="(\d+)"[^>]*data-max-seq="(\d+)"')
_QUESTION = re.compile(rb'data-position="(\d+)" data-type="(\w+)"')
_ASSETS = re.compile(rb'(?:href|src)="(/static/[^"]+)"')


def token_of(page: bytes, pattern: re.Pattern[bytes] = _TOKEN) -> str:
    found = pattern.search(page)
    if found is None:
        raise HttpError("no CSRF token in the page")
    return found.group(1).decode()


@dataclass
class Stats:
    latency: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: {k: {p: [] for p in PHASES} for k in ("start", "save", "submit")}
    )
    errors: dict[str, dict[str, int]] = field(default_factory=lambda: {p: {} for p in PHASES})
    login: list[float] = field(default_factory=list)
    lag: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})
    """The client's own loop lag per phase (how late a 10 ms sleep wakes): the part of every
    latency above that the client, not the server, added."""
    acknowledged: list[tuple[int, int, int, str]] = field(default_factory=list)
    started: int = 0
    submitted: int = 0
    t0: float = 0.0
    spread: float = 60.0
    burst_from: float = 150.0

    def phase(self, at: float) -> str:
        t = at - self.t0
        return "start" if t < self.spread else "burst" if t >= self.burst_from else "steady"

    def took(self, kind: str, began: float) -> None:
        self.latency[kind][self.phase(began)].append(time.perf_counter() - began)

    def error(self, kind: str) -> None:
        errors = self.errors[self.phase(time.perf_counter())]
        errors[kind] = errors.get(kind, 0) + 1


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000


@dataclass
class Candidate:
    account_id: int
    username: str
    address: str
    browser: Browser
    start_path: str = ""
    start_token: str = ""


async def waiting_room(c: Candidate, stats: Stats, *, form_login: bool, cookie: str) -> None:
    """Before the exam: the login page (CSRF cookie and token), the login form (or the cookie it sets),
    then 我的考试 with the start form."""
    b = c.browser
    for attempt in range(20):
        try:
            login_page = await b.get("/login")
            await b.assets(login_page)
            if form_login:
                began = time.perf_counter()
                status, _page = await b.post_form(
                    "/login",
                    {
                        "_csrf_token": token_of(login_page),
                        "next": "/my/exams",
                        "username": c.username,
                        "password": PASSWORD,
                    },
                )
                if status != 200:
                    raise HttpError(f"login {status}")
                stats.login.append(time.perf_counter() - began)
            else:
                b.cookies["zf_session"] = cookie
            mine = await b.get("/my/exams")
            await b.assets(mine)
            found = _START.search(mine)
            if found is None:
                raise HttpError("no start form")
            c.start_path, c.start_token = found.group(1).decode(), token_of(mine)
            return
        except (HttpError, OSError, ConnectionError, asyncio.IncompleteReadError) as exc:
            if attempt == 19:
                raise SystemExit(f"{c.username} could not get into the waiting room: {exc!r}") from exc
            await asyncio.sleep(1 + attempt)


async def exam(
    c: Candidate, stats: Stats, *, start_at: float, interval: float, end_at: float, rng: random.Random
) -> None:
    b = c.browser
    await asyncio.sleep(max(0.0, stats.t0 + start_at - time.perf_counter()))
    while True:
        began = time.perf_counter()
        try:
            status, page = await b.post_form(c.start_path, {"_csrf_token": c.start_token})
            if status == 200 and (found := _EXAM.search(page)):
                await b.assets(page)  # the page's script and style, unless the browser holds them
                stats.took("start", began)
                break
            stats.error(f"start {status}")
        except Exception as exc:  # the server may be down (--kill-at): retry
            stats.error(f"start {type(exc).__name__}")
        await asyncio.sleep(1 + rng.random())
    stats.started += 1
    attempt, seq = int(found.group(1)), int(found.group(2))
    csrf = token_of(page, _META)
    chunks = page.split(b'<fieldset class="question"')[1:]
    questions = [
        (int(m.group(1)), m.group(2).decode(), chunk.count(b'class="option"'))
        for chunk in chunks
        if (m := _QUESTION.search(chunk))
    ]
    api = f"/api/my/exams/attempts/{attempt}"
    save_headers = {"content-type": "application/json", "x-csrftoken": csrf, "accept": "application/json"}
    next_save = time.perf_counter() + rng.uniform(0, interval)
    last = stats.t0 + end_at - rng.uniform(0, interval)  # the candidate's submit time
    while next_save < last:
        await asyncio.sleep(max(0.0, next_save - time.perf_counter()))
        pending: dict[int, dict[str, Any]] = {}
        for position, kind, n in rng.sample(questions, rng.randint(1, 3)):
            seq += 1
            choice = sorted(rng.sample(range(n), 2)) if kind == "multiple" else [rng.randrange(n)]
            pending[position] = {"position": position, "choice": choice, "seq": seq}
        # JSON.stringify({answers: items}) of the page: pending in key order, no spaces.
        body = json.dumps({"answers": [pending[k] for k in sorted(pending)]}, separators=(",", ":")).encode()
        while True:  # a failed save is retried until acknowledged, as the page does
            began = time.perf_counter()
            try:
                status, _h, data = await b.request("PUT", api + "/answers", body, save_headers)
                if status == 200:
                    stats.took("save", began)
                    saved = set(json.loads(data)["saved"])
                    stats.acknowledged.extend(
                        (attempt, a["position"], a["seq"], ",".join(map(str, a["choice"])))
                        for a in pending.values()
                        if a["position"] in saved
                    )
                    break
                stats.error(f"save {status}")
                if status == 409:  # the page reloads; the bench stops saving
                    break
            except Exception as exc:
                stats.error(f"save {type(exc).__name__}")
            await asyncio.sleep(3)
        next_save += interval * rng.uniform(0.5, 1.5)
    await asyncio.sleep(max(0.0, last - time.perf_counter()))
    submit_headers = {"x-csrftoken": csrf, "accept": "application/json", "prefer": "return=minimal"}
    while True:
        began = time.perf_counter()
        try:
            status, _h, data = await b.request("POST", api + "/submit", b"", submit_headers)
            if status == 200 and b'"status":"closed"' in data:
                result = await b.get(f"/my/exams/attempts/{attempt}")  # location.replace(pathname)
                if "成绩".encode() not in result and "交卷".encode() not in result:
                    raise HttpError("result page")
                stats.took("submit", began)
                stats.submitted += 1
                b.close()
                return
            stats.error(f"submit {status}")
            if status not in (502, 503):
                b.close()
                return
        except Exception as exc:
            stats.error(f"submit {type(exc).__name__}")
        await asyncio.sleep(1 + rng.random())


def address_of(i: int) -> str:
    """A loopback address of its own per candidate (the login limit is per address, as in an exam hall)."""
    n = i + 256
    return f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255 or 1}"


async def drive(
    args: argparse.Namespace, port: int, secret: str, accounts: list[tuple[int, str]], srv: Any
) -> tuple[Stats, dict[str, float]]:
    stats = Stats(spread=args.spread, burst_from=args.duration - args.interval)
    people = [
        Candidate(a, u, address_of(i), Browser(port, address_of(i))) for i, (a, u) in enumerate(accounts)
    ]
    logins = min(args.logins, len(people))
    cookies = await asyncio.to_thread(lambda: [session_cookie(secret, c.account_id) for c in people[logins:]])
    cookies = [""] * logins + cookies
    t = time.perf_counter()
    gate = asyncio.Semaphore(200)

    async def enter(i: int) -> None:
        async with gate:
            await waiting_room(people[i], stats, form_login=i < logins, cookie=cookies[i])

    await asyncio.gather(*(enter(i) for i in range(len(people))))
    print(
        f"waiting room: {len(people)} candidates in {time.perf_counter() - t:.0f} s, {logins} through the login"
        f" form (p50 {pct(stats.login, 50):.0f} ms, p99 {pct(stats.login, 99):.0f} ms), the rest with the cookie"
        " a login sets; each opened /login and 我的考试",
        flush=True,
    )
    rng = random.Random(7)
    cpu: dict[str, float] = {}
    stats.t0 = time.perf_counter()
    client0 = time.process_time()

    async def marks() -> None:
        """The server's CPU time at the phase boundaries."""
        cpu["t0"] = srv.cpu()
        await asyncio.sleep(args.spread)
        cpu["start"] = srv.cpu()
        await asyncio.sleep(max(0.0, stats.burst_from - args.spread))
        cpu["steady"] = srv.cpu()

    async def killer() -> None:
        if args.kill_at is None:
            return
        await asyncio.sleep(args.kill_at)
        print(f"  t={time.perf_counter() - stats.t0:.0f}s: kill -9 the server", flush=True)
        await asyncio.to_thread(srv.kill9)
        await asyncio.sleep(1)
        await asyncio.to_thread(srv.start)
        print(f"  t={time.perf_counter() - stats.t0:.0f}s: server back", flush=True)

    async def progress() -> None:
        while True:
            await asyncio.sleep(15)
            print(
                f"  t={time.perf_counter() - stats.t0:.0f}s started {stats.started} "
                f"saves {sum(len(v) for v in stats.latency['save'].values())} submitted {stats.submitted} "
                f"errors {sum(sum(e.values()) for e in stats.errors.values())} load {os.getloadavg()[0]:.1f}",
                flush=True,
            )

    async def lagger() -> None:
        while True:
            began = time.perf_counter()
            await asyncio.sleep(0.01)
            stats.lag[stats.phase(began)].append(time.perf_counter() - began - 0.01)

    ticker = asyncio.create_task(progress())
    lagging = asyncio.create_task(lagger())
    marker = asyncio.create_task(marks())
    await asyncio.gather(
        killer(),
        *(
            exam(
                c,
                stats,
                start_at=rng.uniform(0, args.spread),
                interval=args.interval,
                end_at=args.duration,
                rng=random.Random(i),
            )
            for i, c in enumerate(people)
        ),
    )
    ticker.cancel()
    lagging.cancel()
    cpu["burst"] = srv.cpu()
    marker.cancel()
    cpu["elapsed"] = time.perf_counter() - stats.t0
    cpu["client"] = time.process_time() - client0
    return stats, cpu


async def stored_answers(url: str) -> tuple[dict[tuple[int, int, int], str], dict[str, Any]]:
    """Every (attempt, position, seq) → choice in ``exam_answers``, and the audit and attempt counts."""
    queries = {
        "open": "SELECT count(*) FROM exam_attempts WHERE status = 'open'",
        "attempts": "SELECT count(*) FROM exam_attempts",
        "closed": "SELECT count(*) FROM exam_attempts WHERE status = 'closed'",
        "outbox": "SELECT count(*) FROM audit_outbox",
        "chained_saves": "SELECT count(*) FROM audit_events WHERE action = 'exam.answers.save'",
        "chained_closes": "SELECT count(*) FROM audit_events WHERE action = 'exam.attempt.close'",
    }
    rows_sql = "SELECT attempt_id, position, seq, choice FROM exam_answers"
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.split("///", 1)[1])
        try:
            for _ in range(20):  # the drain empties the outbox within a second or two
                if not conn.execute(queries["outbox"]).fetchone()[0]:
                    break
                await asyncio.sleep(0.5)
            rows = conn.execute(rows_sql).fetchall()
            counts = {k: conn.execute(q).fetchone()[0] for k, q in queries.items()}
        finally:
            conn.close()
    else:
        import asyncpg

        pg = await asyncpg.connect(_libpq(url))
        try:
            for _ in range(20):
                if not await pg.fetchval(queries["outbox"]):
                    break
                await asyncio.sleep(0.5)
            rows = [tuple(r) for r in await pg.fetch(rows_sql)]
            counts = {k: await pg.fetchval(q) for k, q in queries.items()}
        finally:
            await pg.close()
    return {(a, p, s): c for a, p, s, c in rows}, counts


def prepare(
    stack: contextlib.ExitStack, args: argparse.Namespace
) -> tuple[str, dict[str, str], str, Any, int]:
    """A fresh database, migrated, with demo officers and the candidates. (url, env, secret, seed, port)."""
    if args.engine == "postgresql":
        server_url = args.postgres_url or (
            stack.enter_context(throwaway_postgres()) if args.start_postgres else None
        )
        if server_url is None:
            raise SystemExit("--engine postgresql needs --start-postgres or --postgres-url")
        url = stack.enter_context(postgres_database(server_url))
    else:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="exam-day-", dir=args.sqlite_dir))
        url = f"sqlite+aiosqlite:///{folder}/app.db"
    secret = secrets.token_hex(24)
    env = _env(url, secret)
    app_cli(env, "db", "upgrade")
    app_cli(env, "demo-data", "--officers", str(args.officers or args.candidates + 100))
    seeded = asyncio.run(seed(url, args.candidates))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return url, env, secret, seeded, port


def report(
    args: argparse.Namespace,
    stats: Stats,
    cpu: dict[str, float],
    stored: dict[Any, str],
    counts: dict[str, Any],
    client_cpu: float,
    load: tuple[float, float],
) -> None:
    acknowledged = len(stats.acknowledged)
    lost = sum(1 for a, p, s, c in stats.acknowledged if stored.get((a, p, s)) != c)
    bounds = {
        "start": (cpu["t0"], cpu["start"]),
        "steady": (cpu["start"], cpu["steady"]),
        "burst": (cpu["steady"], cpu["burst"]),
    }
    lengths = {
        "start": args.spread,
        "steady": stats.burst_from - args.spread,
        "burst": cpu["elapsed"] - stats.burst_from,
    }
    print(
        f"\n{args.engine}, {args.workers} worker process(es){' (app serve chose)' if args.chosen else ''}: "
        f"{args.candidates} candidates, started {stats.started}, submitted {stats.submitted} in {cpu['elapsed']:.0f} s"
    )
    print(
        "| phase | start (post + page + assets) p50 / p99 | autosave p50 / p99 (n) | submit + result page p50 / p99 | errors | server CPU |"
    )
    print("|---|---|---|---|---|---|")
    for p in PHASES:
        lat = {k: v[p] for k, v in stats.latency.items()}
        low, high = bounds[p]
        cells = [
            f"{pct(lat['start'], 50):.0f} / {pct(lat['start'], 99):.0f} ms" if lat["start"] else "–",
            f"{pct(lat['save'], 50):.0f} / {pct(lat['save'], 99):.0f} ms ({len(lat['save'])})"
            if lat["save"]
            else "–",
            f"{pct(lat['submit'], 50):.0f} / {pct(lat['submit'], 99):.0f} ms" if lat["submit"] else "–",
            ", ".join(f"{k} ×{n}" for k, n in sorted(stats.errors[p].items())) or "0",
            f"{(high - low) / max(lengths[p], 1):.2f} cores",
        ]
        print(f"| {p} | " + " | ".join(cells) + " |")
    print(
        f"acknowledged answers {acknowledged}; **lost {lost}**; attempts {counts['attempts']}, closed {counts['closed']},"
        f" open {counts['open']}; audit outbox left {counts['outbox']}, chained saves {counts['chained_saves']},"
        f" closes {counts['chained_closes']}"
    )
    print(
        "the client's own loop lag (a 10 ms sleep woken late) p50 / p99 / max: "
        + "; ".join(
            f"{p} {pct(stats.lag[p], 50):.0f} / {pct(stats.lag[p], 99):.0f} / {max(stats.lag[p], default=0) * 1000:.0f} ms"
            for p in PHASES
        )
    )
    print(
        f"client CPU (the exam phases) {client_cpu:.0f} s in {cpu['elapsed']:.0f} s ({client_cpu / cpu['elapsed']:.2f} cores); "
        f"load average (1 min) {load[0]:.1f} before, {load[1]:.1f} after; {os.cpu_count()} cores; not reniced"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--candidates", type=int, default=300)
    parser.add_argument(
        "--officers", type=int, default=None, help="demo officers (default: candidates + 100)"
    )
    parser.add_argument(
        "--logins", type=int, default=100, help="candidates who sign in through the login form"
    )
    parser.add_argument("--spread", type=float, default=60.0, help="seconds over which candidates start")
    parser.add_argument("--interval", type=float, default=30.0, help="mean seconds between autosaves")
    parser.add_argument("--duration", type=float, default=180.0, help="seconds until the last submits")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server processes (default: what `app serve` chooses on SQLite, as `make run`; 2 on PostgreSQL)",
    )
    parser.add_argument("--kill-at", type=float, default=None, help="SIGKILL the server after S seconds")
    parser.add_argument("--start-postgres", action="store_true")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL"))
    parser.add_argument(
        "--sqlite-dir", default=None, help="where the SQLite file lives (default: the temp dir)"
    )
    args = parser.parse_args()
    args.chosen = args.workers is None and args.engine == "sqlite"
    if args.engine == "postgresql" and args.workers is None:
        args.workers = 2
    with contextlib.ExitStack() as stack:
        t = time.perf_counter()
        url, env, secret, (_session_id, _part_id, accounts), port = prepare(stack, args)
        print(
            f"seeded {len(accounts)} candidates in {time.perf_counter() - t:.0f} s (not measured)", flush=True
        )
        log = Path(tempfile.gettempdir()) / f"exam_day_server_{port}.log"
        srv = stack.enter_context(server(env, port, args.workers, log))
        args.workers = args.workers or chosen_workers(log)
        print(
            f"server: {args.engine}, {args.workers} worker process(es), log {log}; {args.candidates} candidates start"
            f" within {args.spread:g} s, autosave every ~{args.interval:g} s, submit by {args.duration:g} s",
            flush=True,
        )
        # The client holds every candidate's state: without the cycle collector, none of its pauses
        # is timed as server latency (it makes almost no cycles).
        gc.disable()
        load0 = os.getloadavg()[0]
        try:
            stats, cpu = asyncio.run(drive(args, port, secret, accounts, srv))
        finally:
            gc.enable()
        client_cpu, load1 = cpu["client"], os.getloadavg()[0]
        stored, counts = asyncio.run(stored_answers(url))
        print(app_cli(env, "audit", "verify").strip().splitlines()[0], flush=True)
        report(args, stats, cpu, stored, counts, client_cpu, (load0, load1))


if __name__ == "__main__":
    main()
