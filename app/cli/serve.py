"""`app serve`: the web service under uvicorn, in the fastest configuration the engine allows.

``serve_plan`` decides (a pure function, tested by a table of cases): on PostgreSQL one worker
process per core, as many as PostgreSQL's default connection limit serves at full pools, unless
``--workers`` says otherwise; on SQLite one process per core too, at most ``SQLITE_WORKERS`` (they
write the one file in turn, each through its own exam-day writer; the workers of one server count
the rate limits together in a file beside the database; ``app.db.hold_sqlite_file``), with the
connection settings of ``app.db`` (an in-memory database: one process). The open-files limit is
raised so that an exam day's keep-alive connections fit. The chosen configuration is printed at
start.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import click

from app.cli.base import cli

PG_CONNECTIONS = 90
"""Connections the workers may hold together: PostgreSQL's default max_connections (100) less a
margin for migrations, consoles and its reserved superuser slots."""
SQLITE_WORKERS = 4
"""Worker processes on SQLite at most, by default: they share the file's one writer (WAL lets readers
run beside it), and ``bench/sqlite_writers.py`` measured up to four writers' batches on one file."""
OPEN_FILES = 65_536
"""Wanted soft limit of open files: each exam candidate keeps one connection (keep-alive)."""


class ServeRefused(Exception):
    """A configuration that cannot run; ``message`` in Chinese."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class ServePlan:
    workers: int
    summary: str
    """What was chosen and why, in Chinese, for the start-up line."""
    open_files: int | None = None
    """Raise the soft open-files limit to this, or leave it (None)."""
    limits_file: bool = False
    """Name the workers a file of this machine to count the rate limits in together (PostgreSQL,
    several workers, no Redis; on SQLite they share one beside the database by themselves)."""


def serve_plan(
    *,
    sqlite: bool,
    workers: int | None,
    in_memory: bool = False,
    cores: int,
    pool_size: int,
    reload: bool,
    open_files: tuple[int, int],
    redis: bool = False,
) -> ServePlan:
    """How to run: worker processes, where they count the rate limits together, and the open-files
    limit, from the engine, the cores and the options.

    ``workers``: ``--workers`` or None; ``pool_size``: DB_POOL_SIZE (each worker holds up to twice
    it in SQLAlchemy's pool and once more in the driver pool); ``open_files``: (soft, hard) limits;
    ``redis``: REDIS_URL is set.
    """
    if workers is not None and workers < 1:
        raise ServeRefused("--workers 至少为 1")
    soft, hard = open_files
    wanted = OPEN_FILES if hard < 0 else min(OPEN_FILES, hard)  # RLIM_INFINITY is -1
    raise_to = wanted if 0 <= soft < wanted else None
    if raise_to is not None:
        files = f"可打开文件数上限 {raise_to}（由 {soft} 提高）"
    else:
        files = f"可打开文件数上限 {'不限' if soft < 0 else soft}"
    if reload:
        if workers not in (None, 1):
            raise ServeRefused("--reload 只能以单进程运行，不能与 --workers 同用")
        return ServePlan(1, f"开发模式（--reload），单进程；{files}", raise_to)
    if sqlite and in_memory:
        if workers not in (None, 1):
            raise ServeRefused("内存中的 SQLite 数据库只能由单进程使用；多进程请使用数据库文件或 PostgreSQL")
        return ServePlan(1, f"SQLite（内存数据库）：单进程；{files}", raise_to)
    if sqlite:
        tuning = "WAL 日志、synchronous=NORMAL"
        if workers is not None:
            chosen, why = workers, "--workers 指定"
        else:
            chosen = sqlite_workers(cores)
            why = f"按 {cores} 个 CPU 核心" + (
                f"，至多 {SQLITE_WORKERS} 个" if cores > SQLITE_WORKERS else ""
            )
            why += "；--workers 可指定"
        return ServePlan(
            chosen,
            f"SQLite：{chosen} 个工作进程（{why}）{_shared_limits(chosen, redis, sqlite=True)}，{tuning}；{files}",
            raise_to,
        )
    per_worker = 3 * pool_size
    fit = max(1, PG_CONNECTIONS // per_worker)
    if workers is not None:
        chosen, why = workers, "--workers 指定"
    else:
        chosen = max(1, min(cores, fit))
        why = f"按 {cores} 个 CPU 核心" + (
            f"，受连接数限制（每进程至多 {per_worker} 个连接，合计不超过 {PG_CONNECTIONS}）"
            if fit < cores
            else ""
        )
        why += "；--workers 可指定"
    return ServePlan(
        chosen,
        f"PostgreSQL：{chosen} 个工作进程（{why}）{_shared_limits(chosen, redis, sqlite=False)}；{files}",
        raise_to,
        limits_file=chosen > 1 and not redis,
    )


def _shared_limits(workers: int, redis: bool, *, sqlite: bool) -> str:
    """Where several workers count the rate limits together, for the start-up line."""
    if workers == 1:
        return ""
    if redis:
        return "，各进程共用 Redis 中的限流计数"
    if sqlite:
        return "，各进程共用数据库文件旁的限流计数"
    return "，各进程共用本机的限流计数（多台服务器请设置 REDIS_URL）"


def sqlite_workers(cores: int) -> int:
    """The workers ``app serve`` starts on a SQLite file by default: one per core, at most
    ``SQLITE_WORKERS`` (``bench/verify_bench.py`` runs the same)."""
    return max(1, min(cores, SQLITE_WORKERS))


def cores() -> int:
    """The cores this process may run on (a container's or taskset's share, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, type=int, show_default=True)
@click.option(
    "--workers",
    default=None,
    type=int,
    help="Processes. Default: one per core (PostgreSQL: up to what its connections allow; SQLite: at most 4).",
)
@click.option("--reload", is_flag=True, help="Reload on code changes (development).")
def serve(host: str, port: int, workers: int | None, reload: bool) -> None:
    """Run the web service."""
    import resource

    import uvicorn

    from app.db import DatabaseInUse, hold_sqlite_file, sqlite_file
    from app.settings import VAR_DIR, WORKERS_LIMITS_ENV, get_settings

    settings = get_settings()
    try:
        plan = serve_plan(
            sqlite=settings.is_sqlite,
            in_memory=settings.is_sqlite and sqlite_file(settings.database_url) is None,
            workers=workers,
            cores=cores(),
            pool_size=settings.db_pool_size,
            reload=reload,
            open_files=resource.getrlimit(resource.RLIMIT_NOFILE),
            redis=bool(settings.redis_url),
        )
    except ServeRefused as exc:
        raise click.UsageError(exc.message) from exc
    if not reload:  # with --reload the server runs in a child process, which claims the file itself
        try:
            hold_sqlite_file(settings.database_url)
        except DatabaseInUse as exc:
            raise click.ClickException(str(exc)) from exc
    if plan.open_files is not None:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (plan.open_files, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        )
    click.echo(
        f"行政执法人员资格管理系统 listening on http://{host}:{port} ({settings.database_url.split('://')[0]})"
    )
    if plan.limits_file:  # the spawned workers inherit the variable
        limits = VAR_DIR / "ratelimits"
        with contextlib.suppress(OSError):  # if it cannot be made, each worker warns and counts alone
            limits.parent.mkdir(parents=True, exist_ok=True)
        os.environ[WORKERS_LIMITS_ENV] = str(limits)
    click.echo(f"运行配置：{plan.summary}")
    uvicorn.run(
        "app.asgi:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=plan.workers,
        reload=reload,
        # Behind a reverse proxy every request comes from the proxy's address, and per-client limits
        # (login, public lookups) would throttle everyone at once: trust X-Forwarded-For from the
        # proxies named in FORWARDED_ALLOW_IPS only, never from anyone (it is trivially spoofed).
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        timeout_keep_alive=settings.keep_alive_seconds,
        log_level="info",
        access_log=False,
    )
