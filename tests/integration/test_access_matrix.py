"""Every route × every role, plus an administrator of a sibling agency.

A route must declare its rule (``opt={"public": True}`` or a guard from ``app.lib.guards.require``);
this test fails for one that does not, and then calls every route as each role to check that the
declared rule is what really happens, and that no sibling agency's record can be reached.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute

from app.lib.enums import Role
from tests.factories import World
from tests.integration.conftest import Client

# Litestar's own OpenAPI pages are public by design (the JSON API is documented for everyone).
FRAMEWORK_PUBLIC = re.compile(r"^/schema")


def _routes(app: Litestar) -> list[tuple[str, str, Any]]:
    out = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods):
                if method in {"HEAD", "OPTIONS"}:
                    continue
                out.append((method, route.path, handler))
    return out


def _access(handler: Any) -> frozenset[Role] | None:
    """None for public; the set of roles otherwise (guards on the controller and the handler intersect)."""
    if handler.opt.get("public"):
        return None
    allowed = frozenset(Role)
    found = False
    for guard in handler.resolve_guards():
        roles = getattr(getattr(guard, "func", guard), "__access__", None)
        if roles is not None:
            found = True
            allowed &= roles
    return allowed if found else frozenset()


async def test_every_route_declares_its_rule(app: Litestar) -> None:
    missing = [
        f"{m} {p}" for m, p, h in _routes(app) if not FRAMEWORK_PUBLIC.match(p) and _access(h) == frozenset()
    ]
    assert not missing, f"routes without an access rule (add a guard or opt=PUBLIC): {missing}"


def _fill(path: str, world: World, *, sibling: bool) -> str:
    """Path parameters point at the sibling agency's records (city B) — admin_a must never reach them."""
    ids = {
        "officer_id": world.officer_b.id if sibling else world.officer_a.id,
        "agency_id": world.dept_b.id if sibling else world.dept_a.id,
        "account_id": world.admin_b.id if sibling else world.officer_account.id,
        "file_path": "css/app.css",
        "course_id": world.course_b.id if sibling else world.course_a.id,
        "record_id": world.record_b.id if sibling else world.record_a.id,
        "batch_id": world.batch_b.id if sibling else world.batch_a.id,
        "certificate_id": world.cert_b.id if sibling else world.cert_a.id,
        "fmt": "png",
        "number": world.cert_a.number,
        # Exam routes are the authority's or the candidate's own (agency admins have none), so the
        # sibling walk never reaches them; the candidates' isolation is tested in tests/integration/exams.
        "exam_id": 1,
        "session_id": 1,
        "part_id": 1,
        "attempt_id": 1,
        # No bank or question in the world: the authority's bank question list and basis form
        # answer 404 (drafts are tested in tests/integration/exams/test_gift_import.py).
        "code": "no_such_bank",
        "question_id": 999_999,
        # The world has no ratings or cases: these answer 404 (their scoping is tested in
        # tests/integration/assessments, with records on both sides of the tree).
        "rating_id": 999_999,
        "case_id": 999_999,
    }

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in ids:
            pytest.fail(f"no test value for path parameter {name!r} in {path}: add it to _fill")
        return str(ids[name])

    return re.sub(r"\{(\w+)(?::\w+)?\}", sub, path)


async def _call(client: Client, method: str, url: str) -> int:
    headers = {"accept": "application/json"}
    if method == "GET":
        r = await client.get(url, headers=headers, follow_redirects=False)
    else:
        r = await client._unsafe(method, url, headers=headers, json={}, follow_redirects=False)
    assert r.status_code < 500, f"{method} {url} -> {r.status_code}: {r.text[:300]}"
    return int(r.status_code)


async def test_anonymous_is_refused_everywhere_but_public_routes(
    app: Litestar, client: Client, world: World
) -> None:
    for method, path, handler in _routes(app):
        if FRAMEWORK_PUBLIC.match(path) or _access(handler) is None:
            continue
        status = await _call(client, method, _fill(path, world, sibling=False))
        assert status == 401, f"anonymous {method} {path} -> {status}"


@pytest.mark.parametrize(
    "username,role",
    [("officer_a", Role.OFFICER), ("admin_a", Role.AGENCY_ADMIN), ("sfj_admin", Role.AUTHORITY_ADMIN)],
)
async def test_each_role_gets_exactly_its_routes(
    app: Litestar, client: Client, world: World, username: str, role: Role
) -> None:
    await client.login(username)
    for method, path, handler in _routes(app):
        access = _access(handler)
        if FRAMEWORK_PUBLIC.match(path) or access is None or path in {"/logout", "/api/auth/logout"}:
            continue
        status = await _call(client, method, _fill(path, world, sibling=False))
        if role in access:
            assert status not in (401, 403), f"{username} {method} {path} -> {status} but the role is allowed"
        else:
            assert status == 403, f"{username} {method} {path} -> {status} but the role is not allowed"


async def test_sibling_agency_records_are_out_of_reach(app: Litestar, client: Client, world: World) -> None:
    await client.login("admin_a")
    checked = 0
    for method, path, handler in _routes(app):
        access = _access(handler)
        if access is None or "{" not in path or Role.AGENCY_ADMIN not in access or path.startswith("/static"):
            continue
        status = await _call(client, method, _fill(path, world, sibling=True))
        assert status in (400, 403, 404, 422), f"admin_a reached city B through {method} {path}: {status}"
        checked += 1
    assert checked >= 8


async def test_sibling_officer_not_in_lists(client: Client, world: World) -> None:
    await client.login("admin_a")
    r = await client.get("/api/officers", params={"per_page": 200})
    names = {o["name"] for o in r.json()["items"]}
    assert "李明" in names and "王芳" not in names
    r = await client.get("/api/officers", params={"agency_id": world.dept_b.id})
    assert r.status_code == 404
