"""Time `app demo-data --officers N` on a fresh SQLite file and a fresh PostgreSQL database, per step.

    .venv/bin/python bench/demo_data.py --start-postgres     # both engines, a throwaway PostgreSQL 15 in /tmp
    .venv/bin/python bench/demo_data.py                      # 200 000 officers, SQLite only
    .venv/bin/python bench/demo_data.py --postgres-url postgresql://postgres@127.0.0.1:5432/postgres
    BENCH_POSTGRES_URL=... .venv/bin/python bench/demo_data.py --officers 50000 --runs 1

Each round loads once per engine, the engines interleaved (the first engine alternates between
rounds), each into a fresh database: the SQLite file in a temporary directory; on PostgreSQL a
`bench_<random>` database the bench creates, upgrades and drops again. `app db upgrade` runs before
and is not timed. The timed figure is the whole command, interpreter start-up included, as an
operator sees it; the per-step figures are the command's own table (wall and the command's CPU).
Every table of the loaded database is counted (rows per table, both engines). Printed: each run
with the load average before it, then the medians over the rounds. Normal priority, no renice.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
_DATA_DIRS: dict[str, str] = {}
"""Server URL → data directory of the clusters this bench started (for their CPU time)."""
# A line of the command's step table: name, wall seconds, CPU seconds, rows, rows per table.
STEP = re.compile(r"^  (\S.*?)\s+(\d+\.\d\d)\s+(\d+\.\d\d)\s+([\d,]+)(?:\s+(.*))?$")


@dataclass
class Result:
    backend: str
    seconds: float
    load: float
    """1-minute load average just before the run."""
    counts: dict[str, int]
    steps: list[tuple[str, float, float, int]] = field(default_factory=list)
    """(step, wall s, CPU s, rows) as the command printed them, the total last."""
    cpu: float = 0.0
    """CPU seconds of the command as it counts them: the process since its start and its signing workers."""
    server_cpu: float | None = None
    """CPU seconds of the PostgreSQL server during the command (a cluster the bench started)."""

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def line(self) -> str:
        officers = self.counts.get("officers", 0)
        return (
            f"{self.backend:<11} {self.seconds:7.2f} s  (load {self.load:4.1f})  CPU: command {self.cpu:5.1f} s"
            + ("" if self.server_cpu is None else f", server {self.server_cpu:5.1f} s")
            + f"  {officers:>8,} officers  {self.rows:>10,} rows in {len(self.counts)} tables"
        )


def app(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"`app {' '.join(args)}` failed with exit code {proc.returncode}")
    return proc


def steps_of(output: str) -> list[tuple[str, float, float, int]]:
    """The step table at the end of the command's report."""
    lines = output.split("各步骤用时与行数：", 1)[-1].splitlines()[2:]
    found = []
    for line in lines:
        m = STEP.match(line)
        if m:
            found.append((m[1], float(m[2]), float(m[3]), int(m[4].replace(",", ""))))
    return found


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def server_cpu(url: str | None) -> float | None:
    """CPU seconds so far of a cluster this bench started: the postmaster, its reaped backends and
    the live ones."""
    data = _DATA_DIRS.get(url or "")
    if data is None:
        return None
    pid = Path(f"{data}/postmaster.pid").read_text().split()[0]
    tick = os.sysconf("SC_CLK_TCK")

    def stat(p: str) -> list[str]:
        return Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()

    fields = stat(pid)
    total = sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    for p in os.listdir("/proc"):
        if p.isdigit():
            with contextlib.suppress(OSError, IndexError):
                f = stat(p)
                if f[1] == pid:
                    total += int(f[11]) + int(f[12])
    return total / tick


def timed_load(
    officers: int, seed: int, env: dict[str, str], server: str | None = None
) -> tuple[float, float, list[tuple[str, float, float, int]], float, float | None]:
    """(wall s, load before, the command's steps, the command's CPU s, the server's CPU s or None)."""
    app("db", "upgrade", env=env)
    load = os.getloadavg()[0]
    cpu, server_before = children_cpu(), server_cpu(server)
    started = time.perf_counter()
    proc = app("demo-data", "--officers", str(officers), "--seed", str(seed), env=env)
    seconds = time.perf_counter() - started
    server_after = server_cpu(server)
    served = None if server_before is None or server_after is None else server_after - server_before
    steps = steps_of(proc.stdout)
    # The command's own total counts its signing workers, which its forkserver (not reaped by the
    # command) keeps out of the children's rusage; the rusage is the fallback.
    return seconds, load, steps, steps[-1][2] if steps else children_cpu() - cpu, served


def base_env(var_dir: str, database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"APP_ENV": "development", "APP_VAR_DIR": var_dir, "DATABASE_URL": database_url})
    return env


def bench_sqlite(officers: int, seed: int) -> Result:
    with tempfile.TemporaryDirectory(prefix="bench-sqlite-") as tmp:
        path = Path(tmp) / "app.db"
        seconds, load, steps, cpu, _ = timed_load(
            officers, seed, base_env(tmp, f"sqlite+aiosqlite:///{path}")
        )
        with contextlib.closing(sqlite3.connect(path)) as conn:
            tables = [
                t
                for (t,) in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                    "AND name <> 'alembic_version' ORDER BY name"
                )
            ]
            counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    return Result("SQLite", seconds, load, counts, steps, cpu)


def _libpq(url: str) -> str:
    """asyncpg wants postgresql://, the app accepts either."""
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if scheme.startswith("postgres") else url


async def _pg(url: str, *statements: str) -> list[int]:
    import asyncpg

    conn = await asyncpg.connect(_libpq(url))
    try:
        return [await conn.fetchval(s) for s in statements]
    finally:
        await conn.close()


def bench_postgres(server_url: str, officers: int, seed: int) -> Result:
    name = f"bench_{secrets.token_hex(4)}"
    head, _, _database = _libpq(server_url).rpartition("/")
    db_url = f"{head}/{name}"
    asyncio.run(_pg(server_url, f'CREATE DATABASE "{name}"'))
    try:
        with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
            seconds, load, steps, cpu, served = timed_load(officers, seed, base_env(tmp, db_url), server_url)
        counts = asyncio.run(_pg_counts(db_url))
    finally:
        asyncio.run(_pg(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return Result("PostgreSQL", seconds, load, counts, steps, cpu, served)


async def _pg_counts(url: str) -> dict[str, int]:
    import asyncpg

    conn = await asyncpg.connect(_libpq(url))
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version' "
            "ORDER BY tablename"
        )
        return {
            t["tablename"]: await conn.fetchval(f'SELECT count(*) FROM "{t["tablename"]}"') for t in tables
        }
    finally:
        await conn.close()


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A PostgreSQL 15 cluster in a temporary directory (as the postgres user when run as root)."""
    if not (PG_BIN / "initdb").exists():
        raise SystemExit(f"no PostgreSQL 15 server binaries in {PG_BIN}")
    tmp = tempfile.mkdtemp(prefix="bench-pgdata-")
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root
        shutil.chown(tmp, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = f"{tmp}/data"

    def run(*cmd: str) -> None:
        subprocess.run([*prefix, *cmd], cwd=tmp, check=True, stdout=subprocess.DEVNULL)

    run(str(PG_BIN / "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale")
    with open(f"{data}/postgresql.conf", "a") as conf:  # root may append; the file stays postgres's
        conf.write(f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{tmp}'\n")
    run(str(PG_BIN / "pg_ctl"), "start", "-D", data, "-l", f"{tmp}/log", "-w", "-s")
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    _DATA_DIRS[url] = data
    try:
        yield url
    finally:
        run(str(PG_BIN / "pg_ctl"), "stop", "-D", data, "-m", "fast", "-s")
        shutil.rmtree(tmp, ignore_errors=True)


def summary(results: list[Result]) -> None:
    """Medians per engine: the whole command, each step; then the rows of every table."""
    engines = list(dict.fromkeys(r.backend for r in results))
    runs = {e: [r for r in results if r.backend == e] for e in engines}
    print(
        f"\nmedians of {max(len(v) for v in runs.values())} run(s) per engine, seconds (wall / CPU of the command)"
    )
    names = list(dict.fromkeys(name for r in results for name, *_ in r.steps[:-1]))
    names += list(dict.fromkeys(r.steps[-1][0] for r in results if r.steps))  # the total last
    width = max((len(n.encode("gbk")) for n in names), default=10) + 2

    def cell(engine: str, name: str) -> str:
        found = [(w, c) for r in runs[engine] for n, w, c, _ in r.steps if n == name]
        if not found:
            return f"{'':>15}"
        wall = statistics.median(w for w, _ in found)
        cpu = statistics.median(c for _, c in found)
        return f"{wall:7.2f} / {cpu:5.2f}"

    def pad(name: str) -> str:
        return name + " " * (width - len(name.encode("gbk")))

    print(pad("step") + "".join(f"{e:>17}" for e in engines) + "   rows")
    for name in names:
        rows = next((n_rows for r in results for n, _, _, n_rows in r.steps if n == name), 0)
        print(pad(name) + "".join(f"  {cell(e, name):>15}" for e in engines) + f"   {rows:,}")
    whole = "".join(f"  {statistics.median(r.seconds for r in runs[e]):>7.2f}{'':>8}" for e in engines)
    print(pad("whole command (timed outside)") + whole)
    cpu = "".join(f"  {statistics.median(r.cpu for r in runs[e]):>7.2f}{'':>8}" for e in engines)
    print(pad("CPU of the command (+ signing workers)") + cpu)
    served = [r.server_cpu for r in runs.get("PostgreSQL", []) if r.server_cpu is not None]
    if served:
        print(f"CPU of the PostgreSQL server during the command: median {statistics.median(served):.2f} s")
    print("load average before each run: " + ", ".join(f"{r.backend} {r.load:.1f}" for r in results))

    print("\nrows per table (last run of each engine)")
    last = {e: runs[e][-1].counts for e in engines}
    tables = sorted({t for c in last.values() for t in c if c[t]})
    print(f"{'table':<34}" + "".join(f"{e:>13}" for e in engines))
    for t in tables:
        print(f"{t:<34}" + "".join(f"{last[e].get(t, 0):>13,}" for e in engines))
    print(f"{'total':<34}" + "".join(f"{sum(last[e].values()):>13,}" for e in engines))
    empty = sorted({t for c in last.values() for t in c if not c[t]})
    print(f"empty tables: {', '.join(empty)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--officers", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--runs", type=int, default=3, help="rounds; the summary gives medians")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL"))
    parser.add_argument("--start-postgres", action="store_true", help="start a throwaway cluster")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()

    print(
        f"app demo-data --officers {args.officers} ({os.cpu_count()} CPUs, "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())})",
        flush=True,
    )
    results: list[Result] = []
    with contextlib.ExitStack() as stack:
        url = args.postgres_url
        if args.start_postgres:
            url = stack.enter_context(throwaway_postgres())
        if not url and args.skip_sqlite:
            raise SystemExit(
                "nothing measured: give --postgres-url / BENCH_POSTGRES_URL or drop --skip-sqlite"
            )
        for n in range(args.runs):
            order = [] if args.skip_sqlite else ["sqlite"]
            if url:
                order.append("postgres")
            if n % 2:
                order.reverse()
            for engine in order:
                if engine == "sqlite":
                    results.append(bench_sqlite(args.officers, args.seed))
                else:
                    assert url is not None
                    results.append(bench_postgres(url, args.officers, args.seed))
                print(f"round {n + 1}: {results[-1].line()}", flush=True)
    summary(results)
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
