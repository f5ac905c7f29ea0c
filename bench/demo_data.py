"""Time `app demo-data --officers N` on a fresh SQLite file and on a fresh PostgreSQL database.

    .venv/bin/python bench/demo_data.py                      # 200 000 officers, SQLite only
    .venv/bin/python bench/demo_data.py --postgres-url postgresql://postgres@127.0.0.1:5432/postgres
    BENCH_POSTGRES_URL=... .venv/bin/python bench/demo_data.py --officers 50000
    .venv/bin/python bench/demo_data.py --start-postgres     # a throwaway PostgreSQL 15 cluster in /tmp

The PostgreSQL URL names a server the bench may create databases on; it makes `bench_<random>`,
upgrades it (`app db upgrade`, not timed), times the load, counts the rows and drops it again.
The timed figure is the whole command, interpreter start-up included, as an operator sees it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
TABLES = ("agencies", "officers", "posting_history", "accounts")


@dataclass
class Result:
    backend: str
    seconds: float
    counts: dict[str, int]

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def line(self) -> str:
        officers = self.counts.get("officers", 0)
        return (
            f"{self.backend:<11} {self.seconds:7.2f} s  {officers:>8} officers  "
            f"{officers / self.seconds:>9,.0f} officers/s  {self.rows:>8} rows  {self.rows / self.seconds:>9,.0f} rows/s"
        )


def app(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"`app {' '.join(args)}` failed with exit code {proc.returncode}")
    return proc


def timed_load(officers: int, seed: int, env: dict[str, str]) -> float:
    app("db", "upgrade", env=env)
    started = time.perf_counter()
    app("demo-data", "--officers", str(officers), "--seed", str(seed), env=env)
    return time.perf_counter() - started


def base_env(var_dir: str, database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"APP_ENV": "development", "APP_VAR_DIR": var_dir, "DATABASE_URL": database_url})
    return env


def bench_sqlite(officers: int, seed: int) -> Result:
    with tempfile.TemporaryDirectory(prefix="bench-sqlite-") as tmp:
        path = Path(tmp) / "app.db"
        seconds = timed_load(officers, seed, base_env(tmp, f"sqlite+aiosqlite:///{path}"))
        with contextlib.closing(sqlite3.connect(path)) as conn:
            counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    return Result("SQLite", seconds, counts)


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
            seconds = timed_load(officers, seed, base_env(tmp, db_url))
        values = asyncio.run(_pg(db_url, *(f"SELECT count(*) FROM {t}" for t in TABLES)))
        counts = dict(zip(TABLES, values, strict=True))
    finally:
        asyncio.run(_pg(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return Result("PostgreSQL", seconds, counts)


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
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(str(PG_BIN / "pg_ctl"), "stop", "-D", data, "-m", "fast", "-s")
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--officers", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL"))
    parser.add_argument("--start-postgres", action="store_true", help="start a throwaway cluster")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()

    print(f"app demo-data --officers {args.officers} ({os.cpu_count()} CPUs)", flush=True)
    results: list[Result] = []
    if not args.skip_sqlite:
        results.append(bench_sqlite(args.officers, args.seed))
        print(results[-1].line(), flush=True)
    with contextlib.ExitStack() as stack:
        url = args.postgres_url
        if args.start_postgres:
            url = stack.enter_context(throwaway_postgres())
        if url:
            results.append(bench_postgres(url, args.officers, args.seed))
            print(results[-1].line(), flush=True)
        elif not results:
            raise SystemExit(
                "nothing measured: give --postgres-url / BENCH_POSTGRES_URL or drop --skip-sqlite"
            )


if __name__ == "__main__":
    main()
