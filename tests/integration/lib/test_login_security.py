"""Login throttling, lockout timing, and secrets kept out of logs and error texts (docs/security.md)."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Officer
from app.accounts.services import auth as account_services
from app.lib.enums import Role
from tests.factories import PASSWORD, World, add_account
from tests.integration.conftest import Client


async def test_login_is_throttled_per_client(client: Client, world: World) -> None:
    statuses = []
    for i in range(21):
        r = await client.post("/api/auth/login", json={"username": f"nobody{i}", "password": "x"})
        statuses.append(r.status_code)
    assert statuses[:20] == [401] * 20 and statuses[20] == 429
    assert int(r.headers["retry-after"]) >= 1


async def test_an_exam_hall_behind_one_address_signs_in(
    client: Client, world: World, db: AsyncSession
) -> None:
    """Only failures count per address: 30 candidates sign in from one NAT address within a minute
    (the per-address limit is 20), and the failures still count towards it after them."""
    names = [f"hall{i}" for i in range(30)]
    for name in names:
        await add_account(db, name, Role.AGENCY_ADMIN, world.dept_a)
    for name in names:
        r = await client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200, (name, r.text)
    statuses = []
    for i in range(21):
        r = await client.post("/api/auth/login", json={"username": f"hall{i}", "password": "wrong"})
        statuses.append(r.status_code)
    assert statuses[:20] == [401] * 20 and statuses[20] == 429
    r = await client.post("/api/auth/login", json={"username": "hall29", "password": PASSWORD})
    assert r.status_code == 429  # the address is over its failures: no argon2 for it this minute


async def test_one_account_name_is_throttled_whatever_the_outcome(
    client: Client, world: World, db: AsyncSession
) -> None:
    await add_account(db, "often", Role.AGENCY_ADMIN, world.dept_a)
    statuses = []
    for _ in range(21):
        r = await client.post("/api/auth/login", json={"username": "OFTEN ", "password": PASSWORD})
        statuses.append(r.status_code)
    assert statuses[:20] == [200] * 20 and statuses[20] == 429
    assert int(r.headers["retry-after"]) >= 1


async def test_a_locked_account_costs_the_same_password_check(
    client: Client, world: World, db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(5):
        await client.post("/api/auth/login", json={"username": "admin_a", "password": f"wrong{i}"})
    # One argon2 check, as for any login: made before the login's transaction (the account's own
    # hash), so none is burnt inside it.
    calls: list[str] = []
    real_burn, real_verify = account_services.burn_password_check, account_services.verify_password

    async def burn(password: str) -> None:
        calls.append(f"burn {password}")
        await real_burn(password)

    async def verify(password: str, password_hash: str) -> bool:
        calls.append(f"verify {password}")
        return await real_verify(password, password_hash)

    monkeypatch.setattr(account_services, "burn_password_check", burn)
    monkeypatch.setattr(account_services, "verify_password", verify)
    r = await client.post("/api/auth/login", json={"username": "admin_a", "password": PASSWORD})
    assert r.status_code == 423 and calls == [f"verify {PASSWORD}"]


async def test_password_change_is_throttled(client: Client, world: World) -> None:
    await client.login("admin_a")
    statuses = []
    for i in range(21):
        r = await client.post(
            "/api/auth/password", json={"current_password": f"guess-{i}", "new_password": "Xinmima2026"}
        )
        statuses.append(r.status_code)
    assert set(statuses[:20]) == {400} and statuses[20] == 429


async def test_passwords_and_session_cookies_never_reach_the_log(
    client: Client, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await client.post("/api/auth/login", json={"username": "admin_a", "password": "Wrong-Passw0rd-123"})
    await client.login("admin_a")
    await client.post(
        "/api/auth/password", json={"current_password": PASSWORD, "new_password": "Xinmima-2026-new"}
    )
    cookie = client.raw.cookies.get("zf_session")
    text = caplog.text
    for secret in ("Wrong-Passw0rd-123", PASSWORD, "Xinmima-2026-new", cookie, "t" * 40):
        assert secret not in text


@pytest.mark.commits  # an engine of its own beside the test's connection
async def test_database_errors_do_not_quote_parameters(db: AsyncSession, world: World) -> None:
    """A failed statement's message goes to the log: it must not carry ID numbers or hashes."""
    from sqlalchemy.exc import IntegrityError

    from app.db import make_engine

    engine = make_engine(str(db.bind.url.render_as_string(hide_password=False)))  # type: ignore[union-attr]
    try:
        async with engine.begin() as conn:
            with pytest.raises(IntegrityError) as info:
                await conn.execute(
                    Officer.__table__.insert().values(  # type: ignore[attr-defined]
                        id=world.officer_b.id, id_number=world.officer_b.id_number
                    )
                )
    finally:
        await engine.dispose()
    assert world.officer_b.id_number not in str(info.value)
