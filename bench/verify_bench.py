"""Public verification throughput and p99: /v/<number> JSON and HTML against two bare baselines.

For each engine (SQLite, then PostgreSQL): a fresh database with ``app demo-data --officers N``
(N = 200,000 gives ~160,000 certificates), then, one after another under the same uvicorn settings
(SQLite: ``--sqlite-workers``, by default what ``app serve`` chooses, one per core, 1 being the
configuration of the figures before stop 29; PostgreSQL: ``--workers``; several workers are started
by ``app serve``, as users run them, and each scan then also counts its rate limit in the file its
workers share, since stop 30 on PostgreSQL too), wrk on loopback against

  (a) a bare Litestar handler returning a constant            (bench/verify_baseline.py /const)
  (b) a bare handler doing the same lookup with the raw driver (bench/verify_baseline.py /raw/N)
  (c) the service's /v/<number> with Accept: application/json
  (d) the service's /v/<number> as the HTML page

Each request asks for another number (wrk's Lua script walks a shuffled list of real numbers).
The per-client rate limit is lifted for the run (VERIFY_RATE_PER_MINUTE). Needs ``wrk`` (apt).

Fairness: both servers run at once and the four kinds are interleaved, round after round
(``--rounds``, 3 by default: a, b, c, d, a, b, c, d, ...); each kind's figure is the median of its
rounds, printed with the load average (1 min) before each of them. The service runs as served
(``APP_ENV=development``: the time-up sweep and the audit drain on), at normal priority; the
baseline's PostgreSQL pool is the app's own (``app.db.DriverPool``).

Each figure also states the CPU time per request of the server's processes and of the PostgreSQL
backends serving the bench's database (from /proc, before and after each wrk run): the cost a
capacity model needs, and one that other jobs on a shared machine move far less than req/s.

    .venv/bin/python bench/verify_bench.py --start-postgres            # both engines
    .venv/bin/python bench/verify_bench.py --skip-sqlite --postgres-url postgresql://...
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
from demo_data import _libpq, _pg, throwaway_postgres

from app.cli.serve import cores, sqlite_workers

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

LUA = """
local numbers = {}
for line in io.lines("%(file)s") do numbers[#numbers + 1] = line end
local i = 0
local accept = "%(accept)s"
request = function()
  i = i %% #numbers + 1
  return wrk.format("GET", "%(prefix)s" .. numbers[i], {["Accept"] = accept})
end
"""


@dataclass
class Figure:
    label: str
    rps: float
    p99_ms: float
    non_2xx: int
    load: float = 0.0
    server_cpu_ms: float = 0.0
    """CPU time per request of the server's processes (supervisor and workers), from /proc."""
    postgres_cpu_ms: float = 0.0
    """CPU time per request of the PostgreSQL backends serving the bench's database."""


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / _TICK


def _processes(keep: Callable[[int, int, str], bool]) -> set[int]:
    """The pids for which ``keep(pid, ppid, cmdline)`` holds."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
                if keep(int(entry), ppid, cmdline):
                    out.add(int(entry))
    return out


@dataclass
class Meter:
    """CPU seconds so far of one server (its process and its children) and of PostgreSQL's backends
    on one database (none on SQLite): the cost per request whatever else shares the machine."""

    server_pid: int
    database: str | None

    def sample(self) -> tuple[float, float]:
        server = _processes(lambda pid, ppid, _c: self.server_pid in (pid, ppid))
        backends = (
            _processes(
                lambda _p, _pp, cmdline: cmdline.startswith("postgres:") and f" {self.database} " in cmdline
            )
            if self.database
            else set()
        )
        return _cpu_seconds(server), _cpu_seconds(backends)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server did not answer {url}")


@contextlib.contextmanager
def _server(cmd: list[str], env: dict[str, str], health: str) -> Iterator[int]:
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(health, proc)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wrk(
    url: str, prefix: str, accept: str, numbers: Path, args: argparse.Namespace, label: str, meter: Meter
) -> Figure:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA % {"file": numbers, "accept": accept, "prefix": prefix})
        script = f.name
    base = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "--latency", "-s", script]
    subprocess.run([*base, "-d", "3s", url], check=True, capture_output=True)  # warm-up
    load = os.getloadavg()[0]
    before = meter.sample()
    out = subprocess.run(
        [*base, "-d", f"{args.duration}s", url], check=True, capture_output=True, text=True
    ).stdout
    after = meter.sample()
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert m, out
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    server_ms, pg_ms = (1000 * (b - a) / requests for a, b in zip(before, after, strict=True))
    return Figure(label, rps, p99, int(bad.group(1)) if bad else 0, load, server_ms, pg_ms)


def app_command(engine: str, workers: int, uv: list[str], port: int) -> list[str]:
    """The service's server as users run it: with several workers ``app serve`` (its supervisor
    names the file in which its workers share the rate limits, and on SQLite holds the database
    file), else uvicorn's own line, as the baseline's."""
    if workers > 1:
        return [
            PY,
            "-m",
            "app",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
    return [PY, *uv, "--port", str(port), "app.asgi:app_factory"]


def run_engine(name: str, db_url: str, args: argparse.Namespace, tmp: str) -> list[Figure]:
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "APP_ENV": "test",
        "APP_VAR_DIR": tmp,
        "SECRET_KEY": secrets.token_hex(24),
        "VERIFY_RATE_PER_MINUTE": "1000000000",
        "BENCH_DATABASE_URL": db_url,
    }
    subprocess.run([PY, "-m", "app", "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    started = time.perf_counter()
    subprocess.run(
        [PY, "-m", "app", "demo-data", "--officers", str(args.officers)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    load_s = time.perf_counter() - started
    numbers = Path(tmp) / "numbers.txt"
    all_numbers = _numbers(db_url)
    random.Random(1).shuffle(all_numbers)
    numbers.write_text("\n".join(all_numbers[: args.sample]) + "\n")
    workers = args.sqlite_workers if name == "SQLite" else args.workers
    print(
        f"{name}: {len(all_numbers):,} certificates (demo-data --officers {args.officers} in {load_s:.0f} s), "
        f"{workers} worker(s), wrk -c {args.connections} -d {args.duration}s",
        flush=True,
    )
    base_port, app_port = _port(), _port()
    uv = ["-m", "uvicorn", "--host", "127.0.0.1", "--workers", str(workers),
          "--no-access-log", "--log-level", "warning", "--factory"]  # fmt: skip
    base_url, app_url = f"http://127.0.0.1:{base_port}", f"http://127.0.0.1:{app_port}"
    kinds = [
        (base_url, "/const?", "application/json", "(a) bare handler, constant"),
        (base_url, "/raw/", "application/json", "(b) bare handler, raw driver lookup"),
        (app_url, "/v/", "application/json", "(c) /v/<number> JSON"),
        (app_url, "/v/", "text/html", "(d) /v/<number> HTML page"),
    ]
    app_env = {**env, "APP_ENV": "development"}  # as served: the sweeper and the audit drain run
    runs: dict[str, list[Figure]] = {k[3]: [] for k in kinds}
    database = None if db_url.startswith("sqlite") else db_url.rsplit("/", 1)[1]
    with (
        _server(
            [PY, *uv, "--port", str(base_port), "--app-dir", "bench", "verify_baseline:create"],
            env,
            f"{base_url}/const",
        ) as base_pid,
        _server(app_command(name, workers, uv, app_port), app_env, f"{app_url}/health") as app_pid,
    ):
        meters = {base_url: Meter(base_pid, database), app_url: Meter(app_pid, database)}
        for r in range(args.rounds):
            for url, prefix, accept, label in kinds:
                f = _wrk(url, prefix, accept, numbers, args, label, meters[url])
                runs[label].append(f)
                print(
                    f"  round {r + 1}: {label:<38} {f.rps:>8,.0f} req/s  p99 {f.p99_ms:6.1f} ms  load {f.load:.2f}"
                    f"  CPU/request: server {f.server_cpu_ms:.3f} ms, postgres {f.postgres_cpu_ms:.3f} ms",
                    flush=True,
                )
    figures = [_median(label, fs) for label, fs in runs.items()]
    a, b, c, d = (runs[k[3]] for k in kinds)
    print(f"  medians of {args.rounds} rounds (ratios: the median of each round's own ratio):")
    for f in figures:
        errors = f", {f.non_2xx} non-2xx" if f.non_2xx else ""
        loads = "/".join(f"{x.load:.1f}" for x in runs[f.label])
        print(
            f"  {f.label:<38} {f.rps:>8,.0f} req/s  p99 {f.p99_ms:6.1f} ms  load {loads}{errors}"
            f"  CPU/request: server {f.server_cpu_ms:.3f} ms, postgres {f.postgres_cpu_ms:.3f} ms",
            flush=True,
        )
    for name, num, den in (
        ("JSON (c) / raw (b)", c, b),
        ("JSON (c) / constant (a)", c, a),
        ("HTML (d) / raw (b)", d, b),
    ):
        ratios = [x.rps / y.rps for x, y in zip(num, den, strict=True)]
        each = ", ".join(f"{r:.0%}" for r in ratios)
        print(f"  {name:<26} {statistics.median(ratios):.0%}  (rounds: {each})", flush=True)
    return figures


def _median(label: str, figures: list[Figure]) -> Figure:
    return Figure(
        label,
        statistics.median(f.rps for f in figures),
        statistics.median(f.p99_ms for f in figures),
        sum(f.non_2xx for f in figures),
        statistics.median(f.load for f in figures),
        statistics.median(f.server_cpu_ms for f in figures),
        statistics.median(f.postgres_cpu_ms for f in figures),
    )


def _numbers(db_url: str) -> list[str]:
    if db_url.startswith("sqlite"):
        with sqlite3.connect(db_url.split("///", 1)[1]) as c:
            return [r[0] for r in c.execute("SELECT number FROM certificates")]
    import asyncio

    import asyncpg

    async def go() -> list[str]:
        conn = await asyncpg.connect(_libpq(db_url))
        try:
            return [r[0] for r in await conn.fetch("SELECT number FROM certificates")]
        finally:
            await conn.close()

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--officers", type=int, default=200_000)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers on PostgreSQL")
    parser.add_argument(
        "--sqlite-workers",
        type=int,
        default=sqlite_workers(cores()),
        help="workers on SQLite (default: what `app serve` chooses, one per core, at most 4)",
    )
    parser.add_argument("--sample", type=int, default=20_000, help="numbers wrk cycles through")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the four kinds (median)")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL"))
    parser.add_argument("--start-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found (apt-get install wrk)")
    print(f"public verification, {os.cpu_count()} CPUs", flush=True)
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
            run_engine("SQLite", f"sqlite+aiosqlite:///{tmp}/bench.db", args, tmp)
    with contextlib.ExitStack() as stack:
        url = args.postgres_url
        if args.start_postgres:
            url = stack.enter_context(throwaway_postgres())
        if not url:
            return
        if url.startswith("postgresql://"):
            url = "postgresql+asyncpg://" + url.split("://", 1)[1]
        name = f"bench_{secrets.token_hex(4)}"
        head, _, _ = url.rpartition("/")
        db_url = f"{head}/{name}"
        import asyncio

        asyncio.run(_pg(url, f'CREATE DATABASE "{name}"'))
        try:
            with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
                run_engine("PostgreSQL", db_url, args, tmp)
        finally:
            asyncio.run(_pg(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
