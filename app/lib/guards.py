"""Authentication middleware and authorisation guards.

Every route declares who may call it: ``opt={"public": True}`` or a guard made by ``require``.
A test walks every route and fails for one that declares neither, so no route ships unguarded.
Agency scope (own agency and below) is enforced in services, which receive the principal.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware, DefineMiddleware
from litestar.middleware.session import SessionMiddleware
from litestar.middleware.session.client_side import ClientSideSessionBackend
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.lib.enums import Role
from app.lib.security import Principal

SESSION_ACCOUNT = "aid"
SESSION_EPOCH = "ep"
SESSION_ISSUED = "iat"
"""When the session was created (Unix seconds): the cookie slides with use, the login does not."""
SESSION_RENEWED = "rn"
"""When the cookie was last written (Unix seconds)."""
RENEW_AFTER_SECONDS = 60
"""The sliding expiry moves at most once a minute: a response to an unchanged session whose cookie
was written less than this long ago sends no new cookie. Re-encrypting the cookie on every response
(AES-GCM, base64, the Set-Cookie header) was a tenth of the cost of an autosave; the idle limit
(``session_max_age``) now counts from at most a minute before the last request."""
_LOADED = "_session_loaded"


class SessionBackend(ClientSideSessionBackend):
    """The session cookie (Litestar's client-side backend: AES-GCM, sliding expiry), one per app:
    the session middleware of each router and the exam fast lane read and renew the cookie with the
    same backend. Litestar deep-copies a router's middleware when the router is registered; the
    backend holds only its configuration and cipher, so the copy is the backend itself."""

    def __deepcopy__(self, memo: dict[int, Any]) -> SessionBackend:
        return self

    async def load_from_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any]:
        data = await super().load_from_connection(connection)
        connection.scope.setdefault("state", {})[_LOADED] = dict(data)
        return data

    async def store_in_message(
        self, scope_session: Any, message: Message, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> None:
        if isinstance(scope_session, dict) and scope_session:
            now = int(time.time())
            loaded = connection.scope.get("state", {}).get(_LOADED)
            renewed = scope_session.get(SESSION_RENEWED)
            if (
                scope_session == loaded
                and isinstance(renewed, int)
                and 0 <= now - renewed < RENEW_AFTER_SECONDS
                and self.get_cookie_keys(connection) == [self.config.key]
            ):
                return  # unchanged and written moments ago: the browser's cookie is still good
            scope_session = {**scope_session, SESSION_RENEWED: now}
        await super().store_in_message(scope_session, message, connection)

    def middleware(self) -> DefineMiddleware:
        """The session middleware on this backend (for a router's ``middleware``)."""
        return DefineMiddleware(SessionMiddleware, backend=self)


class PasswordChangeRequired(PermissionDeniedException):
    """初始密码须修改: the account was created by an administrator and has not set its own password."""


PrincipalLoader = Callable[[Any, int, int], Awaitable[Principal | None]]
"""``(app state, account id, auth epoch) -> Principal | None``: who the session's account is now
(``app.accounts.principal.principal_of_session``; lib knows no domain, so the app hands it in)."""


class AuthMiddleware(ASGIMiddleware):
    """Puts the principal (or None) in ``scope["user"]`` from the session cookie."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, load: PrincipalLoader) -> None:
        self.load = load

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
                principal = await self.load(state, account_id, int(session.get(SESSION_EPOCH, 0)))
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
