"""App-level fixtures: the Litestar app on the test database, an HTTP client that speaks CSRF, a world.

The app is built once per backend and session (``create_app`` costs more than most tests). Each test
gets it back as built (its state restored, fresh rate limiters), with its sessionmakers and the
PostgreSQL driver pool bound to the test's connection when the test runs inside a rolled-back outer
transaction (tests/conftest.py): the app then sees what the test wrote without a commit, and what
the app commits is rolled back with the test. On the commit path (``commits``) the app keeps its own
engine and pools.

Requests run on the test's own event loop (``InLoopTransport``), not on the thread that Litestar's
test client starts: one connection cannot serve two event loops.
"""

from __future__ import annotations

import copy
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import SimpleNamespace
from typing import Any

import anyio
import httpx
import pytest
from litestar import Litestar
from litestar.testing.transport import SendReceiveContext, TestClientTransport
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.asgi import create_app
from app.exams.cache import ExamCache
from app.lib.ratelimit import RateLimiter
from app.rosters.services.counts import CountCache
from app.settings import load_settings
from tests.conftest import joined_sessionmaker
from tests.factories import PASSWORD, World, build_world


class _OneConnectionPool:
    """Stands in for the asyncpg pool of ``app.db.DriverPool``: every acquire hands out the test's
    connection (inside its outer transaction; ``DriverPool.transaction`` then nests a savepoint)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        yield self.conn

    async def expire_connections(self) -> None:
        pass

    async def close(self) -> None:
        pass


FRESH_PER_TEST = (RateLimiter, CountCache, ExamCache)
"""What the app keeps in its state between requests (counters, caches): a fresh copy for each test."""


class _Pristine:
    """The app's state as ``create_app`` left it, to put back before every test."""

    def __init__(self, app: Litestar) -> None:
        self.state = dict(app.state)
        self.driver = app.state.driver
        self.driver_pool = self.driver._pool if self.driver is not None else None
        self.public_sqlite = app.state.public_lookup._sqlite
        self.reader = app.state.sqlite_reader
        self.reader_conn = self.reader._conn if self.reader is not None else None
        self.writer = app.state.exam_writer

    def restore(self, app: Litestar) -> None:
        for key in [k for k in app.state if k not in self.state]:
            del app.state[key]
        for key, value in self.state.items():
            # Rate limiters count hits, caches remember: each test starts with none. (A test's database
            # starts over, its audit ids too, so a count remembered under an earlier test's newest
            # audit id must not be taken for this one's.)
            app.state[key] = copy.deepcopy(value) if isinstance(value, FRESH_PER_TEST) else value
        if self.driver is not None:
            self.driver._pool = self.driver_pool
        app.state.public_lookup._sqlite = self.public_sqlite
        if self.reader is not None:
            self.reader._conn = self.reader_conn
        if self.writer is not None:
            self.writer.bind(None)


SessionApps = Callable[..., tuple[Litestar, _Pristine]]


@pytest.fixture(scope="session")
async def session_app(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SessionApps]:
    """The backend's apps, built once per session: ``session_app()`` the default one,
    ``session_app(EXAM_FAST_LANE="0")`` one with those settings on top."""
    var = str(tmp_path_factory.mktemp("var"))
    built: dict[tuple[tuple[str, str], ...], tuple[Litestar, _Pristine]] = {}

    def get(**overrides: str) -> tuple[Litestar, _Pristine]:
        key = tuple(sorted(overrides.items()))
        if key not in built:
            env = {
                "APP_ENV": "test",
                "DATABASE_URL": database_url,
                "SECRET_KEY": "t" * 40,
                "APP_VAR_DIR": var,
            }
            application = create_app(load_settings({**env, **overrides}))
            built[key] = (application, _Pristine(application))
        return built[key]

    try:
        yield get
    finally:
        for application, pristine in built.values():
            pristine.restore(application)
            await application.state.public_lookup.close()  # and the driver pool
            if application.state.sqlite_reader is not None:
                application.state.sqlite_reader.close()
            await application.state.db_engine.dispose()
            await application.state.db_write_engine.dispose()


async def _bind_to(app: Litestar, conn: AsyncConnection) -> None:
    """Point the app's database access at the test's connection and its outer transaction."""
    joined = joined_sessionmaker(conn)
    app.state.db_sessionmaker = joined
    # Write intent only chooses BEGIN IMMEDIATE on SQLite, and the outer transaction has begun.
    app.state.db_write_sessionmaker = joined
    # The public pages' read-only sessions too (read-only is not enforced inside a savepoint; the
    # tests in tests/integration/lib/test_read_replica.py check it on real sessions).
    app.state.db_read_sessionmaker = joined
    app.state.db_in_place_sessionmaker = joined
    raw = (await conn.get_raw_connection()).driver_connection
    if app.state.driver is not None:  # PostgreSQL: the hot paths' asyncpg pool
        app.state.driver._pool = _OneConnectionPool(raw)
    else:
        # SQLite: the public lookup queries a sqlite3 connection of its own in place; give it the
        # test's (SQLAlchemy's aiosqlite connections allow calls from other threads).
        app.state.public_lookup._sqlite = raw._conn
        if app.state.sqlite_reader is not None:  # and so do the principal and the overdue check
            app.state.sqlite_reader._conn = raw._conn
        # The exam writer's batches likewise run at once on the test's connection (savepoints).
        if app.state.exam_writer is not None:
            app.state.exam_writer.bind(raw._conn)


AppWith = Callable[..., Awaitable[Litestar]]


@pytest.fixture
async def app_with(
    session_app: SessionApps, db: AsyncSession, db_connection: AsyncConnection | None
) -> AsyncIterator[AppWith]:
    """``await app_with(EXAM_FAST_LANE="0")``: the session's app with those settings, ready for this
    test (restored, and joined to the test's outer transaction unless the test is on the commit path)."""
    used: list[tuple[Litestar, _Pristine]] = []

    async def get(**overrides: str) -> Litestar:
        application, pristine = session_app(**overrides)
        pristine.restore(application)
        if db_connection is not None:
            await _bind_to(application, db_connection)
        used.append((application, pristine))
        return application

    try:
        yield get
    finally:
        for application, pristine in used:
            pristine.restore(application)


@pytest.fixture
async def app(app_with: AppWith) -> Litestar:
    return await app_with()


class InLoopTransport(TestClientTransport[Any], httpx.AsyncBaseTransport):
    """Litestar's test transport, with the app awaited on the running event loop."""

    def __init__(self, app: Litestar, before_request: Callable[[], Awaitable[None]] | None = None) -> None:
        super().__init__(client=SimpleNamespace(app=app))  # type: ignore[arg-type]
        self.before_request = before_request

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.before_request is not None:
            await self.before_request()
        scope = self.parse_request(request)
        scope.update(method=request.method, http_version="1.1", extensions={"http.response.template": {}})
        context: SendReceiveContext = {
            "response_complete": anyio.Event(),
            "request_complete": False,
            "raw_kwargs": {"stream": io.BytesIO()},
            "response_started": False,
            "template": None,
            "context": None,
        }
        await self.client.app(
            scope,
            self.create_receive(request=request, context=context),
            self.create_send(request=request, context=context),
        )
        assert context["response_started"], "the app sent no response"
        raw_kwargs = context["raw_kwargs"]
        stream = httpx.ByteStream(raw_kwargs.pop("stream").getvalue())
        return httpx.Response(**raw_kwargs, stream=stream, request=request)


class Client:
    """An HTTP client that fetches the CSRF cookie and echoes it in the header, like the pages do."""

    def __init__(self, raw: httpx.AsyncClient, app: Litestar | None = None) -> None:
        self.raw = raw
        self.app = app

    async def csrf(self) -> str:
        token = self.raw.cookies.get("zf_csrf")
        if not token:
            await self.raw.get("/login")
            token = self.raw.cookies.get("zf_csrf")
        assert token, "no CSRF cookie set"
        return token

    async def get(self, url: str, **kw: Any) -> Any:
        return await self.raw.get(url, **kw)

    async def _unsafe(self, method: str, url: str, **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}) or {})
        headers.setdefault("x-csrftoken", await self.csrf())
        return await self.raw.request(method, url, headers=headers, **kw)

    async def post(self, url: str, **kw: Any) -> Any:
        return await self._unsafe("POST", url, **kw)

    async def put(self, url: str, **kw: Any) -> Any:
        return await self._unsafe("PUT", url, **kw)

    async def form(self, url: str, data: dict[str, Any], **kw: Any) -> Any:
        """Submit an HTML form the way a browser does: urlencoded, token in the body, HTML accepted."""
        body = {**data, "_csrf_token": await self.csrf()}
        headers = {"accept": "text/html", **kw.pop("headers", {})}
        return await self.raw.post(url, data=body, headers=headers, **kw)

    async def login(self, username: str, password: str = PASSWORD) -> Any:
        r = await self.post("/api/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return r


Connect = Callable[[Litestar], AbstractAsyncContextManager[Client]]


@pytest.fixture
def connect(db: AsyncSession, db_connection: AsyncConnection | None) -> Connect:
    """``async with connect(app) as client``: a client of the app on the test's event loop."""

    async def settle() -> None:
        # In the outer transaction the test's open read is a savepoint, and the app's writes would
        # nest inside it: a later ``db.rollback()`` ("a fresh snapshot") would undo them. End it
        # first, as each request of a real client comes after the test's last statement.
        if db_connection is not None and db.in_transaction():
            await db.commit()

    @asynccontextmanager
    async def open_client(app: Litestar, base_url: str = "http://testserver.local") -> AsyncIterator[Client]:
        transport = InLoopTransport(app, before_request=settle)
        # Redirects followed, as Litestar's test client and a browser do (a test that checks the 303
        # itself says follow_redirects=False).
        async with httpx.AsyncClient(transport=transport, base_url=base_url, follow_redirects=True) as raw:
            yield Client(raw, app)

    return open_client


@pytest.fixture
async def client(app: Litestar, connect: Connect) -> AsyncIterator[Client]:
    async with connect(app) as c:
        yield c


@pytest.fixture
async def world(db: AsyncSession) -> World:
    return await build_world(db)
