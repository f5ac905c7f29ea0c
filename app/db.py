"""Declarative base, naming convention, engine and session factory.

SQLite (aiosqlite) is the embedded default; PostgreSQL (asyncpg) the production engine. Both are
configured here so the rest of the code never branches on the dialect except for bulk paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import datetime as dt
import fcntl
import os
import signal
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import DateTime, Engine, Index, MetaData, create_engine, event, make_url, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import await_only

from app.lib.clock import utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


WRITE_INTENT = "app_write_intent"
READ_ONLY = "app_read_only"


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


def partial_index(name: str, *columns: str, where: str, unique: bool = False) -> Index:
    """An index over the rows where ``where`` holds, the same on both engines (each dialect takes its
    own keyword; without SQLite's, SQLite would index, and for a unique one constrain, every row)."""
    return Index(name, *columns, unique=unique, postgresql_where=text(where), sqlite_where=text(where))


def sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL; None for PostgreSQL and an in-memory database."""
    url_ = make_url(url)
    if url_.get_backend_name() != "sqlite" or not url_.database or url_.database == ":memory:":
        return None
    return url_.database


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
    options = conn.get_execution_options()
    # A read-only session's connection refuses writes (query_only) until a session that may write
    # takes it from the pool; the pool record remembers the setting, so switching costs a statement
    # only when the kind of session changes.
    read_only = options.get(READ_ONLY, False)
    if conn.connection.info.get(READ_ONLY, False) != read_only:
        conn.exec_driver_sql(f"PRAGMA query_only={int(read_only)}")
        conn.connection.info[READ_ONLY] = read_only
    conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE_INTENT, False) else "BEGIN")


SQLITE_READERS = 50
"""Connections a SQLite engine may open beyond ``pool_size``: in WAL readers never wait for each
other or for the writer, and at the start of an exam thousands of pages are read within a minute;
each connection is an idle thread of aiosqlite's most of the time."""


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    echo: bool = False,
    max_overflow: int | None = None,
    in_place: bool = False,
) -> AsyncEngine:
    """The engine for ``url``. ``in_place`` (a SQLite file): connections queried on the calling
    thread instead of aiosqlite's (``app.lib.inplace_sqlite``), for short reads only."""
    # An error's text would otherwise quote the statement's parameters (ID numbers, password
    # hashes) into the log line of every failed query; DB_ECHO (development only) shows them.
    hide = not echo
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        pool: dict[str, Any] = {}
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
            overflow = SQLITE_READERS if max_overflow is None else max_overflow
            pool = {"pool_size": pool_size, "max_overflow": overflow, "pool_timeout": 60}
            if in_place:
                from app.lib.inplace_sqlite import creator

                pool["async_creator"] = creator(path)
        engine = create_async_engine(url, echo=echo, hide_parameters=hide, **pool)
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


def make_writer_engine(url: str, *, echo: bool = False) -> AsyncEngine | None:
    """SQLite (a file): the server's write-intent sessions get an engine of their own with ONE
    connection. SQLite has one writer at a time; with a connection each, writers queued inside
    SQLite (its busy handler polling, sleeping up to 100 ms between tries) while each held a pooled
    connection, and at the start of an exam they took every connection of the pool from the readers
    (pool timeouts, 500s). Now a writer waits for the connection in the event loop, first come first
    served, and readers keep theirs. None for PostgreSQL and in-memory SQLite."""
    path = sqlite_file(url)
    if path is None:
        return None
    engine = make_engine(url, pool_size=1, max_overflow=0, echo=echo)
    _take_turns(engine, path)
    return engine


def beside(path: str, suffix: str) -> str:
    """A file kept beside the SQLite file ``path``: ``.lock`` (the server's claim), ``.writer`` and
    ``.writer-queue`` (the workers' writer turn), ``.limits`` (the workers' rate limits)."""
    return os.path.abspath(path) + suffix


def _take_turns(engine: AsyncEngine, path: str) -> None:
    """The writers of the server's worker processes take turns on the kernel's lock on
    ``<path>.writer`` (``flock``), held from the write connection's checkout to its checkin.

    Each worker has one write connection (the ORM's write sessions); the threads that write on a
    connection of their own (the exam writer's, the audit drain's) take the same turn through a
    ``WriterTurn``. Meeting inside SQLite instead, a writer that found the file locked slept in
    the busy handler (1, 2, 5... up to 100 ms a try) while the other worker's writers took the lock
    again and again: on exam day a batch of autosaves waited up to 130 ms in ``BEGIN IMMEDIATE``.
    The kernel wakes the next waiter as soon as the lock is released, and ``_take`` lets nobody
    take the turn twice while another waits. A free turn is taken at once on the loop; a held one
    is waited for on a thread, so the loop runs on meanwhile. The lock only orders the writers:
    SQLite's own lock still guards the file (engines of one process on one file, as in tests,
    share the descriptors and so do not exclude each other here).
    """
    fds = _TURN_FILES.get(path)
    if fds is None:
        fds = _TURN_FILES[path] = _turn_files(path)

    def taken_late(waiting: asyncio.Future[bool]) -> None:
        if not waiting.cancelled() and waiting.exception() is None:
            _give_back(fds)

    def checkout(_dbapi: Any, record: Any, _proxy: Any) -> None:
        if not _take(fds, wait=False):
            waiting = asyncio.ensure_future(asyncio.to_thread(_take, fds))
            try:
                await_only(asyncio.shield(waiting))
            except BaseException:  # cancelled while waiting: give the lock back once taken
                waiting.add_done_callback(taken_late)
                raise
        record.info[_TURN] = True

    def checkin(_dbapi: Any, record: Any) -> None:
        if record is not None and record.info.pop(_TURN, False):
            _give_back(fds)

    event.listen(engine.sync_engine.pool, "checkout", checkout)
    event.listen(engine.sync_engine.pool, "checkin", checkin)


_TURN = "zf_writer_turn"
_TURN_FILES: dict[str, tuple[int, int]] = {}
"""The turn's descriptors of the write connections of this process: database path → (queue,
turn), opened once per file and kept for life."""


def _turn_files(path: str) -> tuple[int, int]:
    """New descriptors of ``<path>.writer-queue`` and ``<path>.writer`` (``_take``)."""

    def opened(suffix: str) -> int:
        return os.open(beside(path, suffix), os.O_RDWR | os.O_CREAT, 0o600)

    return opened(".writer-queue"), opened(".writer")


def _take(fds: tuple[int, int], *, wait: bool = True) -> bool:
    """Take the workers' writer turn (``fds``: queue, turn): wait for it, or with ``wait=False``
    only if it is free at once (False, holding nothing, if not).

    A waiter holds the queue lock while it waits for the turn, and the turn is only ever taken
    through the queue: so a writer that gives the turn back and asks again at once (the exam
    writer's thread, batch after batch) queues behind the waiter instead of taking it again before
    the kernel has woken that waiter. Taken directly, one worker's writer kept the turn for
    seconds while the other worker's starts waited (bench/README.md, stop 33)."""
    queue_fd, turn_fd = fds
    flags = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
    try:
        fcntl.flock(queue_fd, flags)
    except BlockingIOError:
        return False
    try:
        fcntl.flock(turn_fd, flags)
    except BlockingIOError:
        return False
    finally:
        fcntl.flock(queue_fd, fcntl.LOCK_UN)
    return True


def _give_back(fds: tuple[int, int]) -> None:
    fcntl.flock(fds[1], fcntl.LOCK_UN)


class WriterTurn:
    """The workers' writer turn for a thread that writes on a connection of its own (the exam
    writer's, the audit drain's): descriptors of its own, so it waits for this process's write
    connection as for the other workers'. ``with turn:`` holds it (blocking: a thread's, never the
    loop's)."""

    def __init__(self, path: str) -> None:
        self._fds = _turn_files(path)

    def __enter__(self) -> WriterTurn:
        _take(self._fds)
        return self

    def __exit__(self, *_exc: object) -> None:
        _give_back(self._fds)

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)


def make_sync_sqlite_writer(path: str) -> Engine:
    """A synchronous engine on the SQLite file ``path`` for a thread that writes (the audit drain's):
    one connection, the pragmas and the ``BEGIN IMMEDIATE`` of the server's own write sessions."""
    engine = create_engine(f"sqlite:///{path}", pool_size=1, max_overflow=0, hide_parameters=True)
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "begin", _sqlite_begin)
    return engine.execution_options(**{WRITE_INTENT: True})


def make_sessionmaker(engine: AsyncEngine, *, write: bool = True) -> async_sessionmaker[AsyncSession]:
    """Sessions for use cases that write (the default), or read-only ones (``write=False``).

    The difference matters on SQLite only: see ``_sqlite_begin``.
    """
    bind = engine.execution_options(**{WRITE_INTENT: True}) if write else engine
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False)


def make_read_only_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that cannot write: the public pages' (on the replica, ``DATABASE_READ_URL``, when
    there is one). PostgreSQL begins their transactions READ ONLY (a hot standby refuses writes
    anyway; on the primary a stray write fails as loudly); SQLite turns ``query_only`` on."""
    option = "postgresql_readonly" if engine.dialect.name == "postgresql" else READ_ONLY
    return async_sessionmaker(
        engine.execution_options(**{option: True}), expire_on_commit=False, autoflush=False
    )


class SqliteReader:
    """SQLite's counterpart of ``DriverPool`` for reads of a row or two by an index: one read-only
    ``sqlite3`` connection per process, queried in place on the event loop's thread.

    Such a read takes tens of microseconds; through an ORM session it took a pool checkout, a
    thread hop per call (aiosqlite runs each connection in a thread of its own: execute, fetch,
    close, the reset's rollback) and the GIL's hand-over each time, about ten times the work. In WAL
    mode a reader never waits for the writer or for other readers (it reads the last committed
    state), so the loop is not held; each statement is its own short read transaction, which keeps no
    snapshot open to hold back a checkpoint. None for PostgreSQL and in-memory SQLite."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._conn: Any = None

    @classmethod
    def for_url(cls, url: str) -> SqliteReader | None:
        return None if sqlite_file(url) is None else cls(url)

    def connection(self) -> Any:
        if self._conn is None:
            self._conn = open_sqlite_reader(self.database_url)  # read-only, memory-mapped
        return self._conn

    @staticmethod
    def statement(stmt: Any) -> tuple[str, dict[str, Any]]:
        """A SQLAlchemy statement as this reader runs it: (SQL with named parameters, the values it
        holds itself). The rule stays written once, in SQLAlchemy; the caller fills in the named
        ``bindparam``s (a time as the column holds it: ``app.exams.writer.sqlite_time``)."""
        from sqlalchemy.dialects import sqlite

        compiled = stmt.compile(dialect=sqlite.dialect(paramstyle="named"))
        return str(compiled), {k: (v.value if hasattr(v, "value") else v) for k, v in compiled.params.items()}

    def fetchrow(self, sql: str, params: Any = ()) -> Any:
        """The statement's first row (a tuple), or None."""
        cursor = self.connection().execute(sql, params)
        try:
            return cursor.fetchone()
        finally:
            cursor.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class DriverPool:
    """A small asyncpg pool beside SQLAlchemy's, for the hot paths that run one statement straight
    on the driver (the public certificate lookup, the candidate's autosave): no ORM session, no
    pool events. Opened on first use, in the process that uses it; PostgreSQL only."""

    def __init__(self, database_url: str, *, size: int = 10) -> None:
        self.dsn = "postgresql://" + database_url.split("://", 1)[1]
        self.size = size
        self._pool: Any = None
        self._lock: asyncio.Lock | None = None

    async def pool(self) -> Any:
        if self._pool is None:
            import asyncpg

            self._lock = self._lock or asyncio.Lock()
            async with self._lock:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self.dsn, min_size=1, max_size=self.size, reset=_keep_session
                    )
        return self._pool

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        """One statement's first row. A connection fault (the server down, restarting, or gone
        from under a pooled connection) raises ``ConnectionError``, which answers 503 like
        SQLAlchemy's, and expires the pool's connections so the next request connects afresh."""
        async with self.transaction(autocommit=True) as conn:
            return await conn.fetchrow(sql, *args)

    @contextlib.asynccontextmanager
    async def transaction(self, *, autocommit: bool = False) -> AsyncIterator[Any]:
        """A pooled connection inside a transaction (committed when the block ends, rolled back when
        it raises; ``autocommit``: no transaction, each statement its own), with the faults mapped
        as ``fetchrow`` maps them."""
        import asyncpg

        pool = None
        try:
            pool = await self.pool()
            async with pool.acquire() as conn:
                if autocommit:
                    yield conn
                else:
                    async with conn.transaction():
                        yield conn
        except (
            OSError,
            TimeoutError,
            asyncpg.InterfaceError,
            asyncpg.PostgresConnectionError,
            asyncpg.CannotConnectNowError,
            asyncpg.exceptions.OperatorInterventionError,
        ) as exc:
            if pool is not None:
                await pool.expire_connections()
            raise ConnectionError("database unreachable") from exc

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


SQLITE_READER_MMAP = 1 << 30
"""Bytes of the database file a SQLite reader maps into memory (SQLite clamps it to its build's
limit, 2 GiB here). Virtual address space, not memory: the mapped pages are the kernel's page
cache, shared with every other reader of the file."""


def open_sqlite_reader(database_url: str) -> sqlite3.Connection:
    """A read-only sqlite3 connection for a point lookup run in place, on the event loop's thread
    (the public verification's): no thread hop, no pool.

    - ``query_only``: it cannot write, whatever it is given.
    - Memory-mapped reads (``mmap_size``): the lookup's B-tree pages are read straight from the
      kernel's page cache, instead of a ``pread`` system call and a 4 KiB copy per page its own
      2 MB page cache misses (most of them on a large file: the lookups are random). Pages a writer
      has put in the WAL since the last checkpoint are still read from the WAL, so what it reads is
      the same. The cost: a disk read error in the mapped file stops the process (SIGBUS) instead of
      failing the one statement.
    - In WAL mode a reader never waits for the writer or a checkpoint: each lookup is its own
      transaction (autocommit), it reads the last committed state and holds no snapshot beyond the
      statement (``execute(...).fetchone()`` on a cursor dropped at once).
    """
    path = sqlite_file(database_url)
    assert path is not None, "a SQLite file"
    conn = sqlite3.connect(path, check_same_thread=False, timeout=10)
    conn.execute("PRAGMA query_only=ON")
    conn.execute(f"PRAGMA mmap_size={SQLITE_READER_MMAP}")
    return conn


async def _keep_session(conn: Any) -> None:
    """The driver pool's release step. asyncpg's default runs ``pg_advisory_unlock_all(); CLOSE
    ALL; UNLISTEN *; RESET ALL`` on every release: one more round trip per request (measured
    0.05 ms of server and 0.05 ms of PostgreSQL CPU each), undoing what these statements never do
    (session settings, advisory locks, cursors, listeners). asyncpg still rolls back a transaction
    left open before calling this."""


async def session_scope(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with maker() as session:
        yield session


async def insert_many(
    db: AsyncSession,
    table: Any,
    rows: list[dict[str, Any]],
    *,
    skip_conflicts_on: tuple[str, ...] = (),
    returning: tuple[str, ...] = (),
) -> list[Any]:
    """Insert ``rows`` (dicts with the same keys) in one go; the ``returning`` columns of the rows
    inserted, in order. ``skip_conflicts_on``: a unique key whose duplicates are skipped.

    PostgreSQL: ONE ``INSERT … SELECT FROM unnest(…)`` with one array per column, whatever the count
    (SQLAlchemy's multi-VALUES batches bind one parameter per cell — 34,000 for 2,000 exit cases —
    and that encoding cost as much as the insert). SQLite: the dialect's INSERT, executemany.
    """
    if not rows:
        return []
    conn = await db.connection()
    dialect = conn.dialect
    columns = list(rows[0])
    if dialect.name != "postgresql":
        stmt = sqlite_insert(table)
        if skip_conflicts_on:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(skip_conflicts_on))
        if returning:
            return list((await db.execute(stmt.returning(*(table.c[c] for c in returning)), rows)).all())
        await db.execute(stmt, rows)
        return []
    arrays = ", ".join(
        f"CAST(:c{i} AS {table.c[c].type.compile(dialect=dialect)}[])" for i, c in enumerate(columns)
    )
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"
    if skip_conflicts_on:
        sql += f" ON CONFLICT ({', '.join(skip_conflicts_on)}) DO NOTHING"
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
    result = await db.execute(text(sql), {f"c{i}": [r[c] for r in rows] for i, c in enumerate(columns)})
    return list(result.all()) if returning else []


class DatabaseInUse(RuntimeError):
    """Another server process already serves this SQLite file."""


_HELD: dict[str, int] = {}
"""SQLite files this process serves: path → the descriptor holding the lock (kept open for life), or
``BY_PARENT`` in a worker of a server whose supervisor holds it."""
BY_PARENT = -1


def hold_sqlite_file(database_url: str) -> str | None:
    """Claim the SQLite file for this server, or raise ``DatabaseInUse``.

    SQLite is embedded: two servers on one file would each keep their own rate limits and caches
    and run their own sweeps. An exclusive ``flock`` on ``<file>.lock`` (released by the kernel
    when the process ends, kill -9 included) lets exactly one server start; the second refuses with
    the first one's process id. ``app serve`` claims the file before it starts its workers, so a
    worker whose parent holds the lock is part of that server: it is let in (``sqlite_shared_by_workers``
    then says so) and dies with its parent (``die_with_parent``), so that no orphan outlives the
    lock. Returns the lock file's path (None for PostgreSQL or an in-memory database). Calling it
    again in the same process is a no-op.
    """
    database = sqlite_file(database_url)
    if database is None:
        return None
    path = beside(database, ".lock")
    if path in _HELD:
        return path
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        if holder == str(os.getppid()) and die_with_parent(int(holder)):
            _HELD[path] = BY_PARENT
            return path
        raise DatabaseInUse(
            f"数据库文件 {database} 已由另一个服务进程（进程号 {holder}）使用：SQLite 只能由一个服务实例打开。"
            "请先停止那个实例；需要多实例时请使用 PostgreSQL（设置 DATABASE_URL）。"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _HELD[path] = fd
    return path


def sqlite_shared_by_workers(database_url: str) -> bool:
    """Whether this process is one of several workers of the server holding this SQLite file."""
    path = sqlite_file(database_url)
    return path is not None and _HELD.get(beside(path, ".lock")) == BY_PARENT


_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> bool:
    """Have the kernel kill this process (SIGKILL) when its parent ends; False where it cannot.

    A worker of a multi-process server on SQLite lives inside its supervisor's claim on the file:
    were the supervisor killed (kill -9) and its workers left running, a new server could claim
    the file beside them. Nothing is lost by the kill: an answer is acknowledged only once committed.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):  # not Linux
        return False
    return os.getppid() == parent  # the parent may have ended before the call: then refuse
