"""Shared fixtures: one migrated database per backend, and a clean slate for every test.

Every test that asks for ``db`` (or anything built on it) runs twice, once on SQLite and once on
PostgreSQL. ``scripts/test.sh`` (``make test``) starts the PostgreSQL server and exports
``TEST_POSTGRES_URL``; without it the PostgreSQL half fails rather than quietly skipping. Under
pytest-xdist every worker is its own pytest session, so it creates and migrates databases of its own.

Fixture chain (session-scoped per backend unless noted)::

    backend → create_database → database_url (migrated to head) → engine → sessionmaker
    engine → db_connection (per test) → db (per test)

Two ways to give each test a clean slate:

* the default: the test runs inside one outer transaction on one connection (``db_connection``),
  rolled back at the end. ``db`` and the app's sessionmakers (tests/integration/conftest.py) join it
  with ``join_transaction_mode="create_savepoint"``: their commits release savepoints, nothing ever
  reaches the database, and nothing has to be emptied;
* the commit path, for tests marked ``commits``: real commits, seen by other connections, and every
  table emptied afterwards (TRUNCATE on PostgreSQL, DELETE on SQLite). For what needs several
  connections: console commands and servers in subprocesses, concurrent transactions, engines of
  the test's own. ``slow`` tests and tests that ask for ``engine``, ``sessionmaker``,
  ``database_url`` or ``create_database`` themselves are put on it automatically (see
  ``pytest_collection_modifyitems``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import aiosqlite
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from app.db import make_engine, make_sessionmaker
from app.lib import migrate
from app.models import metadata

BACKENDS = ["sqlite", "postgresql"]

CreateDatabase = Callable[[], Awaitable[str]]


@pytest.fixture(scope="session", params=BACKENDS, ids=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database engine under test: ``sqlite`` or ``postgresql``."""
    name: str = request.param
    if name == "postgresql" and not os.environ.get("TEST_POSTGRES_URL"):
        pytest.fail(
            "TEST_POSTGRES_URL is not set, so the PostgreSQL tests cannot run. "
            "Run the tests with `make test` (scripts/test.sh starts a throwaway PostgreSQL 15), "
            "or export TEST_POSTGRES_URL=postgresql+asyncpg://user@host:port/postgres yourself.",
            pytrace=False,
        )
    return name


@pytest.fixture(scope="session")
async def create_database(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[CreateDatabase]:
    """Factory for fresh, empty databases (no migrations applied) on the current backend.

    Each call returns the async URL of a new database; all of them are dropped when the session
    ends. Tests that need a database of their own (the migration tests) use it directly.
    """
    created: list[str] = []

    if backend == "sqlite":

        async def create_sqlite() -> str:
            path = tmp_path_factory.mktemp("sqlite") / "test.db"
            return f"sqlite+aiosqlite:///{path}"

        yield create_sqlite
        return  # pytest removes its temporary directories itself

    server_url = os.environ["TEST_POSTGRES_URL"]
    # CREATE/DROP DATABASE cannot run inside a transaction block.
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)

    # The pytest-xdist worker (gw0, gw1, …) in the name: which worker left a database behind, if one does.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")

    async def create_postgresql() -> str:
        name = f"test_{worker}_{secrets.token_hex(6)}"
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return make_url(server_url).set(database=name).render_as_string(hide_password=False)

    try:
        yield create_postgresql
    finally:
        async with admin.connect() as conn:
            for name in created:
                # FORCE: a test that leaked a connection must not leave its database behind.
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture(scope="session")
async def database_url(create_database: CreateDatabase) -> str:
    """A database shared by the backend's tests, migrated to the Alembic head."""
    url = await create_database()
    # alembic/env.py calls asyncio.run(), which cannot nest inside the running test loop.
    await asyncio.to_thread(migrate.upgrade, url, "head")
    return url


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The application's engine (same pragmas and pool settings) on the shared test database."""
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Read-intent sessions (deferred BEGIN on SQLite): a test holding one never blocks the app's writers.
    return make_sessionmaker(engine, write=False)


COMMIT_FIXTURES = frozenset({"engine", "sessionmaker", "database_url", "create_database"})
"""Asked for by a test, or by a fixture of its other than those below, these mean connections of
the test's own (another engine, an app of its own, a console command): the test runs on the commit path."""
JOINING_FIXTURES = frozenset(
    {"engine", "sessionmaker", "database_url", "db_connection", "db", "session_app", "app_with", "app"}
)
"""The fixtures that build the shared databases or join the test's outer transaction."""


def _needs_own_connections(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    if set(info.argnames) & COMMIT_FIXTURES:
        return True
    return any(
        set(fixturedef.argnames) & COMMIT_FIXTURES
        for name, fixturedefs in info.name2fixturedefs.items()
        if name not in JOINING_FIXTURES
        for fixturedef in fixturedefs
    )


def on_commit_path(node: pytest.Item) -> bool:
    return node.get_closest_marker("commits") is not None


@pytest.fixture
async def db_connection(
    request: pytest.FixtureRequest, engine: AsyncEngine, database_url: str
) -> AsyncIterator[AsyncConnection | None]:
    """The test's connection inside its outer transaction, rolled back at the end; ``None`` on the
    commit path, where every model table is emptied after the test instead."""
    if on_commit_path(request.node):
        try:
            yield None
        finally:
            await empty_tables(engine, database_url)
        return
    async with engine.connect() as conn:
        # On SQLite the engine's begin hook issues a deferred BEGIN: the only writer is this connection.
        outer = await conn.begin()
        try:
            yield conn
        finally:
            if outer.is_active:
                await outer.rollback()


def joined_sessionmaker(conn: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions configured like the app's, joined to the test's outer transaction: their commits
    and rollbacks are those of a savepoint."""
    return async_sessionmaker(
        conn, expire_on_commit=False, autoflush=False, join_transaction_mode="create_savepoint"
    )


@pytest.fixture
async def db(
    sessionmaker: async_sessionmaker[AsyncSession], db_connection: AsyncConnection | None
) -> AsyncIterator[AsyncSession]:
    """A session on the shared database, inside the test's outer transaction (rolled back after the
    test), or on the commit path a session of its own (every model table emptied after the test)."""
    maker = sessionmaker if db_connection is None else joined_sessionmaker(db_connection)
    async with maker() as session:
        yield session


async def empty_tables(engine: AsyncEngine, database_url: str) -> None:
    """Delete every row of every table in ``app.models.metadata`` and reset the id counters."""
    tables = metadata.sorted_tables
    if not tables:
        return
    if engine.dialect.name == "postgresql":
        names = ", ".join(engine.dialect.identifier_preparer.format_table(t) for t in tables)
        async with engine.begin() as conn:
            # Fail loudly rather than hang when a test left a transaction holding a lock.
            await conn.execute(text("SET LOCAL lock_timeout = '10s'"))
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        return

    # SQLite enforces ON DELETE RESTRICT row by row (even with deferred constraints), so a
    # self-referencing table such as agencies cannot always be emptied with foreign keys on. The
    # application's engine opens every transaction itself and would swallow the PRAGMA, hence a
    # plain connection of our own.
    path = make_url(database_url).database
    assert path, database_url
    async with aiosqlite.connect(path, timeout=10) as conn:
        await conn.execute("PRAGMA foreign_keys=OFF")
        for table in reversed(tables):
            await conn.execute(f'DELETE FROM "{table.name}"')
        cursor = await conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'"
        )
        if await cursor.fetchone():
            await conn.execute("DELETE FROM sqlite_sequence")
        await conn.commit()


@pytest.hookimpl(tryfirst=True)  # before -m selects: `-m commits` sees these marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that need real commits ``commits``, and run the browser tests last.

    Slow tests (servers in subprocesses, kill -9), and tests that ask for the engine, a sessionmaker,
    a database URL or a database factory themselves or through a fixture of their own (an app of
    their own, a console command), use connections of their own, so they need the commit path. Playwright's sync API keeps its own event loop running in the main thread while the
    browser is open, and pytest-asyncio cannot start its loop under it; a stable sort keeps the rest
    in order.
    """
    for item in items:
        if not on_commit_path(item) and (item.get_closest_marker("slow") or _needs_own_connections(item)):
            item.add_marker(pytest.mark.commits)
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)
