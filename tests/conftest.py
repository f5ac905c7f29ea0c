"""Shared fixtures: one migrated database per backend, and a clean slate for every test.

Every test that asks for ``db`` (or anything built on it) runs twice, once on SQLite and once on
PostgreSQL. ``scripts/test.sh`` (``make test``) starts the PostgreSQL server and exports
``TEST_POSTGRES_URL``; without it the PostgreSQL half fails rather than quietly skipping.

Fixture chain (session-scoped per backend unless noted)::

    backend → create_database → database_url (migrated to head) → engine → sessionmaker → db (per test)
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import aiosqlite
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
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

    async def create_postgresql() -> str:
        name = f"test_{secrets.token_hex(6)}"
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


@pytest.fixture
async def db(
    sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine, database_url: str
) -> AsyncIterator[AsyncSession]:
    """A session on the shared database; every model table is emptied after the test."""
    try:
        async with sessionmaker() as session:
            yield session
    finally:
        await empty_tables(engine, database_url)


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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last.

    Playwright's sync API keeps its own event loop running in the main thread while the browser is
    open, and pytest-asyncio cannot start its loop under it; a stable sort keeps the rest in order.
    """
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)
