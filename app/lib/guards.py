"""Authentication middleware and authorisation guards.

Every route declares who may call it: ``opt={"public": True}`` or a guard made by ``require``.
A test walks every route and fails for one that declares neither, so no route ships unguarded.
Agency scope (own agency and below) is enforced in services, which receive the principal.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware, DefineMiddleware
from litestar.middleware.session import SessionMiddleware
from litestar.middleware.session.client_side import ClientSideSessionBackend
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import DriverPool
from app.lib.enums import Role
from app.lib.security import Principal

SESSION_ACCOUNT = "aid"
SESSION_EPOCH = "ep"
SESSION_ISSUED = "iat"
"""When the session was created (Unix seconds): the cookie slides with use, the login does not."""


class SessionBackend(ClientSideSessionBackend):
    """The session cookie (Litestar's client-side backend: AES-GCM, sliding expiry), one per app:
    the session middleware of each router and the exam fast lane read and renew the cookie with the
    same backend. Litestar deep-copies a router's middleware when the router is registered; the
    backend holds only its configuration and cipher, so the copy is the backend itself."""

    def __deepcopy__(self, memo: dict[int, Any]) -> SessionBackend:
        return self

    def middleware(self) -> DefineMiddleware:
        """The session middleware on this backend (for a router's ``middleware``)."""
        return DefineMiddleware(SessionMiddleware, backend=self)


class PasswordChangeRequired(PermissionDeniedException):
    """初始密码须修改: the account was created by an administrator and has not set its own password."""


PRINCIPAL_SQL = (
    "SELECT ac.id, ac.username, ac.display_name, ac.role, ac.agency_id, ac.officer_id,"
    " ac.must_change_password, ac.is_active, ac.auth_epoch, ag.path, ag.name"
    " FROM accounts ac JOIN agencies ag ON ag.id = ac.agency_id WHERE ac.id = :account_id"
)
"""The session's account and its agency: the one statement behind every request's principal. Run
through SQLAlchemy (``text``) where there is no driver pool, and as the driver takes it otherwise."""

_PRINCIPAL_TEXT = text(PRINCIPAL_SQL)
_PRINCIPAL_DRIVER_SQL = PRINCIPAL_SQL.replace(":account_id", "$1")


async def load_principal(
    maker: async_sessionmaker[AsyncSession], account_id: int, epoch: int, driver: DriverPool | None = None
) -> Principal | None:
    """The session's account, read fresh on every request (never cached: a password change or a
    deactivation ends every session at once, through ``auth_epoch`` and ``is_active``).

    On PostgreSQL with ``driver``: the statement straight on the driver pool (every request pays
    for this read; through SQLAlchemy it cost about three times the CPU)."""
    found: Any
    if driver is not None:
        found = await driver.fetchrow(_PRINCIPAL_DRIVER_SQL, account_id)
    else:  # no driver pool: SQLite (the app has one on PostgreSQL), or a caller outside the app
        async with maker() as db:
            found = (await db.execute(_PRINCIPAL_TEXT, {"account_id": account_id})).first()
    row = None if found is None else _PrincipalRow(*found)
    if row is None or not row.is_active or row.auth_epoch != epoch:
        return None
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


class AuthMiddleware(ASGIMiddleware):
    """Puts the principal (or None) in ``scope["user"]`` from the session cookie."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        scope["user"] = None
        scope["auth"] = None
        raw = scope.get("session")
        session: dict[str, Any] = raw if isinstance(raw, dict) else {}
        account_id = session.get(SESSION_ACCOUNT)
        if isinstance(account_id, int):
            state = scope["litestar_app"].state
            issued = session.get(SESSION_ISSUED)
            principal = None
            # The cookie's own expiry is renewed on every response; this caps a session's whole life.
            if (
                isinstance(issued, int)
                and -60 <= time.time() - issued < state.settings.session_absolute_seconds
            ):
                principal = await load_principal(
                    state.db_sessionmaker, account_id, int(session.get(SESSION_EPOCH, 0)), state.driver
                )
            if principal is None:
                scope["session"] = {}
            scope["user"] = principal
        await next_app(scope, receive, send)


def _principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    user = connection.scope.get("user")
    if user is None:
        raise NotAuthorizedException("请先登录")
    if user.must_change_password and not connection.route_handler.opt.get("allow_password_change"):
        raise PasswordChangeRequired("请先修改初始密码")
    return user


Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]


def require(*roles: Role) -> Guard:
    """A guard: logged in, and (when roles are given) in one of these roles."""
    allowed = frozenset(roles)

    # A coroutine: Litestar runs a plain function guard in its thread pool, a thread hop on every
    # request for a check that takes microseconds.
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
        user = _principal(connection)
        if allowed and user.role not in allowed:
            raise PermissionDeniedException("您的角色无权访问此功能")

    guard.__access__ = allowed or frozenset(Role)  # type: ignore[attr-defined]
    guard.__name__ = "require_" + ("_".join(sorted(r.value for r in allowed)) or "login")
    return guard


require_login = require()
require_admin = require(Role.AGENCY_ADMIN, Role.AUTHORITY_ADMIN)
require_authority = require(Role.AUTHORITY_ADMIN)
require_officer = require(Role.OFFICER)

PUBLIC = {"public": True}
