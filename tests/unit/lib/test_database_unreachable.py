"""app.lib.errors.database_unreachable: which failures mean "the database is away" (503, Retry-After)
and which are bugs (500). A primary stopped with ``pg_ctl stop`` must be the first, a write slipped
into a read-only session the second."""

from __future__ import annotations

import socket
import sqlite3

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.lib.errors import CONFLICT_RETRY, PRIMARY_DOWN, database_unreachable, problem_for, transient_conflict


class _PgError(Exception):
    """What SQLAlchemy's asyncpg adapter keeps as ``orig``: the server's SQLSTATE in ``sqlstate``."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _pg(sqlstate: str) -> DBAPIError:
    return DBAPIError("SELECT 1", {}, _PgError(sqlstate))


def _sqlite_readonly() -> OperationalError:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("PRAGMA query_only=ON")
    try:
        conn.execute("INSERT INTO t VALUES (1)")
    except sqlite3.OperationalError as exc:
        return OperationalError("INSERT", {}, exc)
    finally:
        conn.close()
    raise AssertionError("query_only let a write through")


CASES = [
    pytest.param(ConnectionRefusedError(111, "Connection refused"), True, id="connect-refused"),
    pytest.param(socket.gaierror(-2, "Name or service not known"), True, id="host-unknown"),
    pytest.param(TimeoutError(), True, id="connect-timeout"),
    pytest.param(ConnectionError("database unreachable"), True, id="driver-pool-fault"),
    pytest.param(PoolTimeout("QueuePool limit reached"), True, id="pool-exhausted"),
    pytest.param(
        InterfaceError("SELECT 1", {}, Exception("connection was closed in the middle of operation")),
        True,
        id="connection-closed-mid-query",
    ),
    pytest.param(
        OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked")), True, id="sqlite-busy"
    ),
    pytest.param(_pg("57P01"), True, id="admin-shutdown-pg-ctl-stop"),
    pytest.param(_pg("57P02"), True, id="crash-shutdown"),
    pytest.param(_pg("57P03"), True, id="cannot-connect-now-starting-up"),
    pytest.param(_pg("08006"), True, id="connection-failure"),
    pytest.param(_pg("08003"), True, id="connection-does-not-exist"),
    pytest.param(
        DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True), True, id="invalidated"
    ),
    pytest.param(_pg("25006"), False, id="write-in-read-only-transaction"),
    pytest.param(_sqlite_readonly(), False, id="sqlite-query-only-write"),
    pytest.param(_pg("57014"), False, id="statement-cancelled"),
    pytest.param(IntegrityError("INSERT", {}, _PgError("23505")), False, id="unique-violation"),
    pytest.param(ProgrammingError("SELECT", {}, _PgError("42P01")), False, id="missing-table"),
    pytest.param(ValueError("bad"), False, id="a-bug"),
]


@pytest.mark.parametrize(("exc", "unreachable"), CASES)
def test_database_unreachable(exc: Exception, unreachable: bool) -> None:
    assert database_unreachable(exc) is unreachable
    problem = problem_for(exc)
    if unreachable:
        assert (problem.status, problem.detail, problem.headers) == (503, PRIMARY_DOWN, {"Retry-After": "5"})
    else:
        assert problem.status != 503


def _asyncpg(error: type[Exception]) -> DBAPIError:
    """asyncpg's own exception as SQLAlchemy's adapter wraps it (its class carries the SQLSTATE)."""
    return DBAPIError("SELECT 1", {}, error("conflict"))


CONFLICTS = [
    pytest.param(
        _asyncpg(asyncpg.exceptions.SerializationError), True, id="serialization-or-replica-recovery"
    ),
    pytest.param(_asyncpg(asyncpg.exceptions.DeadlockDetectedError), True, id="deadlock"),
    pytest.param(_asyncpg(asyncpg.exceptions.LockNotAvailableError), True, id="lock-not-available"),
    pytest.param(_pg("40001"), True, id="serialization-sqlstate"),
    pytest.param(_pg("23505"), False, id="unique-violation"),
    pytest.param(_pg("25006"), False, id="write-in-read-only-transaction"),
    pytest.param(ValueError("40001"), False, id="not-a-database-error"),
]


@pytest.mark.parametrize(("exc", "conflict"), CONFLICTS)
def test_transient_conflict_is_a_503_to_retry_soon(exc: Exception, conflict: bool) -> None:
    """A replica cancelling a read for the primary's replay (40001) answered 500 before: it is not a bug."""
    assert transient_conflict(exc) is conflict
    assert database_unreachable(exc) is False
    problem = problem_for(exc)
    if conflict:
        assert (problem.status, problem.detail, problem.headers) == (
            503,
            CONFLICT_RETRY,
            {"Retry-After": "1"},
        )
    else:
        assert problem.status != 503
