"""Login, lockout, CSRF, forced password change, session invalidation, security headers."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account
from app.accounts.principal import principal_by_username
from app.audit.models import AuditEvent
from app.lib.enums import Role
from tests.factories import PASSWORD, World
from tests.integration.conftest import Client


async def test_login_me_logout(client: Client, world: World) -> None:
    r = await client.get("/api/auth/me")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"] == "请先登录"
    await client.login("admin_a")
    me = (await client.get("/api/auth/me")).json()
    assert me["username"] == "admin_a" and me["role"] == "agency_admin" and me["agency_name"] == "江南省甲市"
    cookie = client.raw.cookies.get("zf_session")
    assert cookie
    r = await client.post("/api/auth/logout")
    assert r.status_code == 204
    assert (await client.get("/api/auth/me")).status_code == 401


async def test_session_cookie_flags(client: Client, world: World) -> None:
    r = await client.login("admin_a")
    set_cookie = "; ".join(
        v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("zf_session")
    )
    assert "HttpOnly" in set_cookie and "SameSite=lax" in set_cookie.replace("Lax", "lax")


async def test_wrong_password_is_generic_and_lockout_after_five(
    client: Client, world: World, db: AsyncSession
) -> None:
    for i in range(4):
        r = await client.post("/api/auth/login", json={"username": "admin_a", "password": f"wrong{i}"})
        assert r.status_code == 401 and r.json()["detail"] == "用户名或密码错误"
    r = await client.post("/api/auth/login", json={"username": "nobody", "password": "x"})
    # The same answer for an unknown user: no username enumeration.
    assert r.status_code == 401 and r.json()["detail"] == "用户名或密码错误"
    r = await client.post("/api/auth/login", json={"username": "admin_a", "password": "wrong5"})
    assert r.status_code == 423 and "锁定15分钟" in r.json()["detail"]
    # Locked: even the right password is refused until the lock expires.
    r = await client.post("/api/auth/login", json={"username": "admin_a", "password": PASSWORD})
    assert r.status_code == 423
    actions = (await db.scalars(select(AuditEvent.action).order_by(AuditEvent.id))).all()
    assert actions.count("account.login_failed") == 4 and "account.lock" in actions
    # Once the lock has expired, the right password works again.
    await db.execute(update(Account).where(Account.username == "admin_a").values(locked_until=None))
    await db.commit()
    await client.login("admin_a")


async def test_csrf_required_on_unsafe_requests(client: Client, world: World) -> None:
    r = await client.raw.post("/api/auth/login", json={"username": "admin_a", "password": PASSWORD})
    assert r.status_code == 403
    await client.csrf()
    r = await client.raw.post(
        "/api/auth/login",
        json={"username": "admin_a", "password": PASSWORD},
        headers={"x-csrftoken": "forged-token"},
    )
    assert r.status_code == 403
    r = await client.raw.post(
        "/login", data={"username": "admin_a", "password": PASSWORD}, headers={"accept": "text/html"}
    )
    assert r.status_code == 403 and "安全校验失败" in r.text


async def test_html_login_and_redirects(client: Client, world: World) -> None:
    r = await client.get("/officers", headers={"accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/officers"
    r = await client.form("/login", {"username": "admin_a", "password": "bad", "next": "/officers"})
    assert r.status_code == 401 and "用户名或密码错误" in r.text
    r = await client.form(
        "/login",
        {"username": "admin_a", "password": PASSWORD, "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/"  # no open redirect
    r = await client.get("/officers", headers={"accept": "text/html"})
    assert r.status_code == 200 and "李明" in r.text


async def test_forced_password_change(client: Client, world: World, db: AsyncSession) -> None:
    await db.execute(update(Account).where(Account.username == "admin_a").values(must_change_password=True))
    await db.commit()
    r = await client.form("/login", {"username": "admin_a", "password": PASSWORD}, follow_redirects=False)
    assert r.headers["location"] == "/account/password"
    r = await client.get("/api/officers")
    assert r.status_code == 403 and r.json()["detail"] == "请先修改初始密码"
    r = await client.form(
        "/account/password",
        {"current_password": PASSWORD, "new_password": "short", "confirm_password": "short"},
    )
    assert r.status_code == 400 and "密码长度至少为10位" in r.text
    r = await client.form(
        "/account/password",
        {"current_password": PASSWORD, "new_password": "Xinmima2026", "confirm_password": "Xinmima2026"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert (await client.get("/api/officers")).status_code == 200
    await client.post("/api/auth/logout")
    await client.login("admin_a", "Xinmima2026")


async def test_password_change_voids_other_sessions(client: Client, world: World) -> None:
    await client.login("admin_a")
    other_device = client.raw.cookies.get("zf_session")
    await client.login("admin_a")  # a second login, as from another device
    r = await client.post(
        "/api/auth/password", json={"current_password": PASSWORD, "new_password": "Xinmima2026"}
    )
    assert r.status_code == 204
    assert (await client.get("/api/auth/me")).status_code == 200  # this device got a fresh session
    client.raw.cookies.set("zf_session", other_device)
    assert (await client.get("/api/auth/me")).status_code == 401  # the old session is void


async def test_deactivated_account_loses_access(client: Client, world: World) -> None:
    await client.login("admin_b")
    victim_session = client.raw.cookies.get("zf_session")
    await client.login("sfj_admin")
    r = await client.post(f"/api/accounts/{world.admin_b.id}/deactivate")
    assert r.status_code == 200 and r.json()["is_active"] is False
    client.raw.cookies.set("zf_session", victim_session)
    assert (await client.get("/api/auth/me")).status_code == 401
    r = await client.post("/api/auth/login", json={"username": "admin_b", "password": PASSWORD})
    assert r.status_code == 401 and "停用" in r.json()["detail"]


async def test_security_headers(client: Client, world: World) -> None:
    r = await client.get("/login")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    assert "strict-transport-security" not in r.headers  # plain HTTP in tests


async def test_health_and_openapi(client: Client, world: World) -> None:
    r = await client.get("/health")
    assert r.json() == {"status": "ok", "database": "ok"}
    spec = (await client.get("/schema/openapi.json")).json()
    assert "/api/officers" in spec["paths"] and "/api/auth/login" in spec["paths"]
    assert "/officers/new" not in spec["paths"]  # HTML pages are not API


# The login checks the password (argon2, ~150 ms) before its write transaction begins; inside it,
# the check counts only while the account still has the hash it was made against.
PRECHECK_CASES = [
    # (password checked before, the check made against the current hash?, argon2 calls inside, outcome)
    (PASSWORD, True, 0, "ok"),
    ("wrong-password", True, 0, "LoginFailed"),
    (PASSWORD, False, 1, "ok"),  # the hash changed in between: checked again inside
    ("wrong-password", False, 1, "LoginFailed"),
]


@pytest.mark.parametrize(("password", "same_hash", "inside", "outcome"), PRECHECK_CASES)
async def test_a_password_checked_before_the_transaction_counts_while_the_hash_is_the_same(
    db: AsyncSession,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    password: str,
    same_hash: bool,
    inside: int,
    outcome: str,
) -> None:
    from app.accounts.services import auth

    username = world.admin_a.username
    stored = await auth.stored_hash(db, username=username.upper())
    assert stored is not None
    checked = await auth.check_password(password, stored if same_hash else None)
    if not same_hash:
        checked = auth.PasswordCheck("an-older-hash", not checked.ok)  # a stale check says the opposite
    calls: list[str] = []
    real = auth.verify_password

    async def counted(p: str, h: str) -> bool:
        calls.append(h)
        return await real(p, h)

    monkeypatch.setattr(auth, "verify_password", counted)
    try:
        await auth.authenticate(
            db, username=username, password=password, max_failures=5, lock_minutes=15, checked=checked
        )
        got = "ok"
    except auth.LoginRefused as exc:
        got = type(exc).__name__
    assert (len(calls), got) == (inside, outcome)


@pytest.mark.parametrize(
    ("typed", "deactivate", "expected"),
    [
        ("admin_a", False, "admin_a"),
        ("  ADMIN_A ", False, "admin_a"),  # any case, blanks trimmed, as the console is typed
        ("officer_a", False, "officer_a"),  # found; whether it may act is the command's decision
        ("admin_a", True, None),  # a deactivated account acts for nobody
        ("nobody", False, None),
    ],
)
async def test_principal_by_username(
    db: AsyncSession, world: World, typed: str, deactivate: bool, expected: str | None
) -> None:
    if deactivate:
        await db.execute(update(Account).where(Account.username == "admin_a").values(is_active=False))
    p = await principal_by_username(db, typed)
    assert (p and p.username) == expected
    if p is not None and expected == "admin_a":
        a = world.admin_a
        assert (p.account_id, p.role, p.agency_id, p.agency_path) == (
            a.id,
            Role.AGENCY_ADMIN,
            world.city_a.id,
            world.city_a.path,
        )
