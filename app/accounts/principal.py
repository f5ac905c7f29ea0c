"""Who a session's account is, read fresh on every request: the principal behind every guard.

``app.lib.guards.AuthMiddleware`` calls ``principal_of_session`` (handed in by ``create_app``: lib
imports no domain); the login page and the exam fast lane use the same statement.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import DriverPool, SqliteReader
from app.lib.enums import Role
from app.lib.security import Principal

_PRINCIPAL_SELECT = (
    "SELECT ac.id, ac.username, ac.display_name, ac.role, ac.agency_id, ac.officer_id,"
    " ac.must_change_password, ac.is_active, ac.auth_epoch, ag.path, ag.name"
    " FROM accounts ac JOIN agencies ag ON ag.id = ac.agency_id"
)
PRINCIPAL_SQL = f"{_PRINCIPAL_SELECT} WHERE ac.id = :account_id"
"""The session's account and its agency: the one statement behind every request's principal. Run
through SQLAlchemy (``text``) where there is no driver pool, and as the driver takes it otherwise."""

_PRINCIPAL_TEXT = text(PRINCIPAL_SQL)
_PRINCIPAL_DRIVER_SQL = PRINCIPAL_SQL.replace(":account_id", "$1")
_BY_USERNAME_TEXT = text(f"{_PRINCIPAL_SELECT} WHERE lower(ac.username) = :username")


async def load_principal(
    maker: async_sessionmaker[AsyncSession],
    account_id: int,
    epoch: int,
    driver: DriverPool | None = None,
    reader: SqliteReader | None = None,
) -> Principal | None:
    """The session's account, read fresh on every request (never cached: a password change or a
    deactivation ends every session at once, through ``auth_epoch`` and ``is_active``).

    Every request pays for this read, so it goes straight to the driver where the app has one: the
    driver pool on PostgreSQL (through SQLAlchemy it cost about three times the CPU), the in-place
    reader on SQLite (``app.db.SqliteReader``)."""
    found: Any
    if driver is not None:
        found = await driver.fetchrow(_PRINCIPAL_DRIVER_SQL, account_id)
    elif reader is not None:
        found = reader.fetchrow(PRINCIPAL_SQL, {"account_id": account_id})
    else:  # no driver pool: SQLite (the app has one on PostgreSQL), or a caller outside the app
        async with maker() as db:
            found = (await db.execute(_PRINCIPAL_TEXT, {"account_id": account_id})).first()
    row = None if found is None else _PrincipalRow(*found)
    if row is None or not row.is_active or row.auth_epoch != epoch:
        return None
    return _principal(row)


async def principal_by_username(db: AsyncSession, username: str) -> Principal | None:
    """An active account's principal by its username (any case): who a console command acts as."""
    found = (await db.execute(_BY_USERNAME_TEXT, {"username": username.strip().lower()})).first()
    row = None if found is None else _PrincipalRow(*found)
    return None if row is None or not row.is_active else _principal(row)


def _principal(row: _PrincipalRow) -> Principal:
    return Principal(
        account_id=row.id,
        username=row.username,
        display_name=row.display_name,
        role=Role(row.role),
        agency_id=row.agency_id,
        agency_path=row.path,
        agency_name=row.name,
        officer_id=row.officer_id,
        must_change_password=bool(row.must_change_password),
    )


class _PrincipalRow(NamedTuple):
    id: int
    username: str
    display_name: str
    role: str
    agency_id: int
    officer_id: int | None
    must_change_password: bool
    is_active: bool
    auth_epoch: int
    path: str
    name: str


async def principal_of_session(state: Any, account_id: int, epoch: int) -> Principal | None:
    """``AuthMiddleware``'s loader: ``load_principal`` on the app's session maker and driver pool."""
    return await load_principal(state.db_sessionmaker, account_id, epoch, state.driver, state.sqlite_reader)
