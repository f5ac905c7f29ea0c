"""Rate limits shared through Redis (REDIS_URL): exact across workers and instances, and served from
each process's memory, with one warning, while Redis is down.

scripts/test.sh starts a throwaway Redis and exports TEST_REDIS_URL; without it a private
redis-server is started here. Each pytest worker counts in a Redis database of its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app.asgi import create_app
from app.lib.errors import TooManyRequests
from app.lib.ratelimit import RateLimiter, RedisStore
from app.settings import load_settings
from tests.integration.conftest import Client, Connect
from tests.servers import Server, free_port

JSON = {"accept": "application/json"}
UNKNOWN = "/v/A2099999999"  # a well-formed number that names no card: 404, counted all the same


class RedisServer:
    """A private redis-server on a free loopback port, in memory only: stopped with SIGKILL and
    started again on the same port (empty, like a Redis restarted without persistence)."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary, self.workdir, self.port = binary, workdir, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/0?{PATIENT}"

    def start(self) -> None:
        args = ["--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        args += ["--databases", "64", "--dir", str(self.workdir)]
        self.proc = subprocess.Popen([self.binary, *args], stdout=subprocess.DEVNULL)  # noqa: S603
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def _redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        if not os.environ.get("TEST_REDIS_URL"):
            pytest.skip(
                "neither TEST_REDIS_URL nor redis-server: run `bash scripts/test.sh` (it installs and "
                "starts Redis) or apt-get install redis-server"
            )
        pytest.fail("redis-server is not installed: this test stops and restarts a Redis of its own")
    return binary


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(_redis_server_binary(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    server = RedisServer(_redis_server_binary(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.base
    finally:
        server.kill()


PATIENT = "socket_timeout=1&socket_connect_timeout=1&timeout=1"
"""Redis gets a second rather than 0.1 s (redis-py reads these from the URL): on a loaded test
machine an event loop late by 100 ms must not pass for an outage. The outages tested here are
refused connections; the timeout has a test of its own."""


@pytest.fixture
async def redis_url(redis_server_url: str, worker_id: str) -> str:
    """This worker's database of the test Redis, emptied."""
    db = 1 + (int(worker_id.removeprefix("gw")) if worker_id.startswith("gw") else 0)
    url = f"{redis_server_url.rstrip('/')}/{db}?{PATIENT}"
    client = Redis.from_url(url.partition("?")[0])  # ?timeout is a pool option of RedisStore's
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    return url


class Logged(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, part: str) -> list[logging.LogRecord]:
        return [r for r in self.records if part in r.getMessage()]


@pytest.fixture
def logged() -> Iterator[Logged]:
    """What app.lib.ratelimit logs. (Not caplog: building an app configures the root logger
    afresh, which drops caplog's handler.)"""
    handler, logger = Logged(), logging.getLogger("app.lib.ratelimit")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# ------------------------------------------------------------------ the store, as two workers


async def test_two_workers_share_the_count_exactly(redis_url: str) -> None:
    # Two stores on one Redis, as two worker processes have; 3 x 10 hits race for a limit of 10.
    one, two = RedisStore(redis_url), RedisStore(redis_url)
    try:
        workers = [RateLimiter("verify", limit=10, window_seconds=60, store=s) for s in (one, two)]

        async def knock(i: int) -> bool:
            try:
                await workers[i % 2].hit("203.0.113.7")
            except TooManyRequests:
                return False
            return True

        results = await asyncio.gather(*(knock(i) for i in range(30)))
        assert sum(results) == 10
        with pytest.raises(TooManyRequests) as exc:
            await workers[1].hit("203.0.113.7")
        assert 1 <= exc.value.retry_after <= 60 and f"{exc.value.retry_after}秒" in exc.value.message
        await workers[1].hit("203.0.113.8")  # another client counts apart
        login = RateLimiter("login", limit=10, window_seconds=60, store=one)
        await login.hit("203.0.113.7")  # and another bucket

        redis = Redis.from_url(redis_url.partition("?")[0])
        try:
            keys = sorted(k.decode() for k in await redis.keys("*"))
            ttl = await redis.ttl("zf:ratelimit:verify:203.0.113.7")
        finally:
            await redis.aclose()
        assert keys == [
            "zf:ratelimit:login:203.0.113.7",
            "zf:ratelimit:verify:203.0.113.7",
            "zf:ratelimit:verify:203.0.113.8",
        ]
        assert 0 < ttl <= 60  # a client that stops knocking leaves nothing behind
        assert not one.down and not two.down
    finally:
        await one.close()
        await two.close()


async def test_a_shared_check_records_nothing(redis_url: str) -> None:
    """``check`` (record=False) runs in the same script: over the limit it refuses, under it it adds
    nothing, in whichever worker it runs."""
    one, two = RedisStore(redis_url), RedisStore(redis_url)
    try:
        workers = [RateLimiter("login", limit=3, window_seconds=60, store=s) for s in (one, two)]
        for i in range(10):
            await workers[i % 2].check("192.0.2.9")
        for i in range(3):
            await workers[i % 2].record("192.0.2.9")
        await workers[0].record("192.0.2.9")  # at the limit: not refused
        for w in workers:
            with pytest.raises(TooManyRequests):
                await w.check("192.0.2.9")
        redis = Redis.from_url(redis_url.partition("?")[0])
        try:
            assert await redis.zcard("zf:ratelimit:login:192.0.2.9") == 3
        finally:
            await redis.aclose()
    finally:
        await one.close()
        await two.close()


async def test_a_store_that_never_answers_times_out_into_the_fallback(logged: Logged) -> None:
    # A listening socket that accepts and never replies: the socket timeout, not Redis's 5 s
    # default, decides; the hit is counted in this process and the request goes on.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    store = RedisStore(f"redis://127.0.0.1:{silent.getsockname()[1]}")
    limiter = RateLimiter("verify", limit=2, window_seconds=60, store=store)
    try:
        started = time.monotonic()
        await limiter.hit("198.51.100.1")
        assert time.monotonic() - started < 2.0
        await limiter.hit("198.51.100.1")
        with pytest.raises(TooManyRequests):
            await limiter.hit("198.51.100.1")
        assert store.down
        assert len(logged.messages("TimeoutError")) == 1
    finally:
        await store.close()
        silent.close()


# ------------------------------------------------------------------ two app instances


async def _apps(
    stack: AsyncExitStack, database_url: str, redis_url: str, var: Path, n: int, **env: str
) -> list[Litestar]:
    apps = []
    for _ in range(n):
        settings = load_settings(
            {
                "APP_ENV": "test",
                "DATABASE_URL": database_url,
                "SECRET_KEY": "t" * 40,
                "APP_VAR_DIR": str(var),
                "REDIS_URL": redis_url,
                **env,
            }
        )
        app = create_app(settings)
        stack.push_async_callback(_close, app)
        apps.append(app)
    return apps


async def _close(app: Litestar) -> None:
    await app.state.verify_limiter.store.close()
    await app.state.public_lookup.close()
    await app.state.db_engine.dispose()


async def _statuses(clients: list[Client], n: int, path: str = UNKNOWN) -> list[int]:
    """n lookups, the instances taking turns."""
    return [(await clients[i % len(clients)].get(path, headers=JSON)).status_code for i in range(n)]


async def test_health_reports_the_shared_store(
    database_url: str, db: AsyncSession, redis_url: str, connect: Connect, tmp_path: Path
) -> None:
    """/health names the rate store when REDIS_URL is set: ok, or degraded (200: each process then
    counts its own limits, the service goes on) when Redis does not answer."""
    closed = free_port()  # nothing listens there
    async with AsyncExitStack() as stack:
        shared = (await _apps(stack, database_url, redis_url, tmp_path, 1))[0]
        lost = (await _apps(stack, database_url, f"redis://127.0.0.1:{closed}/0", tmp_path, 1))[0]
        ok = await (await stack.enter_async_context(connect(shared))).get("/health")
        down = await (await stack.enter_async_context(connect(lost))).get("/health")
    assert (ok.status_code, ok.json()) == (200, {"status": "ok", "database": "ok", "rate_limits": "ok"})
    assert (down.status_code, down.json()) == (
        200,
        {"status": "degraded", "database": "ok", "rate_limits": "unreachable"},
    )


async def test_public_and_login_limits_hold_across_two_instances(
    database_url: str, db: AsyncSession, redis_url: str, connect: Connect, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        apps = await _apps(stack, database_url, redis_url, tmp_path, 2)
        assert apps[0].state.verify_limiter.store is not apps[1].state.verify_limiter.store
        clients = [await stack.enter_async_context(connect(app)) for app in apps]

        # VERIFY_RATE_PER_MINUTE (60): 60 lookups between the two, the 61st refused by either.
        assert await _statuses(clients, 60) == [404] * 60
        for client in clients:
            r = await client.get(UNKNOWN, headers=JSON)
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
            assert "秒后再试" in r.json()["detail"]

        # The login limit (20 a minute per address): 20 attempts between the two, then refused.
        async def login(client: Client) -> int:
            r = await client.post(
                "/api/auth/login", json={"username": "nobody", "password": "wrong-password1"}
            )
            return int(r.status_code)

        answers = [await login(clients[i % 2]) for i in range(20)]
        assert 429 not in answers and all(400 <= s < 500 for s in answers)
        assert [await login(c) for c in clients] == [429, 429]


# ------------------------------------------------------------------ Redis stopped mid-run


async def test_redis_stopped_mid_run_falls_back_then_shares_again(
    database_url: str,
    db: AsyncSession,
    private_redis: RedisServer,
    connect: Connect,
    logged: Logged,
    tmp_path: Path,
) -> None:
    async with AsyncExitStack() as stack:
        apps = await _apps(stack, database_url, private_redis.url, tmp_path, 2, VERIFY_RATE_PER_MINUTE="5")
        for app in apps:
            app.state.verify_limiter.store.retry_seconds = 0.2  # try Redis again sooner than 1 s
        a, b = [await stack.enter_async_context(connect(app)) for app in apps]

        # Shared: 5 lookups between the two instances, then both refuse.
        assert await _statuses([a, b], 7) == [404] * 5 + [429] * 2

        private_redis.kill()
        # Down: every request is answered (never a 500), each instance counting its own 5.
        assert await _statuses([a], 7) == [404] * 5 + [429] * 2
        assert await _statuses([b], 7) == [404] * 5 + [429] * 2
        warnings = logged.messages("unavailable")
        assert len(warnings) == 2  # once per instance and outage, not once per request
        assert all(r.levelno == logging.WARNING and "REDIS_URL" in r.getMessage() for r in warnings)
        assert all(app.state.verify_limiter.store.down for app in apps)

        private_redis.start()  # empty, like a Redis restarted without persistence
        await asyncio.sleep(0.3)
        # Shared again: the instances' own counts are full, yet 5 more pass between the two
        # (Redis counts afresh), and then both refuse.
        assert await _statuses([a, b], 7) == [404] * 5 + [429] * 2
        assert not any(app.state.verify_limiter.store.down for app in apps)
        assert len(logged.messages("is back")) == 2


# ------------------------------------------------------------------ real servers, several workers


@pytest.mark.slow  # four server processes: make test-slow
@pytest.mark.parametrize("shared_in", ["redis", "file"])
async def test_two_servers_with_two_workers_each_hold_the_limits(
    backend: str, database_url: str, db: AsyncSession, redis_url: str, tmp_path: Path, shared_in: str
) -> None:
    """The issue's measurement, repeated: with two workers 108 of 150 lookups passed a 60/min limit
    and 36 of 45 logins passed 20/min. Now two instances of two workers each pass exactly 60 and 20
    (PostgreSQL, Redis). Without Redis one server's two workers do, counting in a file of this
    machine: beside the SQLite database, or the one ``app serve`` names on PostgreSQL."""
    if backend == "sqlite" and shared_in == "redis":
        pytest.skip("one server per SQLite file: the two-instance case is PostgreSQL's")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "APP_ENV": "test",
        "APP_VAR_DIR": str(tmp_path),
        "SECRET_KEY": "k" * 40,
        "REDIS_URL": redis_url,
        "PYTHONUNBUFFERED": "1",
    }
    if shared_in == "file":
        del env["REDIS_URL"]
    instances = 1 if shared_in == "file" else 2
    servers = [Server(env, free_port(), tmp_path / f"server{i}.log", workers=2) for i in range(instances)]
    try:
        for server in servers:
            server.start(wait=False)  # both start at once
        for server in servers:
            server.wait_ready()
        # No kept connections: each request is accepted by whichever worker of the instance wins.
        fresh = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=10, limits=fresh) as http:
            bases = [servers[i % instances].base_url for i in range(2)]

            async def lookup(i: int) -> int:
                r = await http.get(bases[i % 2] + UNKNOWN, headers=JSON)
                return r.status_code

            lookups = await asyncio.gather(*(lookup(i) for i in range(150)))
            assert sorted(lookups) == [404] * 60 + [429] * 90

            # The CSRF cookie (no port in a cookie's scope) serves both: they share SECRET_KEY.
            await http.get(bases[0] + "/login")
            csrf = {"x-csrftoken": http.cookies["zf_csrf"]}

            async def login(i: int) -> int:
                body = {"username": "nobody", "password": "wrong-password1"}
                r = await http.post(bases[i % 2] + "/api/auth/login", json=body, headers=csrf)
                return r.status_code

            logins = [await login(i) for i in range(45)]
            assert logins.count(429) == 25 and 429 not in logins[:20]
    finally:
        for server in servers:
            server.stop()
    for server in servers:
        assert "Traceback" not in server.log.read_text(errors="replace")
