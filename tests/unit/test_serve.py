"""`app serve`: the configuration it chooses (workers, open files), one server per SQLite file, and
X-Forwarded-For trusted only from the proxies named in FORWARDED_ALLOW_IPS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner

from app import settings as settings_module
from app.cli import cli
from app.cli.serve import ServeRefused, serve_plan
from app.db import DatabaseInUse, hold_sqlite_file
from app.settings import WORKERS_LIMITS_ENV, SettingsError, load_settings


def _own_db(tmp_path: Path) -> dict[str, str]:
    """A SQLite file of the test's own: `app serve` claims the file it serves."""
    return {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"}


_HOLD = "from app.db import hold_sqlite_file; import sys, time; hold_sqlite_file(sys.argv[1]); print('held', flush=True); time.sleep(60)"


def test_a_second_server_on_the_same_sqlite_file_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = _own_db(tmp_path)["DATABASE_URL"]
    first = subprocess.Popen([sys.executable, "-c", _HOLD, url], stdout=subprocess.PIPE, text=True)  # noqa: S603 - this interpreter, our code
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "held"
        started: list[Any] = []
        settings = load_settings({"SECRET_KEY": "dev-key", "DATABASE_URL": url})
        monkeypatch.setattr(settings_module, "get_settings", lambda: settings)
        monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: started.append(kw))

        result = CliRunner().invoke(cli, ["serve"])

        assert result.exit_code == 1 and started == []
        assert "已由另一个服务进程" in result.output and f"进程号 {first.pid}" in result.output
        with pytest.raises(DatabaseInUse, match="SQLite 只能由一个服务实例打开"):
            hold_sqlite_file(url)
    finally:
        first.kill()
        first.wait()
    # The kernel released the lock with the killed process (kill -9 included): the file is free.
    assert hold_sqlite_file(url) == str(tmp_path / "app.db") + ".lock"
    assert hold_sqlite_file(url) == str(tmp_path / "app.db") + ".lock"  # again in one process: a no-op


@pytest.mark.parametrize("url", ["postgresql+asyncpg://u@127.0.0.1/db", "sqlite+aiosqlite:///:memory:"])
def test_only_a_sqlite_file_is_claimed(url: str) -> None:
    assert hold_sqlite_file(url) is None


@pytest.mark.parametrize(
    ("allow", "proxy_headers", "forwarded"),
    [("", False, None), ("10.0.0.5", True, "10.0.0.5"), ("10.0.0.5,10.0.0.6", True, "10.0.0.5,10.0.0.6")],
)
def test_proxy_headers_follow_the_trusted_proxy_list(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, allow: str, proxy_headers: bool, forwarded: str | None
) -> None:
    seen: dict[str, Any] = {}
    settings = load_settings({"SECRET_KEY": "dev-key", "FORWARDED_ALLOW_IPS": allow, **_own_db(tmp_path)})
    monkeypatch.setattr(settings_module, "get_settings", lambda: settings)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))

    result = CliRunner().invoke(cli, ["serve"])

    assert result.exit_code == 0, result.output
    assert seen["proxy_headers"] is proxy_headers and seen["forwarded_allow_ips"] == forwarded


@pytest.mark.parametrize(("given", "expected"), [(None, 75), ("120", 120), ("5", 5)])
def test_idle_connections_outlive_the_autosave_interval(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, given: str | None, expected: int
) -> None:
    """An exam page saves every 30 s: by default its connection stays open between saves."""
    seen: dict[str, Any] = {}
    environ = {"SECRET_KEY": "dev-key", **_own_db(tmp_path)} | (
        {} if given is None else {"KEEP_ALIVE_SECONDS": given}
    )
    settings = load_settings(environ)
    monkeypatch.setattr(settings_module, "get_settings", lambda: settings)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))

    result = CliRunner().invoke(cli, ["serve"])

    assert result.exit_code == 0, result.output
    assert seen["timeout_keep_alive"] == expected


@pytest.mark.parametrize("given", ["0", "-5", "ten", "7.5"])
def test_a_keep_alive_that_is_not_a_positive_number_is_refused(given: str) -> None:
    with pytest.raises(SettingsError, match="KEEP_ALIVE_SECONDS must be a positive whole number"):
        load_settings({"SECRET_KEY": "dev-key", "KEEP_ALIVE_SECONDS": given})


def test_a_server_process_collects_cycles_rarely_and_skips_its_startup_objects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``app_factory`` (what each uvicorn worker runs) freezes what startup built and raises the
    collector's thresholds: a full collection of a busy worker's heap stopped it for 250+ ms."""
    import gc

    from app import asgi

    built: list[int] = []
    claimed: list[str] = []
    monkeypatch.setattr(asgi, "create_app", lambda: built.append(1) or "app")
    monkeypatch.setattr(asgi, "hold_sqlite_file", claimed.append)  # each worker claims its SQLite file
    before, switch = gc.get_threshold(), sys.getswitchinterval()
    try:
        assert asgi.app_factory() == "app" and built == [1]
        assert claimed == [settings_module.get_settings().database_url]
        assert gc.get_threshold() == asgi.GC_THRESHOLDS == (20_000, 20, 20)
        assert gc.get_freeze_count() > 0
        # The database threads get the GIL back within a millisecond (CPython's default: 5 ms).
        assert sys.getswitchinterval() == asgi.SWITCH_INTERVAL_S == 0.001
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
        sys.setswitchinterval(switch)


_FILES = (65_536, 65_536)


@pytest.mark.parametrize(
    ("sqlite", "workers", "cores", "pool_size", "reload", "expected", "says"),
    [
        # PostgreSQL: one worker per core, as many as the connection budget serves at full pools.
        (False, None, 1, 10, False, 1, "按 1 个 CPU 核心"),
        (False, None, 2, 10, False, 2, "按 2 个 CPU 核心"),
        (False, None, 16, 10, False, 3, "受连接数限制（每进程至多 30 个连接，合计不超过 90）"),
        (False, None, 16, 5, False, 6, "受连接数限制"),
        (False, None, 4, 100, False, 1, "受连接数限制"),
        (False, 8, 2, 10, False, 8, "8 个工作进程（--workers 指定），各进程共用本机的限流计数"),
        (False, 1, 16, 10, False, 1, "1 个工作进程（--workers 指定）"),
        # SQLite: one worker per core, at most four; several share the rate limits' file.
        (True, None, 1, 10, False, 1, "SQLite：1 个工作进程（按 1 个 CPU 核心"),
        (
            True,
            None,
            2,
            10,
            False,
            2,
            "SQLite：2 个工作进程（按 2 个 CPU 核心；--workers 可指定），各进程共用",
        ),
        (True, None, 16, 10, False, 4, "按 16 个 CPU 核心，至多 4 个"),
        (True, None, 16, 10, False, 4, "WAL 日志、synchronous=NORMAL"),
        (True, 1, 16, 10, False, 1, "SQLite：1 个工作进程（--workers 指定），WAL"),
        (
            True,
            3,
            1,
            10,
            False,
            3,
            "SQLite：3 个工作进程（--workers 指定），各进程共用数据库文件旁的限流计数",
        ),
        # --reload: one process on either engine.
        (False, None, 16, 10, True, 1, "开发模式（--reload），单进程"),
        (True, 1, 2, 10, True, 1, "开发模式"),
    ],
)
def test_serve_plan_chooses_the_workers(
    sqlite: bool, workers: int | None, cores: int, pool_size: int, reload: bool, expected: int, says: str
) -> None:
    plan = serve_plan(
        sqlite=sqlite, workers=workers, cores=cores, pool_size=pool_size, reload=reload, open_files=_FILES
    )
    assert plan.workers == expected and says in plan.summary, plan.summary
    assert plan.open_files is None


@pytest.mark.parametrize(
    ("sqlite", "workers", "redis", "file", "says"),
    [
        (False, 2, False, True, "，各进程共用本机的限流计数（多台服务器请设置 REDIS_URL）"),
        (False, 2, True, False, "，各进程共用 Redis 中的限流计数"),
        (False, 1, False, False, "PostgreSQL：1 个工作进程（--workers 指定）；"),  # alone: its memory
        (True, 2, False, False, "，各进程共用数据库文件旁的限流计数"),  # the file beside the database
        (True, 2, True, False, "，各进程共用 Redis 中的限流计数"),
        (True, 1, False, False, "SQLite：1 个工作进程（--workers 指定），WAL"),
    ],
)
def test_serve_plan_says_where_the_workers_count_the_limits(
    sqlite: bool, workers: int, redis: bool, file: bool, says: str
) -> None:
    """Several workers count the rate limits together: in Redis when there is one, else in a file of
    the machine (``app serve`` names it on PostgreSQL: ``limits_file``)."""
    plan = serve_plan(
        sqlite=sqlite, workers=workers, cores=4, pool_size=10, reload=False, open_files=_FILES, redis=redis
    )
    assert says in plan.summary and plan.limits_file is file, plan.summary


@pytest.mark.parametrize(
    ("sqlite", "workers", "reload", "message"),
    [
        (False, 0, False, "--workers 至少为 1"),
        (True, 0, False, "--workers 至少为 1"),
        (False, 2, True, "--reload 只能以单进程运行"),
    ],
)
def test_serve_plan_refuses_what_cannot_run(sqlite: bool, workers: int, reload: bool, message: str) -> None:
    with pytest.raises(ServeRefused, match=message):
        serve_plan(sqlite=sqlite, workers=workers, cores=4, pool_size=10, reload=reload, open_files=_FILES)


@pytest.mark.parametrize(
    ("limits", "raise_to", "says"),
    [
        ((1024, 524_288), 65_536, "可打开文件数上限 65536（由 1024 提高）"),
        ((1024, 4096), 4096, "可打开文件数上限 4096（由 1024 提高）"),
        ((1024, -1), 65_536, "由 1024 提高"),  # hard limit unlimited
        ((20_000, 20_000), None, "可打开文件数上限 20000"),
        ((100_000, 200_000), None, "可打开文件数上限 100000"),  # never lowered
        ((-1, -1), None, "可打开文件数上限 不限"),
    ],
)
def test_serve_plan_raises_the_open_files_limit_for_keep_alive_connections(
    limits: tuple[int, int], raise_to: int | None, says: str
) -> None:
    plan = serve_plan(sqlite=False, workers=None, cores=2, pool_size=10, reload=False, open_files=limits)
    assert plan.open_files == raise_to and says in plan.summary, plan.summary


@pytest.mark.parametrize(
    ("url", "args", "workers", "printed"),
    [
        ("sqlite", [], 2, "SQLite：2 个工作进程（按 2 个 CPU 核心"),
        ("postgresql+asyncpg://u@127.0.0.1/db", [], 2, "PostgreSQL：2 个工作进程（按 2 个 CPU 核心"),
        (
            "postgresql+asyncpg://u@127.0.0.1/db",
            ["--workers", "3"],
            3,
            "PostgreSQL：3 个工作进程（--workers 指定）",
        ),
    ],
)
def test_serve_runs_and_prints_the_chosen_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str, args: list[str], workers: int, printed: str
) -> None:
    from app.cli import serve as serve_module

    seen: dict[str, Any] = {}
    database = _own_db(tmp_path) if url == "sqlite" else {"DATABASE_URL": url}
    settings = load_settings({"SECRET_KEY": "dev-key", **database})
    monkeypatch.setattr(settings_module, "get_settings", lambda: settings)
    monkeypatch.setattr(serve_module, "cores", lambda: 2)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    # What the supervisor names its workers is put back after the test (serve sets it in-process).
    monkeypatch.setenv(WORKERS_LIMITS_ENV, "")

    result = CliRunner().invoke(cli, ["serve", *args])

    assert result.exit_code == 0, result.output
    assert seen["workers"] == workers and f"运行配置：{printed}" in result.output, result.output
    # PostgreSQL's workers (no Redis here) are told the file to count the limits in; SQLite's
    # share the one beside the database by themselves.
    named = os.environ[WORKERS_LIMITS_ENV]
    assert named.endswith("ratelimits") if url != "sqlite" else named == "", named


def test_serve_refuses_several_workers_on_an_in_memory_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Any] = []
    settings = load_settings({"SECRET_KEY": "dev-key", "DATABASE_URL": "sqlite+aiosqlite:///:memory:"})
    monkeypatch.setattr(settings_module, "get_settings", lambda: settings)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: started.append(kw))

    refused = CliRunner().invoke(cli, ["serve", "--workers", "2"])
    assert refused.exit_code == 2 and started == []
    assert "内存中的 SQLite 数据库只能由单进程使用" in refused.output

    chosen = CliRunner().invoke(cli, ["serve"])
    assert chosen.exit_code == 0 and started[0]["workers"] == 1
    assert "SQLite（内存数据库）：单进程" in chosen.output


# A server's supervisor: claims the file, then starts a worker as uvicorn does (a child process),
# which claims it too and reports; the supervisor then waits to be killed.
_SUPERVISOR = """
import subprocess, sys, time
from app.db import hold_sqlite_file
hold_sqlite_file(sys.argv[1])
child = subprocess.Popen([sys.executable, "-c", sys.argv[2], sys.argv[1]])
time.sleep(60)
"""
_WORKER = """
import sys, time
from app.db import hold_sqlite_file, sqlite_shared_by_workers
hold_sqlite_file(sys.argv[1])
import os
print("worker", sqlite_shared_by_workers(sys.argv[1]), os.getpid(), flush=True)
time.sleep(60)
"""


def test_the_workers_of_the_holding_server_share_the_file_and_die_with_it(tmp_path: Path) -> None:
    """``app serve --workers N`` on SQLite: the supervisor holds the file, its workers are let in
    (and count the rate limits together); killed with -9, it takes its workers with it, so that no
    orphan keeps serving the file beside the next server."""
    import os
    import signal
    import time

    url = _own_db(tmp_path)["DATABASE_URL"]
    supervisor = subprocess.Popen(  # noqa: S603 - this interpreter, our code
        [sys.executable, "-c", _SUPERVISOR, url, _WORKER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert supervisor.stdout is not None
        said, shared, pid = supervisor.stdout.readline().split()
        assert (said, shared) == ("worker", "True")
        worker = int(pid)
        with pytest.raises(DatabaseInUse, match=f"进程号 {supervisor.pid}"):
            hold_sqlite_file(url)  # anyone else, not a child of the holder, is refused
    finally:
        supervisor.kill()
        supervisor.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its killed supervisor")
    assert hold_sqlite_file(url) == str(tmp_path / "app.db") + ".lock"


PG = "postgresql+asyncpg://u@127.0.0.1/db"


@pytest.mark.parametrize(
    ("database", "redis", "shared", "store"),
    [
        ("sqlite", "", False, None),  # the one process serving the file: each limiter's memory
        ("sqlite", "", True, "FileStore"),  # a worker of several: the file beside the database
        ("sqlite", "redis://127.0.0.1:1/0", True, "RedisStore"),  # Redis first, when there is one
        (PG, "", False, None),  # a process alone
        (PG, "", True, "FileStore"),  # a worker of `app serve`: the file it names
        (PG, "redis://127.0.0.1:1/0", True, "RedisStore"),
    ],
)
async def test_the_rate_limits_count_where_every_worker_sees_them(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    database: str,
    redis: str,
    shared: bool,
    store: str | None,
) -> None:
    from app import asgi
    from app import db as db_module

    url = _own_db(tmp_path)["DATABASE_URL"] if database == "sqlite" else database
    env = {"SECRET_KEY": "dev-key", "DATABASE_URL": url, "REDIS_URL": redis}
    if shared and database == PG:
        env[WORKERS_LIMITS_ENV] = str(tmp_path / "ratelimits")  # as `app serve` names it
    settings = load_settings(env)
    if shared and database == "sqlite":
        monkeypatch.setitem(db_module._HELD, str(tmp_path / "app.db") + ".lock", db_module.BY_PARENT)
    chosen = asgi.rate_store(settings)
    try:
        assert (type(chosen).__name__ if chosen is not None else None) == store
        if store == "FileStore":
            named = tmp_path / ("app.db.limits" if database == "sqlite" else "ratelimits")
            assert chosen.path == str(named)  # type: ignore[union-attr]
    finally:
        if chosen is not None:
            await chosen.close()
