"""CPU per exam-day request, one kind at a time: where the exam-day budget goes.

One server on PostgreSQL (1 worker) or SQLite (``--engine sqlite``, as `make run` serves it: its workers, whose CPU is summed), N candidates, each request kind sent N times in
turn, sequentially (no queueing, no contention). For each kind it prints the CPU time the server
process and the PostgreSQL backends spent per request (from /proc), and the wall time. The JSON
API kinds are what ``bench/exam_day.py`` sends; the page kinds are what a browser does instead
(the exam page's form posts, and the pages they redirect to).

    .venv/bin/python bench/exam_request_cost.py --postgres-url postgresql://postgres@127.0.0.1:55432/postgres --candidates 500
    .venv/bin/python bench/exam_request_cost.py --engine sqlite --candidates 500

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.exam_day import ROOT, prepare, server
from bench.httpkit import Conn, csrf_token, session_cookie

_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / _TICK


def _parent(pid: int) -> int:
    with contextlib.suppress(OSError):
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return 0


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


@dataclass
class Side:
    """One server under test: its database's seed, its processes, a connection per candidate."""

    name: str
    port: int
    secret: str
    session_id: int
    part_id: int
    accounts: list[tuple[int, str]]
    database: str
    conns: list[Conn] = field(default_factory=list)
    app_pids: set[int] = field(default_factory=set)
    attempts: dict[int, int] = field(default_factory=dict)
    questions: dict[int, list[dict[str, object]]] = field(default_factory=dict)

    async def open(self) -> None:
        csrf = await asyncio.to_thread(csrf_token, self.port)
        self.conns = [
            Conn(
                self.port,
                {
                    "cookie": f"zf_session={session_cookie(self.secret, a)}; zf_csrf={csrf}",
                    "x-csrftoken": csrf,
                    "accept": "application/json",
                },
            )
            for a, _o in self.accounts
        ]
        supervisor = _processes(
            lambda _p, _c, cmdline: "app\x00serve" in cmdline and str(self.port) in cmdline
        )
        # With several workers (SQLite as `make run` serves it), they are the supervisor's children.
        self.app_pids = supervisor | _processes(lambda pid, _c, _l: _parent(pid) in supervisor)

    def pg_pids(self) -> set[int]:
        # The backends serving this side's database only: other clusters on a shared machine are not its cost.
        return _processes(
            lambda _p, comm, cmdline: comm.startswith("postgres") and f" {self.database} " in cmdline
        )

    async def expect(
        self,
        i: int,
        method: str,
        path: str,
        status: int,
        body: object = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        got, answer = await self.conns[i].request(method, path, body, decode=False, headers=headers)
        assert got == status, (self.name, method, path, got, answer[:300] if answer else answer)

    async def start(self, i: int) -> None:
        got, paper = await self.conns[i].request(
            "POST", f"/api/my/exams/sessions/{self.session_id}/parts/{self.part_id}/start"
        )
        assert got == 200, paper
        self.attempts[i], self.questions[i] = paper["id"], paper["questions"]


BLOCK = 20
"""With two sides, each takes BLOCK requests of a kind in turn: the same noise for both."""


async def run(sides: list[Side]) -> None:
    for side in sides:
        await side.open()
    n = len(sides[0].conns)
    names = " / ".join(s.name for s in sides)
    print(
        f"{'kind':34s} {'server':>9s} {'postgres':>9s} {'wall':>9s}   (ms per request, {n} each, submits {n // 3}; {names})"
    )

    async def phase(name: str, one: Callable[[Side, int], Awaitable[None]], who: range | None = None) -> None:
        who = who or range(n)
        totals = {s.name: [0.0, 0.0, 0.0] for s in sides}
        for b in range(0, len(who), BLOCK):
            block = who[b : b + BLOCK]
            for side in sides:
                pg = side.pg_pids()
                s0, p0, w0 = _cpu(side.app_pids), _cpu(pg), time.perf_counter()
                for i in block:
                    await one(side, i)
                t = totals[side.name]
                t[0] += _cpu(side.app_pids) - s0
                t[1] += _cpu(pg) - p0
                t[2] += time.perf_counter() - w0
        k = len(who)
        cells = [" / ".join(f"{1000 * totals[s.name][j] / k:.2f}" for s in sides) for j in range(3)]
        print(f"{name:34s} {cells[0]:>9s} {cells[1]:>9s} {cells[2]:>9s}", flush=True)

    def path(fmt: str) -> Callable[[Side, int], str]:
        return lambda s, i: fmt.format(s=s, a=s.attempts.get(i))

    def call(
        method: str, where: Callable[[Side, int], str], status: int, **kw: Any
    ) -> Callable[[Side, int], Awaitable[None]]:
        return lambda s, i: s.expect(i, method, where(s, i), status, **kw)

    start_path = path("/my/exams/sessions/{s.session_id}/parts/{s.part_id}/start")
    attempt_path = path("/my/exams/attempts/{a}")
    api_path = path("/api/my/exams/attempts/{a}")
    await phase("health", call("GET", lambda s, i: "/health", 200))
    # The browser's first start: the form post draws the paper and redirects to the exam page.
    half = n // 2
    await phase("page start (form post, draws)", call("POST", start_path, 303), range(half))
    await phase("JSON start (draw + paper)", Side.start, range(half, n))
    await phase("JSON start (resumes)", Side.start, range(half))
    await phase("page start (form post, resumes)", call("POST", start_path, 303))
    await phase("page: the exam (100 questions)", call("GET", attempt_path, 200))
    await phase("static: exam.js", call("GET", lambda s, i: "/static/js/exam.js", 200))
    await phase("static: app.css", call("GET", lambda s, i: "/static/css/app.css", 200))
    await phase("JSON view (open)", call("GET", api_path, 200))
    rng = random.Random(1)
    for k in range(1, 4):

        async def save(s: Side, i: int, k: int = k) -> None:
            q = rng.choice(s.questions[i])
            body = {"answers": [{"position": q["position"], "choice": [0], "seq": k}]}
            await s.expect(i, "PUT", f"/api/my/exams/attempts/{s.attempts[i]}/answers", 200, body)

        await phase(f"JSON autosave ({k} of 3)", save)
    # A third of the candidates submit as the JSON API does by default (bench/exam_day: the attempt
    # with its paper back), a third as the exam page does (no paper back, then the result page), a
    # third by the page's form post (its fallback, and the page without JavaScript).
    third = n // 3
    submit = path("/api/my/exams/attempts/{a}/submit")
    await phase("JSON submit", call("POST", submit, 200), range(third))
    await phase(
        "JSON submit, return=minimal (page)",
        call("POST", submit, 200, headers={"prefer": "return=minimal"}),
        range(third, 2 * third),
    )
    await phase(
        "page submit (form post)",
        call("POST", path("/my/exams/attempts/{a}/submit"), 303),
        range(2 * third, n),
    )
    await phase("page: the result", call("GET", attempt_path, 200))
    for side in sides:
        for c in side.conns:
            c.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--candidates", type=int, default=500)
    parser.add_argument("--start-postgres", action="store_true")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL"))
    parser.add_argument(
        "--against",
        metavar="CHECKOUT",
        help="a second checkout (e.g. a git worktree of main) served beside this one, on a database of"
        " its own: the kinds run on both in turn, BLOCK requests each, figures as this / that",
    )
    # What bench/exam_day.prepare reads besides: PostgreSQL, demo officers = candidates + 100.
    parser.set_defaults(officers=None, sqlite_dir=None)
    args = parser.parse_args()
    if args.engine == "postgresql" and not (args.start_postgres or args.postgres_url):
        parser.error("give --start-postgres or --postgres-url")
    workers = 1 if args.engine == "postgresql" else None
    with contextlib.ExitStack() as stack:
        sides = []
        for name, checkout in [("this", ROOT), *([("that", Path(args.against))] if args.against else [])]:
            url, env, secret, (session_id, part_id, accounts), port = prepare(stack, args)
            log = Path(tempfile.gettempdir()) / f"exam_request_cost_{port}.log"
            stack.enter_context(server(env, port, workers, log, cwd=checkout))
            database = url.rsplit("/", 1)[1] if args.engine == "postgresql" else "-"
            sides.append(Side(name, port, secret, session_id, part_id, accounts, database))
        time.sleep(1)
        print(
            f"load average (1 min) {os.getloadavg()[0]:.1f}; {ROOT}"
            + (f" / {args.against}" if args.against else "")
        )
        asyncio.run(run(sides))
        print(f"load average (1 min) {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
