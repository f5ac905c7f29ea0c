"""ID numbers: no page or JSON answer shows a full number outside the officer's own agency
(docs/security.md)."""

from __future__ import annotations

import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts import services as svc
from app.accounts.principal import load_principal
from app.accounts.rules import mask_id_number
from app.lib.enums import Role
from app.lib.errors import NotFound
from tests.factories import World, add_account, add_officer
from tests.integration.conftest import Client
from tests.integration.test_access_matrix import FRAMEWORK_PUBLIC, _access, _fill, _routes

HTML = {"accept": "text/html"}


async def _bodies(app: Litestar, client: Client, world: World) -> list[tuple[str, str]]:
    """Every GET route (path parameters filled in for both cities), as JSON and as a browser."""
    out = []
    for method, path, handler in _routes(app):
        if method != "GET" or FRAMEWORK_PUBLIC.match(path) or path.startswith("/static"):
            continue
        if _access(handler) is None and "{" in path:
            continue
        for sibling in (False, True):
            url = _fill(path, world, sibling=sibling)
            for headers in ({"accept": "application/json"}, HTML):
                r = await client.get(url, headers=headers, follow_redirects=False)
                assert r.status_code < 500, f"{url} -> {r.status_code}"
                out.append((url, r.text))
    return out


@pytest.mark.parametrize("username", ["sfj_admin", "admin_a", "admin_b", "officer_a"])
async def test_no_answer_shows_a_full_id_number_outside_the_officers_agency(
    app: Litestar, client: Client, world: World, username: str
) -> None:
    """Nobody above or beside an officer's own agency sees the whole number: only its own agency
    (and the officer) do. In the world, no administrator sits in dept A or dept B."""
    await client.login(username)
    bodies = await _bodies(app, client, world)
    assert len(bodies) >= 40
    hidden = [world.officer_b.id_number]
    if username != "officer_a":
        hidden.append(world.officer_a.id_number)
    for url, text in bodies:
        for number in hidden:
            assert number not in text, f"{username} sees the full ID number {number} at {url}"
    if username in ("sfj_admin", "admin_a"):
        shown = "".join(text for _, text in bodies)
        assert mask_id_number(world.officer_a.id_number) in shown  # the masked form is there instead


async def test_the_officers_own_agency_sees_the_full_number(
    client: Client, world: World, db: AsyncSession
) -> None:
    """The positive control of the test above: the rule masks by agency, it does not hide everything."""
    await add_account(db, "admin_dept_a", Role.AGENCY_ADMIN, world.dept_a)
    await db.commit()
    await client.login("admin_dept_a")
    r = await client.get(f"/api/officers/{world.officer_a.id}")
    assert r.json()["id_number"] == world.officer_a.id_number
    page = await client.get("/officers", headers=HTML)
    assert world.officer_a.id_number in page.text


async def test_the_officer_sees_their_own_number(client: Client, world: World) -> None:
    await client.login("officer_a")
    r = await client.get("/", headers=HTML)
    assert world.officer_a.id_number in r.text


async def test_an_officer_sees_no_colleague_not_even_their_photo(
    client: Client, world: World, db: AsyncSession
) -> None:
    """An officer's account sits in the agency but manages nobody: a colleague is "not found"."""
    colleague = await add_officer(db, world.dept_a, "周强")
    colleague_id, own_id, account_id = colleague.id, world.officer_a.id, world.officer_account.id
    await db.commit()
    await client.login("officer_a")
    r = await client.get(f"/api/officers/{colleague_id}/photo")
    assert r.status_code == 404 and "不在您的管理范围内" in r.json()["detail"]
    r = await client.get(f"/api/officers/{own_id}/photo")
    assert r.status_code == 404 and "尚未上传照片" in r.json()["detail"]  # own record: reached
    principal = await load_principal(async_sessionmaker(db.bind, expire_on_commit=False), account_id, 1)
    assert principal is not None
    with pytest.raises(NotFound):
        await svc.officer_get(db, principal, colleague_id)
    own, _ = await svc.officer_get(db, principal, own_id)
    assert own.id == own_id
