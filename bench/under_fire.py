"""Under fire: exam day and the public verification load at the same time, against ONE server on PostgreSQL.

    .venv/bin/python bench/under_fire.py --start-postgres                          # 10 minutes
    .venv/bin/python bench/under_fire.py --start-postgres --duration 60 --candidates 300   # a short check

One run:
1. a fresh database: `app db upgrade`, `app demo-data --officers N` (officers, cards, the starter exam
   banks), then exam day's seed (bench/exam_day.py: one account per candidate, a 100-question exam, a
   session open now, every candidate enrolled);
2. one server, `app serve --workers W`, with the per-client verification limit lifted (all of wrk's
   requests come from 127.0.0.1);
3. for `--duration` seconds, together:
   - exam day (bench/exam_day.py's candidates: start within `--spread` s, fetch the paper, autosave every
     `--interval` s, retry a save until acknowledged, submit at the end);
   - citizens scanning cards: wrk on `/v/<number>` (another real card number each request, as
     bench/verify_bench.py does), paced to `--verify-rate` requests/s over `--connections` connections;
4. figures: errors (exam: every failed request, even when retried; wrk: non-2xx and socket errors; a
   candidate who did not submit) — must be 0; p50/p99 of paper fetch, autosave, submit and verify;
   lost answers (bench/exam_day.py's check: every acknowledged save stored, every attempt graded on the
   newest); the load average while it ran.

Exit status 1 if there were errors or lost answers. Needs `wrk` (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import exam_day, verify_bench
from bench.training import postgres_database, throwaway_postgres

PACE = """
local pause = %(pause_ms)d
delay = function() return pause end
"""
"""Appended to verify_bench's request script: each connection waits between requests (wrk's delay())."""


@dataclass
class Verify:
    requests: int = 0
    rps: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    non_2xx: int = 0
    socket_errors: int = 0
    output: str = ""


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(port: int, numbers: Path, args: argparse.Namespace) -> Verify:
    """wrk against /v/<number> for the duration, paced to --verify-rate; latencies from --latency."""
    pause_ms = max(0, round(args.connections * 1000 / args.verify_rate))
    script = verify_bench.LUA % {"file": numbers, "accept": args.verify_accept, "prefix": "/v/"}
    script += PACE % {"pause_ms": pause_ms}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            ["wrk", "-t", "1", "-c", str(args.connections), "-d", f"{int(args.duration)}s", "--latency",
             "--timeout", "10s", "-s", f.name, f"http://127.0.0.1:{port}"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(f.name)
    v = Verify(output=out)
    if m := re.search(r"(\d+) requests in", out):
        v.requests = int(m.group(1))
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        v.rps = float(m.group(1))
    if m := re.search(r"\b50%\s+([\d.]+)(us|ms|s)\b", out):
        v.p50_ms = _ms(m.group(1), m.group(2))
    if m := re.search(r"\b99%\s+([\d.]+)(us|ms|s)\b", out):
        v.p99_ms = _ms(m.group(1), m.group(2))
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        v.non_2xx = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        v.socket_errors = sum(int(x) for x in m.groups())
    return v


async def together(
    args: argparse.Namespace,
    port: int,
    secret: str,
    session_id: int,
    part_id: int,
    accounts: list[tuple[int, int]],
    srv: object,
    numbers: Path,
) -> tuple[exam_day.Stats, Verify, list[float]]:
    loads: list[float] = []

    async def sample_load() -> None:
        while True:
            loads.append(os.getloadavg()[0])
            await asyncio.sleep(5)

    sampler = asyncio.create_task(sample_load())
    exam_args = argparse.Namespace(
        kill_at=None, spread=args.spread, interval=args.interval, duration=args.duration
    )
    stats, verify = await asyncio.gather(
        exam_day.drive(exam_args, port, secret, session_id, part_id, accounts, srv),
        asyncio.to_thread(run_wrk, port, numbers, args),
    )
    sampler.cancel()
    loads.append(os.getloadavg()[0])
    return stats, verify, loads


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load (both at once)")
    parser.add_argument("--candidates", type=int, default=2000)
    parser.add_argument(
        "--officers", type=int, default=None, help="demo officers (default: candidates + 2000)"
    )
    parser.add_argument("--spread", type=float, default=60.0, help="seconds over which candidates start")
    parser.add_argument(
        "--interval", type=float, default=30.0, help="seconds between a candidate's autosaves"
    )
    parser.add_argument("--verify-rate", type=float, default=50.0, help="public verifications per second")
    parser.add_argument(
        "--verify-accept", default="text/html", help="text/html (the page) or application/json"
    )
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--start-postgres", action="store_true")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL"))
    args = parser.parse_args()
    if not (args.start_postgres or args.postgres_url):
        raise SystemExit("give --start-postgres or --postgres-url")
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found (apt-get install wrk)")

    with contextlib.ExitStack() as stack:
        server_url = args.postgres_url or stack.enter_context(throwaway_postgres())
        url = stack.enter_context(postgres_database(server_url))
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="under-fire-"))
        secret = secrets.token_hex(24)
        env = {**exam_day._env(url, secret), "APP_VAR_DIR": tmp, "VERIFY_RATE_PER_MINUTE": "1000000000"}
        t = time.perf_counter()
        exam_day.app_cli(env, "db", "upgrade")
        exam_day.app_cli(env, "demo-data", "--officers", str(args.officers or args.candidates + 2000))
        session_id, part_id, accounts = asyncio.run(exam_day.seed(url, args.candidates))
        all_numbers = verify_bench._numbers(url)
        random.Random(1).shuffle(all_numbers)
        numbers = Path(tmp) / "numbers.txt"
        numbers.write_text("\n".join(all_numbers[:20_000]) + "\n")
        print(
            f"seeded {len(accounts)} candidates and {len(all_numbers):,} cards in "
            f"{time.perf_counter() - t:.0f} s (not measured); {os.cpu_count()} CPUs",
            flush=True,
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = Path(tmp) / "server.log"
        srv = stack.enter_context(exam_day.server(env, port, args.workers, log))
        print(
            f"one server ({args.workers} workers, PostgreSQL) for {args.duration:g} s: {args.candidates} "
            f"candidates (start within {args.spread:g} s, autosave every {args.interval:g} s) and public "
            f"verification at {args.verify_rate:g}/s over {args.connections} connections ({args.verify_accept})",
            flush=True,
        )
        stats, verify, loads = asyncio.run(
            together(args, port, secret, session_id, part_id, accounts, srv, numbers)
        )
        elapsed = stats.errors.pop("_elapsed")
        acknowledged, lost, stale = asyncio.run(exam_day.verify(url, stats))
        unfinished = args.candidates - stats.submitted
        exam_errors = sum(stats.errors.values())
        errors = exam_errors + verify.non_2xx + verify.socket_errors + unfinished

        pct = exam_day.pct
        print(f"\nexam: {stats.started} started, {stats.submitted} submitted in {elapsed} s")
        for label, values in (
            ("paper fetch", stats.paper),
            ("autosave", stats.save),
            ("submit", stats.submit),
        ):
            print(
                f"  {label:<12} n={len(values):>6}  p50 {pct(values, 50):6.0f} ms  p99 {pct(values, 99):6.0f} ms"
            )
        print(
            f"  verify       n={verify.requests:>6}  p50 {verify.p50_ms:6.0f} ms  p99 {verify.p99_ms:6.0f} ms"
            f"  ({verify.rps:.0f}/s)"
        )
        print(
            f"errors: {errors} (exam requests {exam_errors}{f' {stats.errors}' if stats.errors else ''}, verify non-2xx "
            f"{verify.non_2xx}, verify socket errors {verify.socket_errors}, candidates not submitted {unfinished})"
        )
        print(f"answers acknowledged {acknowledged}; lost {lost}; graded on an older answer {stale}")
        print(f"load average (1 min) while running: max {max(loads):.2f}, at the end {loads[-1]:.2f}")
        if errors or lost or stale:
            sys.exit(1)


if __name__ == "__main__":
    main()
