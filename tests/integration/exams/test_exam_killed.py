"""Fault: the server killed (SIGKILL) in the middle of an exam, then started again.

The real server (``python -m app serve``, its own process group) runs on the test database with the
demo data. The demo officer logs in over HTTP, starts the public-law part and autosaves without pause,
as a browser does, retrying a save until it is acknowledged. While saves are in flight the whole
server is killed with SIGKILL and started again; the candidate keeps going, then submits.

What must hold:
- every save the server acknowledged (200) is in ``exam_answers`` with its choice; nothing there was
  never sent (no half-written or invented row), and the database is intact;
- after the restart the candidate gets the same attempt and paper back (``start`` resumes it), with
  the server's deadline unchanged and the newest acknowledged answer of every question;
- submitting grades it once (a repeated submit gives the same result).
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.servers import ROOT, Server, free_port

pytestmark = pytest.mark.slow  # the real server in a subprocess, killed with SIGKILL: make test-slow

OFFICER = ("zhifa01", "Demo-2026-officer")
SAVES_BEFORE_KILL_S = 1.5


@pytest.fixture
def server(database_url: str, db: AsyncSession, tmp_path: Path, workers: int) -> Iterator[Server]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "APP_ENV": "test",
        "APP_VAR_DIR": str(tmp_path),
        "SECRET_KEY": "k" * 40,
        "PYTHONUNBUFFERED": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "app", "demo-data", "--officers", "60"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    srv = Server(env, free_port(), tmp_path / "server.log", workers=workers)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _choice(q: dict[str, Any], rng: random.Random) -> list[int]:
    n = len(q["options"])
    return sorted(rng.sample(range(n), 2)) if q["type"] == "multiple" else [rng.randrange(n)]


@pytest.mark.parametrize(("streams", "workers"), [(1, 1), (8, 1), (8, 2)])
async def test_server_killed_mid_exam_loses_no_acknowledged_answer(
    server: Server, db: AsyncSession, streams: int, workers: int
) -> None:
    """``streams``: saves in flight at once (8: on SQLite the exam writer commits them in batches,
    several candidates' saves in one transaction, and the kill lands on batches in flight);
    ``workers``: server processes (2: on SQLite two writers, one per worker, share the file, and
    the whole server, supervisor and workers, is killed)."""
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        await http.get("/login")
        csrf = http.cookies["zf_csrf"]
        headers = {"x-csrftoken": csrf, "accept": "application/json"}
        r = await http.post(
            "/api/auth/login", json={"username": OFFICER[0], "password": OFFICER[1]}, headers=headers
        )
        assert r.status_code == 200, r.text
        (mine,) = (await http.get("/api/my/exams", headers=headers)).json()
        public = next(p for p in mine["parts"] if p["part"] == "public")
        start = f"/api/my/exams/sessions/{mine['session']['id']}/parts/{public['part_id']}/start"
        r = await http.post(start, headers=headers)
        assert r.status_code == 200, r.text
        paper = r.json()
        attempt, questions = paper["id"], paper["questions"]

        sent: dict[tuple[int, int], str] = {}  # (position, seq) → choice, every save sent
        acknowledged: dict[tuple[int, int], str] = {}
        failures = 0
        rng = random.Random(8)
        seq = 0
        stop = asyncio.Event()

        async def autosave() -> None:
            nonlocal seq, failures
            while not stop.is_set():
                batch = []
                for q in rng.sample(questions, rng.randint(1, 3)):
                    seq += 1  # one counter for every stream: no (position, seq) is sent twice
                    batch.append({"position": q["position"], "choice": _choice(q, rng), "seq": seq})
                    sent[(q["position"], seq)] = ",".join(map(str, batch[-1]["choice"]))
                while True:  # retried until acknowledged, as the page does
                    try:
                        r = await http.put(
                            f"/api/my/exams/attempts/{attempt}/answers",
                            json={"answers": batch},
                            headers=headers,
                        )
                        if r.status_code == 200:
                            saved = set(r.json()["saved"])
                            assert saved == {a["position"] for a in batch}, r.text
                            for a in batch:
                                acknowledged[(a["position"], a["seq"])] = sent[(a["position"], a["seq"])]
                            break
                        assert r.status_code == 503, r.text  # only "try again" while the server is away
                    except httpx.TransportError:
                        pass
                    failures += 1
                    await asyncio.sleep(0.2)

        savers = [asyncio.create_task(autosave()) for _ in range(streams)]
        await asyncio.sleep(SAVES_BEFORE_KILL_S)
        before_kill = len(acknowledged)
        assert before_kill >= 5, "too few saves before the kill to prove anything"
        await asyncio.to_thread(server.kill9)  # saves in flight: some are never acknowledged
        killed_at = time.monotonic()
        await asyncio.sleep(0.5)
        await asyncio.to_thread(server.start)
        restarted_in = time.monotonic() - killed_at
        await asyncio.sleep(1.0)  # the candidate goes on saving on the restarted server
        stop.set()
        await asyncio.wait_for(asyncio.gather(*savers), timeout=30)
        assert failures >= 1, "no save hit the dead server: the kill proved nothing"
        assert len(acknowledged) > before_kill
        print(
            f"saves sent {len(sent)}, acknowledged {len(acknowledged)} ({before_kill} before the kill), "
            f"failed tries {failures}, server back in {restarted_in:.1f} s"
        )

        # Resumed: `start` gives back the same attempt and paper; the deadline is the server's, unchanged.
        r = await http.post(start, headers=headers)
        assert r.status_code == 200, r.text
        resumed = r.json()
        assert resumed["id"] == attempt and resumed["status"] == "open"
        assert resumed["questions"] == questions
        assert resumed["deadline_at"] == paper["deadline_at"]
        assert 0 < resumed["seconds_left"] <= paper["seconds_left"] - int(restarted_in)
        newest: dict[int, tuple[int, str]] = {}
        for (position, s), choice in acknowledged.items():
            if s > newest.get(position, (0, ""))[0]:
                newest[position] = (s, choice)
        shown = {a["position"]: (a["seq"], ",".join(map(str, a["choice"]))) for a in resumed["answers"]}
        for position, (s, choice) in newest.items():
            # The newest acknowledged save shows, unless a later save (sent as the server died) also landed.
            got = shown[position]
            assert got == (s, choice) or (got[0] > s and sent[(position, got[0])] == got[1]), position

        # In the database: every acknowledged save, and nothing that was not sent.
        rows = (
            await db.execute(
                text("SELECT position, seq, choice FROM exam_answers WHERE attempt_id = :a"), {"a": attempt}
            )
        ).all()
        stored = {(int(p), int(s)): str(c) for p, s, c in rows}
        lost = {k: v for k, v in acknowledged.items() if stored.get(k) != v}
        assert not lost, f"{len(lost)} acknowledged answers lost"
        assert all(sent.get(k) == v for k, v in stored.items()), "a stored answer was never sent"
        open_attempts = (
            await db.execute(
                text(
                    "SELECT count(*) FROM exam_attempts WHERE officer_id = (SELECT officer_id FROM exam_attempts WHERE id = :a)"
                ),
                {"a": attempt},
            )
        ).scalar_one()
        assert open_attempts == 1  # no second attempt started after the restart
        if db.bind.dialect.name == "sqlite":
            assert (await db.execute(text("PRAGMA integrity_check"))).scalar_one() == "ok"
        await db.commit()

        # Submitting grades it once, on the newest answers.
        r = await http.post(f"/api/my/exams/attempts/{attempt}/submit", headers=headers)
        assert r.status_code == 200, r.text
        result = r.json()
        assert result["status"] == "closed" and result["result"]["score"] is not None
        again = (await http.post(f"/api/my/exams/attempts/{attempt}/submit", headers=headers)).json()
        assert again["result"]["score"] == result["result"]["score"]
