"""Signing in and out, the password change and the home page: the JSON API and the HTML pages."""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import urlsplit

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, QueryParameter
from litestar.response import Redirect, Response, Template

from app.accounts.models import Account
from app.accounts.principal import load_principal
from app.accounts.schemas import LoginIn, Me, PasswordChangeIn
from app.accounts.selectors import officer_detail
from app.accounts.services.auth import (
    LoginRefused,
    account_logout,
    authenticate,
    check_password,
    password_change,
    stored_hash,
)
from app.lib.errors import DomainError
from app.lib.guards import (
    PUBLIC,
    SESSION_ACCOUNT,
    SESSION_EPOCH,
    SESSION_ISSUED,
    require_login,
)
from app.lib.ratelimit import client_key
from app.lib.structs import project
from app.lib.web import Db, Form, form_post, keep_refusal, principal_of, render
from app.settings import Settings

Req = Request[Any, Any, Any]
PASSWORD_CHANGE = {"allow_password_change": True}


def _start_session(request: Req, account_id: int, epoch: int) -> None:
    # A fresh session dict: whatever an attacker planted before login is discarded (no fixation).
    request.clear_session()
    request.set_session({SESSION_ACCOUNT: account_id, SESSION_EPOCH: epoch, SESSION_ISSUED: int(time.time())})


async def _login(request: Req, db: Db, state: State, username: str, password: str) -> Account:
    settings: Settings = state.settings
    # Two limits, both before argon2 (~150 ms of CPU each): failed sign-ins per address (an exam hall
    # behind one NAT address signs in hundreds of candidates a minute; a guesser fails), and every
    # attempt per account name (no one signs in twenty times a minute; a stolen password cannot be
    # used to spend the server's CPU). The account's own lockout counts its failures in the database.
    address = client_key(request.client and (request.client.host, request.client.port))
    await state.login_limiter.check(address)
    await state.login_name_limiter.hit(username.strip().lower()[:64])
    # The failure count, the lock and their audit events stand although the answer is a refusal.
    keep_refusal(request)
    # argon2 before the login's own transaction, on a hash read in a read-only session of its own.
    async with state.db_sessionmaker() as read:
        password_hash = await stored_hash(read, username=username)
    checked = await check_password(password, password_hash)
    try:
        account = await authenticate(
            db,
            username=username,
            password=password,
            max_failures=settings.login_max_failures,
            lock_minutes=settings.login_lock_minutes,
            checked=checked,
        )
    except LoginRefused:
        await state.login_limiter.record(address)
        raise
    _start_session(request, account.id, account.auth_epoch)
    return account


async def _password_change_hit(request: Req, state: State) -> None:
    # The current password is checked here too: without a limit, a stolen session could be used to
    # guess it at full speed (and then keep the account after the session is voided).
    await state.login_name_limiter.hit(f"password:{principal_of(request).account_id}")


def _me(request: Req) -> Me:
    return project(Me, principal_of(request))


def _safe_next(value: str) -> str:
    r"""Only a same-site path: never an open redirect to another host.

    Browsers drop tabs and newlines from a URL and read a backslash as a slash, so ``/\t/evil.example``
    or ``/\evil.example`` would turn into ``//evil.example``: a control character, a blank or a
    backslash makes the value unusable, as does anything that parses with a scheme or a host.
    """
    if (
        not value.startswith("/")
        or value.startswith("//")
        or any(ch in value for ch in "\\ ")
        or any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in value)
    ):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


class AuthApi(Controller):
    path = "/api/auth"
    tags = ["认证"]

    @post("/login", opt=PUBLIC, summary="登录（建立会话 Cookie）", status_code=200)
    async def login(self, request: Req, db: Db, state: State, data: JSONBody[LoginIn]) -> Me:
        account = await _login(request, db, state, data.username, data.password)
        request.scope["user"] = await load_principal(
            state.db_sessionmaker, account.id, account.auth_epoch, state.driver
        )
        return _me(request)

    @post("/logout", guards=[require_login], opt=PASSWORD_CHANGE, summary="退出登录", status_code=204)
    async def logout(self, request: Req, db: Db) -> None:
        await account_logout(db, principal=principal_of(request))
        request.clear_session()

    @get("/me", guards=[require_login], opt=PASSWORD_CHANGE, summary="当前账号")
    async def me(self, request: Req) -> Me:
        return _me(request)

    @post("/password", guards=[require_login], opt=PASSWORD_CHANGE, summary="修改密码", status_code=204)
    async def change_password(
        self, request: Req, db: Db, state: State, data: JSONBody[PasswordChangeIn]
    ) -> None:
        await _password_change_hit(request, state)
        account = await password_change(
            db,
            principal=principal_of(request),
            current_password=data.current_password,
            new_password=data.new_password,
        )
        _start_session(request, account.id, account.auth_epoch)


class AuthPages(Controller):
    include_in_schema = False

    @get("/login", opt=PUBLIC)
    async def login_form(
        self, request: Req, next_: Annotated[str, QueryParameter(name="next")] = "/"
    ) -> Template:
        return render("auth/login.html", request, next=_safe_next(next_), errors={}, form={})

    @post("/login", opt=PUBLIC)
    async def login_submit(self, request: Req, db: Db, state: State, data: Form) -> Response[Any]:
        username = str(data.get("username", "")).strip()
        password = str(data.get("password", ""))
        nxt = _safe_next(str(data.get("next", "/")))

        def page(status: int, message: str) -> Template:
            return render(
                "auth/login.html",
                request,
                status_code=status,
                next=nxt,
                form={"username": username},
                errors={"form": message},
            )

        if not username or not password:
            return page(400, "请输入用户名和密码")
        try:
            account = await _login(request, db, state, username, password)
        except DomainError as exc:
            return page(exc.status_code, exc.message)
        if account.must_change_password:
            return Redirect("/account/password", status_code=303)
        return Redirect(nxt, status_code=303)

    @post("/logout", guards=[require_login], opt=PASSWORD_CHANGE)
    async def logout(self, request: Req, db: Db) -> Redirect:
        await account_logout(db, principal=principal_of(request))
        request.clear_session()
        return Redirect("/login", status_code=303)

    @get("/account/password", guards=[require_login], opt=PASSWORD_CHANGE)
    async def password_form(self, request: Req) -> Template:
        return render("auth/password.html", request, errors={})

    @post("/account/password", guards=[require_login], opt=PASSWORD_CHANGE)
    async def password_submit(self, request: Req, db: Db, state: State, data: Form) -> Response[Any]:
        await _password_change_hit(request, state)
        new, confirm = str(data.get("new_password", "")), str(data.get("confirm_password", ""))
        if new != confirm:
            return render(
                "auth/password.html",
                request,
                status_code=400,
                errors={"confirm_password": "两次输入的新密码不一致"},
            )

        async def change() -> Account:
            account = await password_change(
                db,
                principal=principal_of(request),
                current_password=str(data.get("current_password", "")),
                new_password=new,
            )
            _start_session(request, account.id, account.auth_epoch)
            return account

        async def rerender(exc: DomainError) -> Response[Any]:
            errors = exc.field_messages() or {"form": exc.message}
            return render("auth/password.html", request, status_code=exc.status_code, errors=errors)

        return await form_post(
            db, change, redirect="/?msg=password_changed", rerender=rerender, passthrough=()
        )

    @get("/", guards=[require_login])
    async def home(self, request: Req, db: Db) -> Template:
        p = principal_of(request)
        officer = None
        if p.officer_id is not None:
            officer = await officer_detail(db, p, p.officer_id)
        return render("home.html", request, officer=officer, msg=request.query_params.get("msg"))
