"""CPU per exam-day request, one kind at a time: where the exam-day budget goes.

One server process (1 worker) on PostgreSQL, N candidates, each request kind sent N times in
turn, sequentially (no queueing, no contention). For each kind it prints the CPU time the server
process and the PostgreSQL backends spent per request (from /proc), and the wall time. The JSON
API kinds are what ``bench/exam_day.py`` sends; the page kinds are what a browser does instead
(the exam page's form posts, and the pages they redirect to).

    .venv/bin/python bench/exam_request_cost.py --postgres-url postgresql://postgres@127.0.0.1:55432/postgres --candidates 500

Sequential and single-process, the figures are a price list, not a capacity: a phase that
happens to include a background step (the audit outbox drain runs every second) costs more,
so they move by about ±30% from run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.exam_day import prepare, server
from bench.httpkit import Conn, csrf_token, session_cookie

_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / _TICK


def _processes(named: Callable[[int, str, str], bool]) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                comm = Path(f"/proc/{entry}/comm").read_text().strip()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
                if named(int(entry), comm, cmdline):
                    out.add(int(entry))
    return out


async def run(
    port: int, secret: str, session_id: int, part_id: int, accounts: list[tuple[int, str]], database: str
) -> None:
    csrf = await asyncio.to_thread(csrf_token, port)
    conns = [
        Conn(
            port,
            {
                "cookie": f"zf_session={session_cookie(secret, a)}; zf_csrf={csrf}",
                "x-csrftoken": csrf,
                "accept": "application/json",
            },
        )
        for a, _o in accounts
    ]
    app_pids = _processes(lambda _p, _c, cmdline: "app\x00serve" in cmdline and str(port) in cmdline)
    # The backends serving the bench's database only: other clusters on a shared machine are not its cost.
    pg_pids = lambda: _processes(  # noqa: E731
        lambda _p, comm, cmdline: comm.startswith("postgres") and f" {database} " in cmdline
    )
    n = len(conns)
    print(
        f"{'kind':34s} {'server':>9s} {'postgres':>9s} {'wall':>9s}   (ms per request, {n} each, submits {n // 3})"
    )

    async def phase(name: str, one: Callable[[int], Awaitable[None]], who: range | None = None) -> None:
        who = who or range(n)
        s0, p0, w0 = _cpu(app_pids), _cpu(pg_pids()), time.perf_counter()
        for i in who:
            await one(i)
        s1, p1, w1 = _cpu(app_pids), _cpu(pg_pids()), time.perf_counter()
        k = len(who)
        print(
            f"{name:34s} {1000 * (s1 - s0) / k:9.2f} {1000 * (p1 - p0) / k:9.2f} {1000 * (w1 - w0) / k:9.2f}"
        )

    async def expect(
        i: int,
        method: str,
        path: str,
        status: int,
        body: object = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        got, answer = await conns[i].request(method, path, body, decode=False, headers=headers)
        assert got == status, (method, path, got, answer[:300] if answer else answer)

    attempts: dict[int, int] = {}
    questions: dict[int, list[dict[str, object]]] = {}

    async def start(i: int) -> None:
        got, paper = await conns[i].request(
            "POST", f"/api/my/exams/sessions/{session_id}/parts/{part_id}/start"
        )
        assert got == 200, paper
        attempts[i], questions[i] = paper["id"], paper["questions"]

    await phase("health", lambda i: expect(i, "GET", "/health", 200))
    await phase("JSON start (draw + paper)", start)
    await phase(
        "page start (form post, resumes)",
        lambda i: expect(i, "POST", f"/my/exams/sessions/{session_id}/parts/{part_id}/start", 303),
    )
    await phase(
        "page: the exam (100 questions)", lambda i: expect(i, "GET", f"/my/exams/attempts/{attempts[i]}", 200)
    )
    await phase("JSON view (open)", lambda i: expect(i, "GET", f"/api/my/exams/attempts/{attempts[i]}", 200))
    rng = random.Random(1)
    for k in range(1, 4):

        async def save(i: int, k: int = k) -> None:
            q = rng.choice(questions[i])
            body = {"answers": [{"position": q["position"], "choice": [0], "seq": k}]}
            await expect(i, "PUT", f"/api/my/exams/attempts/{attempts[i]}/answers", 200, body)

        await phase(f"JSON autosave ({k} of 3)", save)
    # A third of the candidates submit as the JSON API does by default (bench/exam_day: the attempt
    # with its paper back), a third as the exam page does (no paper back, then the result page), a
    # third by the page's form post (its fallback, and the page without JavaScript).
    third = n // 3
    await phase(
        "JSON submit",
        lambda i: expect(i, "POST", f"/api/my/exams/attempts/{attempts[i]}/submit", 200),
        range(third),
    )
    await phase(
        "JSON submit, return=minimal (page)",
        lambda i: expect(
            i,
            "POST",
            f"/api/my/exams/attempts/{attempts[i]}/submit",
            200,
            headers={"prefer": "return=minimal"},
        ),
        range(third, 2 * third),
    )
    await phase(
        "page submit (form post)",
        lambda i: expect(i, "POST", f"/my/exams/attempts/{attempts[i]}/submit", 303),
        range(2 * third, n),
    )
    await phase("page: the result", lambda i: expect(i, "GET", f"/my/exams/attempts/{attempts[i]}", 200))
    for c in conns:
        c.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--candidates", type=int, default=500)
    parser.add_argument("--start-postgres", action="store_true")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL"))
    # What bench/exam_day.prepare reads besides: PostgreSQL, demo officers = candidates + 100.
    parser.set_defaults(engine="postgresql", officers=None, sqlite_dir=None)
    args = parser.parse_args()
    if not (args.start_postgres or args.postgres_url):
        parser.error("give --start-postgres or --postgres-url")
    with contextlib.ExitStack() as stack:
        url, env, secret, (session_id, part_id, accounts), port = prepare(stack, args)
        log = Path(tempfile.gettempdir()) / f"exam_request_cost_{port}.log"
        stack.enter_context(server(env, port, 1, log))
        time.sleep(1)
        asyncio.run(run(port, secret, session_id, part_id, accounts, url.rsplit("/", 1)[1]))


if __name__ == "__main__":
    main()
