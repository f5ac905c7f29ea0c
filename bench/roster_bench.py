"""The qualification roster at province scale, through the HTTP endpoints of a running server.

    .venv/bin/python bench/roster_bench.py --start-postgres            # a throwaway PostgreSQL 15
    .venv/bin/python bench/roster_bench.py --postgres-url postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/roster_bench.py --start-postgres --officers 20000 --requests 50   # quick

Set-up (not measured): a fresh database ``bench_<random>``, migrated; ``app demo-data --officers N``
(the demo province: 539 agencies); exam qualifications for ~70 % of the officers and yearly training
totals for the current year (set-based INSERT … SELECT). Then one ``app serve`` process (uvicorn,
one worker) is started on that database and measured from outside, logged in as the demo province's
authority administrator (the whole tree):

* roster pages: ``/api/rosters`` with a mix of filters and sorts (first pages and pages reached by
  their keyset cursor), each request timed on the client: p50 / p95 / p99 / max — the first view
  of each filter mix with its exact total (counted then), the page as the browser asks it (rows
  only, ``count=false``; the page's script asks the total apart), the page with its remembered
  total, and ``/api/rosters/count`` alone;
* exports: ``/rosters/export.csv`` and ``/rosters/export.xlsx`` of the whole province (every officer),
  downloaded to the end: seconds, bytes, rows, and the server's peak resident memory above its
  resident size just before (``/proc/<pid>/clear_refs`` resets the peak before each export).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from training import _libpq, _pg, throwaway_postgres  # noqa: E402  (the sibling bench's helpers)

ADMIN = ("sfj_admin", "Demo-2026-admin")

FILTERS = [
    "",
    "sort=name",
    "sort=newest",
    "status=active",
    "exam=valid",
    "exam=none&status=active",
    "training=short&status=active",
    "training=met&exam=valid",
    "post=legal_review",
    "field=生态环境&sort=name",
    "staff_type=contract",
    "q=张",
    "status=active&exam=valid&training=met&post=enforcement&sort=name",
]


@contextlib.contextmanager
def database(server_url: str, *, keep: bool = False) -> Iterator[str]:
    name = f"bench_{secrets.token_hex(4)}"
    head, _, _ = _libpq(server_url).rpartition("/")
    asyncio.run(_pg(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://{head.split('://', 1)[1]}/{name}"
    finally:
        if not keep:
            asyncio.run(_pg(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def app_cmd(*args: str, url: str) -> None:
    env = {**os.environ, "DATABASE_URL": url, "APP_ENV": "development"}
    subprocess.run([str(ROOT / ".venv/bin/app"), *args], check=True, env=env, stdout=subprocess.DEVNULL)


async def seed_read_side(url: str, year: int) -> dict[str, int]:
    """Exam qualifications (70 %, a tenth of them expired) and this year's training totals."""
    import asyncpg

    conn = await asyncpg.connect(_libpq(url))
    try:
        await conn.execute(
            """
            INSERT INTO exam_qualifications
              (officer_id, field, passed_on, valid_until, score, source, status, removed_reason, created_at)
            SELECT id, field, current_date - 400,
                   CASE WHEN id % 10 = 0 THEN current_date - 5 ELSE current_date + 1000 END,
                   75, 'legacy', 'valid', '', now()
            FROM officers WHERE id % 10 < 7
            """
        )
        await conn.execute(
            """
            INSERT INTO training_year_totals (year, officer_id, general_law, special_law, new_law)
            SELECT $1, id, (id * 7) % 250, (id * 13) % 200, (id * 3) % 60 FROM officers
            ON CONFLICT (year, officer_id) DO NOTHING
            """,
            year,
        )
        await conn.execute("ANALYZE")
        return {
            "officers": int(await conn.fetchval("SELECT count(*) FROM officers")),
            "qualifications": int(await conn.fetchval("SELECT count(*) FROM exam_qualifications")),
        }
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(url: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "APP_ENV": "development",
        "SECRET_KEY": "b" * 48,
    }
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/app"), "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        # uvicorn runs the app in this very process (one worker, no reloader).
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak(pid: int) -> None:
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def login(client: httpx.Client) -> None:
    client.get("/login")
    token = client.cookies.get("zf_csrf") or ""
    r = client.post(
        "/api/auth/login",
        json={"username": ADMIN[0], "password": ADMIN[1]},
        headers={"x-csrftoken": token},
    )
    r.raise_for_status()


def first_views(client: httpx.Client) -> dict[str, float]:
    """Each filter mix's first view with its exact total, before any count is remembered (ms)."""
    out = {}
    for filt in FILTERS:
        t = time.perf_counter()
        client.get(f"/api/rosters?{filt}&per_page=50").raise_for_status()
        out[filt] = (time.perf_counter() - t) * 1000
    return out


def measure_pages(
    client: httpx.Client, requests: int, *, path: str = "/api/rosters", extra: str = ""
) -> dict[str, Any]:
    """``requests`` requests over the filter mixes, a third of them a later page by its cursor."""
    rnd = random.Random(7)
    times: list[float] = []
    by_filter: dict[str, list[float]] = {}
    cursors: dict[str, str] = {}
    for i in range(requests):
        filt = rnd.choice(FILTERS)
        url = f"{path}?{filt}&per_page=50{extra}"
        if i % 3 == 2 and cursors.get(filt):
            url += f"&after={cursors[filt]}"  # a later page through its keyset cursor
        t = time.perf_counter()
        r = client.get(url)
        times.append(time.perf_counter() - t)
        by_filter.setdefault(filt, []).append(times[-1])
        r.raise_for_status()
        cursors[filt] = r.json().get("next_cursor") or ""
    times.sort()

    def q(p: float) -> float:
        return times[min(len(times) - 1, int(p * len(times)))] * 1000

    return {
        "n": len(times),
        "p50": statistics.median(times) * 1000,
        "p95": q(0.95),
        "p99": q(0.99),
        "max": times[-1] * 1000,
        "by_filter": {k: (statistics.median(v) * 1000, max(v) * 1000) for k, v in by_filter.items()},
    }


def measure_export(client: httpx.Client, pid: int, path: str) -> dict[str, Any]:
    baseline = status_kib(pid, "VmRSS")
    reset_peak(pid)
    t = time.perf_counter()
    size = 0
    first = b""
    with client.stream("GET", path, timeout=300) as r:
        r.raise_for_status()
        for chunk in r.iter_bytes():
            if not first:
                first = chunk[:3]
            size += len(chunk)
    seconds = time.perf_counter() - t
    peak = status_kib(pid, "VmHWM")
    return {
        "seconds": seconds,
        "bytes": size,
        "bom": first == b"\xef\xbb\xbf",
        "baseline_mib": baseline / 1024,
        "extra_mib": max(0, peak - baseline) / 1024,
    }


def count_csv_rows(client: httpx.Client) -> int:
    r = client.get("/rosters/export.csv", timeout=300)
    return sum(1 for _ in csv.reader(io.StringIO(r.content.decode("utf-8-sig")))) - 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--officers", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=400, help="roster page requests timed")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL"))
    parser.add_argument("--start-postgres", action="store_true", help="start a throwaway cluster")
    parser.add_argument("--exports", type=int, default=2, help="runs of each export (best and worst shown)")
    parser.add_argument(
        "--database-url", help="an already loaded database (from an earlier --keep run): skip the set-up"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and print its URL")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        server_url = args.postgres_url
        if args.start_postgres:
            server_url = stack.enter_context(throwaway_postgres())
        if args.database_url:
            url = args.database_url
        else:
            if not server_url:
                raise SystemExit("give --postgres-url or --start-postgres")
            url = stack.enter_context(database(server_url, keep=args.keep))
            t = time.perf_counter()
            app_cmd("db", "upgrade", url=url)
            app_cmd("demo-data", "--officers", str(args.officers), url=url)
            year = time.gmtime().tm_year
            counts = asyncio.run(seed_read_side(url, year))
            print(
                f"loaded {counts['officers']:,} officers, {counts['qualifications']:,} exam qualifications, "
                f"{year} training totals in {time.perf_counter() - t:.1f} s (not measured); "
                f"{os.cpu_count()} CPUs" + (f"; kept: {url}" if args.keep else ""),
                flush=True,
            )
        base, pid = stack.enter_context(server(url))
        with httpx.Client(base_url=base, timeout=60) as client:
            login(client)
            for filt in FILTERS:  # warm-up (buffers, plans): rows only, so no count is remembered yet
                client.get(f"/api/rosters?{filt}&count=false").raise_for_status()
            firsts = first_views(client)
            worst = max(firsts, key=lambda k: firsts[k])
            print(
                f"first view of each of the {len(FILTERS)} filter mixes (50 rows + exact total, counted now): "
                f"median {statistics.median(firsts.values()):.0f} ms, worst {firsts[worst]:.0f} ms "
                f"({worst or 'no filter'})",
                flush=True,
            )
            runs = (
                ("roster page as the browser asks it (50 rows, count=false)", "/api/rosters", "&count=false"),
                ("roster page with its total (remembered after the first view)", "/api/rosters", ""),
                ("total alone, /api/rosters/count (remembered)", "/api/rosters/count", ""),
            )
            for label, path, extra in runs:
                pages = measure_pages(client, args.requests, path=path, extra=extra)
                print(
                    f"{label}, {pages['n']} requests over {len(FILTERS)} filter mixes: "
                    f"p50 {pages['p50']:.0f} ms, p95 {pages['p95']:.0f} ms, p99 {pages['p99']:.0f} ms, "
                    f"max {pages['max']:.0f} ms",
                    flush=True,
                )
                for filt, (median, worst_ms) in sorted(pages["by_filter"].items(), key=lambda kv: -kv[1][1])[
                    :5
                ]:
                    print(
                        f"    {filt or '(no filter)':<70} median {median:5.0f} ms  max {worst_ms:5.0f} ms",
                        flush=True,
                    )
            rows = count_csv_rows(client)
            for path in ("/rosters/export.csv", "/rosters/export.xlsx"):
                runs = [measure_export(client, pid, path) for _ in range(args.exports)]
                best = min(runs, key=lambda r: r["seconds"])
                worst_mem = max(r["extra_mib"] for r in runs)
                each = ", ".join(f"{r['seconds']:.2f}" for r in runs)
                print(
                    f"{path}: {rows:,} rows, {best['bytes'] / 1e6:.1f} MB in {best['seconds']:.2f} s "
                    f"(runs: {each} s); server peak RSS "
                    f"+{worst_mem:.0f} MiB over {best['baseline_mib']:.0f} MiB"
                    + (" ; BOM ok" if path.endswith(".csv") and best["bom"] else ""),
                    flush=True,
                )


if __name__ == "__main__":
    main()
