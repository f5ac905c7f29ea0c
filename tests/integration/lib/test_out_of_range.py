"""Integers too large for a database key are input errors, never a 500 (found by the API fuzzing).

SQLite's driver raises OverflowError and asyncpg a DataError for a value beyond 2^63-1; the service
answers 404 for such a path id (it names nothing) and 400 for such a body or query value, and writes
nothing.
"""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account
from app.lib.errors import reject_impossible_ids
from tests.factories import World
from tests.integration.conftest import Client

HUGE = 2**63  # one past the largest BIGINT


@pytest.mark.parametrize(
    "url",
    [
        f"/api/officers/{HUGE}",
        f"/api/officers/{HUGE}/photo",
        f"/api/agencies/{HUGE}",
        f"/api/training/records/{HUGE}",
        "/api/officers/0",
    ],
)
async def test_impossible_path_id_is_not_found(client: Client, world: World, url: str) -> None:
    await client.login("sfj_admin")
    r = await client.get(url)
    assert r.status_code == 404, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_every_route_with_an_integer_path_id_bounds_it(app: Litestar) -> None:
    """The bound is a hook of the routers whose routes take integer ids (app.asgi), not of the app:
    the public scan does not run it. A route with an integer path parameter on a router without it
    (a public route taking an id one day) would answer 500 to a huge id: this test names it."""
    unbounded, bounded = [], 0
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not any(p.type is int for p in route.path_parameters.values()):
            continue
        for handler in route.route_handlers:
            if handler.resolve_before_request() is reject_impossible_ids:
                bounded += 1
            else:
                unbounded.append(f"{sorted(handler.http_methods)} {route.path}")
    assert not unbounded, f"integer path ids without reject_impossible_ids: {unbounded}"
    assert bounded > 50
    verify = next(r for r in app.routes if r.path == "/v/{number:str}")
    assert all(h.resolve_before_request() is None for h in verify.route_handlers)  # the scan: no hook


async def test_huge_body_id_is_a_bad_request_and_writes_nothing(
    client: Client, world: World, db: AsyncSession
) -> None:
    await client.login("sfj_admin")
    before = await db.scalar(select(func.count()).select_from(Account))
    r = await client.post(
        "/api/accounts",
        json={"username": "huge_agency", "display_name": "测试", "role": "agency_admin", "agency_id": HUGE},
    )
    assert r.status_code == 400, r.text
    assert "超出允许范围" in r.json()["detail"]
    assert await db.scalar(select(func.count()).select_from(Account)) == before
