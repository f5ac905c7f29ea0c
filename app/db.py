"""Declarative base, naming convention, engine and session factory.

SQLite (aiosqlite) is the embedded default; PostgreSQL (asyncpg) the production engine. Both are
configured here so the rest of the code never branches on the dialect except for bulk paths.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


WRITE_INTENT = "app_write_intent"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on both engines (SQLite keeps no zone, so we restore it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime()}


class TimestampMixin:
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, open transactions, so that we can make them IMMEDIATE.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # A deferred transaction that reads and then writes fails at once (SQLITE_BUSY_SNAPSHOT) when
    # another writer committed in between; sessions that mean to write take the lock up front and
    # wait for it instead. Read-only sessions stay deferred so they never block a writer.
    immediate = conn.get_execution_options().get(WRITE_INTENT, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    # An error's text would otherwise quote the statement's parameters (ID numbers, password
    # hashes) into the log line of every failed query; DB_ECHO (development only) shows them.
    hide = not echo
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, hide_parameters=hide)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(
        url,
        echo=echo,
        hide_parameters=hide,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No ping before each checkout: it was a round trip (and two per request: the principal and
        # the request's session). A connection that died with the server fails its first statement
        # instead; SQLAlchemy then drops the whole pool (every idle connection from before the
        # outage), the error answers 503 with Retry-After (app.lib.errors), and the next request
        # connects afresh (tests/integration/lib/test_faults.py).
        pool_pre_ping=False,
        pool_recycle=1800,
    )


def make_sessionmaker(engine: AsyncEngine, *, write: bool = True) -> async_sessionmaker[AsyncSession]:
    """Sessions for use cases that write (the default), or read-only ones (``write=False``).

    The difference matters on SQLite only: see ``_sqlite_begin``.
    """
    bind = engine.execution_options(**{WRITE_INTENT: True}) if write else engine
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False)


async def session_scope(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with maker() as session:
        yield session
