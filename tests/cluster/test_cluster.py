"""Scale-out on loopback: the guarantees of one process, checked on `scripts/cluster.sh`'s cluster.

The cluster (PostgreSQL primary and streaming replica, Redis, three `app serve` instances of two
workers each under APP_ENV=production, HAProxy with TLS in front) is started by the script itself,
with a small demo province. Every request goes through HAProxy, which spreads them round robin and
names the instance that answered (``X-Served-By``); each simulated client connects from an address
of its own on 127.0.0.0/8, so the per-address limits see distinct clients (HAProxy replaces
X-Forwarded-For with the address it saw).

One test, checks in order (the cluster takes 30-50 s to start, and under pytest-xdist tests of one
module may run in different processes: one function keeps them on one cluster):

1. one lockout: parallel wrong passwords, spread over the instances, lock the account at exactly
   the configured count (4 refusals, then locked; 4 failure events and 1 lock in the audit trail);
2. shared limits: the public verify limit holds across instances (exactly the limit answered, the
   rest 429), not once per worker;
3. timed-out attempts graded exactly once: attempts past their time-up, two sweepers started at the
   same instant while the instances' own sweepers run: each attempt closed with one close event;
4. an instance killed with -9 mid exam day: candidates autosave without pause (retrying until a
   save is acknowledged, as the page does); every acknowledged save is in the database, and the
   candidates submit on the instances that remain;
5. the audit chain, written by every instance (and both sweepers) at once, verifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from app.accounts.models import Account, Officer
from app.db import make_engine, make_sessionmaker
from app.exams.models import ExamEnrolment, ExamPartRow, ExamSession
from app.exams.tasks import sweep_all
from app.lib.enums import EmploymentStatus
from app.lib.security import hash_password_sync
from app.settings import Settings

pytestmark = pytest.mark.slow  # a whole cluster in subprocesses, an instance killed: make test-slow

ROOT = Path(__file__).resolve().parents[2]
INSTANCES = {"app1", "app2", "app3"}
VERIFY_LIMIT = 20
"""The public verify limit per client and minute the cluster runs with (VERIFY_RATE_PER_MINUTE)."""
MAX_FAILURES = Settings.login_max_failures  # the cluster leaves it at its default
LOGIN_NAME_LIMIT = 20
"""Sign-in attempts per account name and minute (app.asgi's ``login_name_limiter``), shared in Redis."""
GUESSES = 19
"""Parallel wrong passwords from 19 addresses, under the name's limit with the right password after them."""
SWEPT = 10  # candidates whose attempts time out
SAVERS = 6  # candidates autosaving while an instance is killed
PASSWORD = "Cluster-2026-pass"


@dataclass
class Cluster:
    dir: Path
    settings: dict[str, str]

    @property
    def url(self) -> str:
        return self.settings["CLUSTER_URL"]

    @property
    def database_url(self) -> str:
        return self.settings["DATABASE_URL"]

    def client(self, address: str) -> httpx.AsyncClient:
        """A client connecting from ``address`` (127.x.y.z) to HAProxy, trusting the cluster's certificate."""
        tls = ssl.create_default_context(cafile=self.settings["CLUSTER_CA"])
        transport = httpx.AsyncHTTPTransport(local_address=address, verify=tls)
        return httpx.AsyncClient(base_url=self.url, transport=transport, timeout=30)

    def app(self, *args: str) -> subprocess.Popen[str]:
        """A console command against the cluster's primary, with the instances' settings."""
        return subprocess.Popen(  # noqa: S603 - our own console command, fixed arguments
            [sys.executable, "-m", "app", *args],
            cwd=ROOT,
            env={**os.environ, **self.settings},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def script(self, command: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return _cluster_sh(command, "--dir", str(self.dir), *args, timeout=timeout)

    def instance_pid(self, name: str) -> int:
        return int((self.dir / "run" / f"{name}.pid").read_text().split()[0])


def _cluster_sh(
    *args: str, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the harness under test, fixed arguments
        ["bash", str(ROOT / "scripts" / "cluster.sh"), *args],  # noqa: S607
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _logs(directory: Path) -> str:
    return "\n".join(
        f"--- {log.name} (last lines)\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        for log in sorted((directory / "logs").glob("*.log"))
    )


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    # Not pytest's tmp_path: its parents are private to root, and PostgreSQL runs as `postgres`.
    directory = Path(tempfile.mkdtemp(prefix="cluster-test."))
    env = {**os.environ, "VERIFY_RATE_PER_MINUTE": str(VERIFY_LIMIT)}
    t0 = time.monotonic()
    started = _cluster_sh(
        "start", "--dir", str(directory), "--demo", "200", "--no-fsync", timeout=900, env=env
    )
    try:
        if started.returncode != 0:
            pytest.fail(f"cluster.sh start failed:\n{started.stdout}\n{started.stderr}\n{_logs(directory)}")
        print(f"cluster up in {time.monotonic() - t0:.1f} s\n{started.stdout}")
        settings = dict(
            line.split("=", 1)
            for line in (directory / "cluster.env").read_text().splitlines()
            if line and not line.startswith("#")
        )
        yield Cluster(directory, settings)
    finally:
        stopped = _cluster_sh("stop", "--dir", str(directory), timeout=120)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        shutil.rmtree(directory)


@pytest.fixture
async def primary(cluster: Cluster) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(cluster.database_url, poolclass=NullPool)
    try:
        yield engine
    finally:
        await engine.dispose()


@dataclass
class Candidate:
    username: str
    http: httpx.AsyncClient
    headers: dict[str, str] = field(default_factory=dict)
    attempt: int = 0
    questions: list[dict[str, Any]] = field(default_factory=list)
    seq: int = 0


@dataclass
class Run:
    """What the checks saw: which instance answered each audited write."""

    audited_by: Counter[str] = field(default_factory=Counter)

    def served(self, response: httpx.Response) -> str:
        return response.headers.get("x-served-by", "?")

    def audited(self, response: httpx.Response) -> None:
        self.audited_by[self.served(response)] += 1


async def _csrf(http: httpx.AsyncClient) -> dict[str, str]:
    r = await http.get("/login")
    assert r.status_code == 200, r.text
    # APP_ENV=production: Secure cookies with the __Host- prefix (sent back by httpx over TLS only).
    return {"x-csrftoken": http.cookies["__Host-zf_csrf"], "accept": "application/json"}


async def _login(
    http: httpx.AsyncClient, username: str, password: str
) -> tuple[httpx.Response, dict[str, str]]:
    headers = await _csrf(http)
    r = await http.post("/api/auth/login", json={"username": username, "password": password}, headers=headers)
    return r, headers


# --- 1. one lockout --------------------------------------------------------------------------------


async def check_lockout(cluster: Cluster, db: AsyncSession, run: Run) -> None:
    officer = await db.scalar(select(Officer).order_by(Officer.id.desc()).limit(1))
    assert officer is not None
    db.add(
        Account(
            username="cluster_lock",
            display_name="锁定测试",
            password_hash=hash_password_sync(PASSWORD),
            role="agency_admin",
            agency_id=officer.agency_id,
            must_change_password=False,
        )
    )
    await db.commit()

    async def guess(k: int) -> httpx.Response:
        async with cluster.client(f"127.0.1.{k}") as http:
            r, _ = await _login(http, "cluster_lock", f"wrong-{k}")
            return r

    answers = await asyncio.gather(*(guess(k) for k in range(1, GUESSES + 1)))
    statuses = Counter(r.status_code for r in answers)
    served = {run.served(r) for r in answers}
    print(f"lockout: {GUESSES} parallel wrong passwords → {dict(statuses)}, answered by {sorted(served)}")
    assert served == INSTANCES, "the guesses were not spread over every instance"
    assert statuses == {401: MAX_FAILURES - 1, 423: GUESSES - MAX_FAILURES + 1}, statuses

    account = (
        await db.execute(
            text(
                "SELECT id, failed_logins, locked_until > now() AS locked FROM accounts WHERE username = 'cluster_lock'"
            )
        )
    ).one()
    assert account.locked and account.failed_logins == 0
    events = Counter(
        (
            await db.scalars(
                text(
                    "SELECT action FROM audit_events WHERE entity_type = 'account' AND entity_id = :id "
                    "UNION ALL SELECT action FROM audit_outbox WHERE entity_type = 'account' AND entity_id = :id"
                ),
                {"id": str(account.id)},
            )
        ).all()
    )
    assert events == {"account.login_failed": MAX_FAILURES - 1, "account.lock": 1}, events
    async with cluster.client("127.0.1.200") as http:  # the right password, now: still locked
        r, _ = await _login(http, "cluster_lock", PASSWORD)
        assert r.status_code == 423, r.text
        # Past the name's limit (shared by every instance), attempts are refused before argon2.
        later = [(await _login(http, "cluster_lock", PASSWORD))[0].status_code for _ in range(2)]
        assert later == [429, 429], later
    await db.commit()


# --- 2. shared limits ------------------------------------------------------------------------------


async def check_shared_verify_limit(cluster: Cluster, db: AsyncSession, run: Run) -> None:
    number = await db.scalar(text("SELECT number FROM certificates ORDER BY id LIMIT 1"))
    sent = VERIFY_LIMIT * 3
    async with cluster.client("127.0.2.1") as http:
        answers = [
            await http.get(f"/v/{number}", headers={"accept": "application/json"}) for _ in range(sent)
        ]
    statuses = Counter(r.status_code for r in answers)
    served = {run.served(r) for r in answers}
    print(f"verify limit {VERIFY_LIMIT}/min: {sent} lookups → {dict(statuses)}, answered by {sorted(served)}")
    assert served == INSTANCES
    # One client, one limit: with a limit per process, each of the 6 workers would let 20 through.
    assert statuses == {200: VERIFY_LIMIT, 429: sent - VERIFY_LIMIT}, statuses
    await db.commit()


# --- candidates ------------------------------------------------------------------------------------


async def enrol_candidates(db: AsyncSession, count: int) -> tuple[int, int, list[str]]:
    """Accounts for ``count`` active officers without one, enrolled in the demo session: (session, part, usernames)."""
    session_id = await db.scalar(select(ExamSession.id).order_by(ExamSession.id).limit(1))
    part_id = await db.scalar(
        select(ExamPartRow.id)
        .join(ExamSession, ExamSession.exam_id == ExamPartRow.exam_id)
        .where(ExamSession.id == session_id, ExamPartRow.part == "public")
    )
    assert session_id is not None and part_id is not None
    with_account = select(Account.officer_id).where(Account.officer_id.is_not(None))
    officers = (
        await db.execute(
            select(Officer.id, Officer.agency_id)
            .where(
                Officer.employment_status == EmploymentStatus.ACTIVE.value, Officer.id.not_in(with_account)
            )
            .order_by(Officer.id)
            .limit(count)
        )
    ).all()
    assert len(officers) == count
    enrolled = set(
        (
            await db.scalars(select(ExamEnrolment.officer_id).where(ExamEnrolment.session_id == session_id))
        ).all()
    )
    password_hash = hash_password_sync(PASSWORD)
    names = []
    for officer_id, agency_id in officers:
        names.append(f"cand{officer_id}")
        db.add(
            Account(
                username=names[-1],
                display_name=f"考生{officer_id}",
                password_hash=password_hash,
                role="officer",
                agency_id=agency_id,
                officer_id=officer_id,
                must_change_password=False,
            )
        )
        if officer_id not in enrolled:
            db.add(
                ExamEnrolment(session_id=session_id, officer_id=officer_id, created_by_name="cluster test")
            )
    await db.commit()
    return session_id, part_id, names


async def start_exam(
    cluster: Cluster,
    run: Run,
    stack: contextlib.AsyncExitStack,
    username: str,
    k: int,
    session_id: int,
    part_id: int,
) -> Candidate:
    http = await stack.enter_async_context(cluster.client(f"127.0.3.{k}"))
    r, headers = await _login(http, username, PASSWORD)
    assert r.status_code == 200, r.text
    run.audited(r)
    r = await http.post(f"/api/my/exams/sessions/{session_id}/parts/{part_id}/start", headers=headers)
    assert r.status_code == 200, r.text
    run.audited(r)
    paper = r.json()
    return Candidate(username, http, headers, attempt=paper["id"], questions=paper["questions"])


def _choice(q: dict[str, Any], rng: random.Random) -> list[int]:
    n = len(q["options"])
    return sorted(rng.sample(range(n), 2)) if q["type"] == "multiple" else [rng.randrange(n)]


def next_batch(c: Candidate, rng: random.Random) -> list[dict[str, Any]]:
    """1-3 changed answers with the next sequence numbers, as the page sends them."""
    batch = []
    for q in rng.sample(c.questions, rng.randint(1, 3)):
        c.seq += 1
        batch.append({"position": q["position"], "choice": _choice(q, rng), "seq": c.seq})
    return batch


async def save(c: Candidate, batch: list[dict[str, Any]]) -> httpx.Response | None:
    """The autosave; None when the connection failed."""
    try:
        return await c.http.put(
            f"/api/my/exams/attempts/{c.attempt}/answers", json={"answers": batch}, headers=c.headers
        )
    except httpx.TransportError:
        return None


# --- 3. timed-out attempts graded once -------------------------------------------------------------


async def check_sweep(cluster: Cluster, db: AsyncSession, run: Run, candidates: list[Candidate]) -> None:
    rng = random.Random(3)
    for c in candidates:  # a few answers each, so that grading has something to grade
        r = await save(c, next_batch(c, rng))
        assert r is not None and r.status_code == 200, r and r.text
    ids = [c.attempt for c in candidates]
    # Past the time-up and its grace, as if the candidates had left an hour ago.
    await db.execute(
        text("UPDATE exam_attempts SET deadline_at = now() - interval '1 hour' WHERE id = ANY(:ids)"),
        {"ids": ids},
    )
    await db.commit()
    # Two sweepers started at the same instant, each with an engine of its own (as two instances'
    # are), beside the instances' own: both find the same attempts and race for each. (Two
    # `app exams sweep` commands mostly did not overlap: one process was up before the other.)
    engines = [make_engine(cluster.database_url) for _ in range(2)]
    try:
        closed = await asyncio.gather(*(sweep_all(make_sessionmaker(e)) for e in engines))
    finally:
        for e in engines:
            await e.dispose()
    print(f"two sweepers at once closed {closed[0]} and {closed[1]} of {len(ids)} attempts")
    assert sum(closed) <= len(ids)

    rows = (
        await db.execute(
            text("SELECT id, status, closed_by, score FROM exam_attempts WHERE id = ANY(:ids)"), {"ids": ids}
        )
    ).all()
    assert {(r.status, r.closed_by) for r in rows} == {("closed", "timeout")}, rows
    assert all(r.score is not None for r in rows)
    closes = Counter(
        (
            await db.scalars(
                text(
                    "SELECT entity_id FROM audit_events WHERE action = 'exam.attempt.close' AND entity_id = ANY(:ids) "
                    "UNION ALL "
                    "SELECT entity_id FROM audit_outbox WHERE action = 'exam.attempt.close' AND entity_id = ANY(:ids)"
                ),
                {"ids": [str(i) for i in ids]},
            )
        ).all()
    )
    assert closes == {str(i): 1 for i in ids}, f"graded more than once or never: {closes}"
    await db.commit()


# --- 4. an instance killed with -9 mid exam day ----------------------------------------------------


async def check_instance_killed(
    cluster: Cluster, db: AsyncSession, run: Run, candidates: list[Candidate]
) -> None:
    acknowledged: dict[tuple[int, int, int], str] = {}  # (attempt, position, seq) → choice
    by_instance: Counter[str] = Counter()
    failures = Counter[str]()
    killed = asyncio.Event()
    stop = asyncio.Event()

    async def autosave(c: Candidate, rng: random.Random) -> None:
        while not stop.is_set():
            batch = next_batch(c, rng)
            while True:  # the same saves retried until acknowledged, as the page does
                after = " after the kill" if killed.is_set() else ""  # sent after it
                r = await save(c, batch)
                if r is not None and r.status_code == 200:
                    assert set(r.json()["saved"]) == {a["position"] for a in batch}, r.text
                    for a in batch:
                        acknowledged[(c.attempt, a["position"], a["seq"])] = ",".join(map(str, a["choice"]))
                    by_instance[run.served(r) + after] += 1
                    break
                failures["transport" if r is None else str(r.status_code)] += 1
                assert r is None or r.status_code in (502, 503), r.text  # only "try again" while it is away
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.05)

    savers = [asyncio.create_task(autosave(c, random.Random(k))) for k, c in enumerate(candidates)]
    await asyncio.sleep(2.0)
    os.killpg(cluster.instance_pid("app2"), signal.SIGKILL)  # its supervisor and both workers
    killed.set()
    await asyncio.sleep(3.0)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*savers), timeout=60)
    print(f"autosaves acknowledged by instance: {dict(by_instance)}; failed tries: {dict(failures)}")
    assert by_instance["app2"] >= 1, (
        "the killed instance acknowledged nothing before the kill: proved nothing"
    )
    assert sum(n for k, n in by_instance.items() if k.endswith("after the kill")) >= len(candidates)
    assert "app2 after the kill" not in by_instance

    status = cluster.script("status")
    assert status.returncode == 1 and any(
        line.split()[:2] == ["app2", "down"] for line in status.stdout.splitlines()
    ), status.stdout

    rows = (
        await db.execute(
            text("SELECT attempt_id, position, seq, choice FROM exam_answers WHERE attempt_id = ANY(:ids)"),
            {"ids": [c.attempt for c in candidates]},
        )
    ).all()
    stored = {(r.attempt_id, r.position, r.seq): r.choice for r in rows}
    lost = {k: v for k, v in acknowledged.items() if stored.get(k) != v}
    assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged answers lost: {sorted(lost)[:5]}"
    await db.commit()

    for c in candidates:  # on the instances that remain
        r = await c.http.post(f"/api/my/exams/attempts/{c.attempt}/submit", headers=c.headers)
        assert r.status_code == 200 and r.json()["status"] == "closed", r.text
        assert run.served(r) != "app2"
        run.audited(r)


# --- 5. the audit chain ----------------------------------------------------------------------------


def check_audit_chain(cluster: Cluster, run: Run) -> None:
    print(f"audited writes answered by instance: {dict(run.audited_by)}")
    assert set(run.audited_by) >= INSTANCES, "not every instance wrote to the audit trail"
    verify = cluster.app("audit", "verify", "--json")
    out, err = verify.communicate(timeout=120)
    assert verify.returncode == 0, out + err
    assert '"ok": true' in out, out
    print(out.strip())


async def test_cluster_keeps_one_process_guarantees(cluster: Cluster, primary: AsyncEngine) -> None:
    t0 = time.monotonic()
    run = Run()
    async with AsyncSession(primary, expire_on_commit=False) as db:
        await check_lockout(cluster, db, run)
        await check_shared_verify_limit(cluster, db, run)
        session_id, part_id, names = await enrol_candidates(db, SWEPT + SAVERS)
        async with contextlib.AsyncExitStack() as stack:
            candidates = await asyncio.gather(
                *(
                    start_exam(cluster, run, stack, name, k, session_id, part_id)
                    for k, name in enumerate(names, start=1)
                )
            )
            await check_sweep(cluster, db, run, candidates[:SWEPT])
            await check_instance_killed(cluster, db, run, candidates[SWEPT:])
    check_audit_chain(cluster, run)
    print(f"checks took {time.monotonic() - t0:.1f} s")
