"""Sessions and redirects: logout and lifetime void cookies, login replaces the session, no open redirect
(docs/security.md)."""

from __future__ import annotations

import dataclasses

import pytest
from litestar import Litestar

from tests.factories import PASSWORD, World
from tests.integration.conftest import Client

HTML = {"accept": "text/html"}


async def test_logout_voids_a_copied_session_cookie(client: Client, world: World) -> None:
    await client.login("admin_a")
    stolen = client.raw.cookies.get("zf_session")
    assert (await client.post("/api/auth/logout")).status_code == 204
    client.raw.cookies.set("zf_session", stolen)
    assert (await client.get("/api/auth/me")).status_code == 401


async def test_html_logout_voids_a_copied_session_cookie(client: Client, world: World) -> None:
    await client.login("admin_a")
    stolen = client.raw.cookies.get("zf_session")
    r = await client.form("/logout", {}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    client.raw.cookies.set("zf_session", stolen)
    assert (await client.get("/api/auth/me")).status_code == 401


async def test_a_session_ends_at_its_absolute_lifetime_however_busy(
    app: Litestar, client: Client, world: World
) -> None:
    await client.login("admin_a")
    assert (await client.get("/api/auth/me")).status_code == 200
    app.state.settings = dataclasses.replace(app.state.settings, session_absolute_seconds=0)
    assert (await client.get("/api/auth/me")).status_code == 401


async def test_login_replaces_whatever_session_was_there(client: Client, world: World) -> None:
    await client.login("admin_b")
    planted = client.raw.cookies.get("zf_session")
    await client.login("admin_a")
    fresh = client.raw.cookies.get("zf_session")
    assert fresh != planted
    assert (await client.get("/api/auth/me")).json()["username"] == "admin_a"


@pytest.mark.parametrize(
    "nxt",
    [
        "//evil.example/x",
        "/\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r\n/evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "/ /evil.example",
        "\\/evil.example",
    ],
)
async def test_login_next_is_never_an_open_redirect(client: Client, world: World, nxt: str) -> None:
    r = await client.form(
        "/login", {"username": "admin_a", "password": PASSWORD, "next": nxt}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/"


async def test_login_redirect_keeps_the_query_and_encodes_it(client: Client, world: World) -> None:
    r = await client.get("/officers?page=1&q=%E6%9D%8E", headers=HTML, follow_redirects=False)
    assert r.status_code == 303
    # The whole target is one percent-encoded parameter: its own query cannot leak into /login's.
    assert r.headers["location"] == "/login?next=/officers%3Fpage%3D1%26q%3D%25E6%259D%258E"
    target = "/officers?page=1&q=%E6%9D%8E"
    page = await client.get(r.headers["location"], headers=HTML)
    assert 'value="/officers?page=1&amp;q=%E6%9D%8E"' in page.text
    r = await client.form(
        "/login", {"username": "admin_a", "password": PASSWORD, "next": target}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == target


async def test_the_cookie_slides_at_most_once_a_minute(
    client: Client, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.lib import guards

    await client.login("admin_a")
    first = client.raw.cookies.get("zf_session")
    # Unchanged and written moments ago: no new cookie, and the one the browser holds still works.
    r = await client.get("/api/auth/me")
    assert r.status_code == 200 and r.headers.get_list("set-cookie") == []
    # A minute on (here: renewal due at once), the response carries the cookie with a fresh expiry.
    monkeypatch.setattr(guards, "RENEW_AFTER_SECONDS", 0)
    r = await client.get("/api/auth/me")
    [cookie] = [c for c in r.headers.get_list("set-cookie") if c.startswith("zf_session=")]
    assert (r.status_code == 200 and "Max-Age=" in cookie) or "expires=" in cookie.lower()
    renewed = client.raw.cookies.get("zf_session")
    assert renewed and renewed != first
    assert (await client.get("/api/auth/me")).status_code == 200
    # A changed session is always written: logging out clears the cookie at once.
    monkeypatch.setattr(guards, "RENEW_AFTER_SECONDS", 60)
    r = await client.post("/api/auth/logout")
    assert any(c.startswith("zf_session=null") for c in r.headers.get_list("set-cookie")), r.headers
    assert (await client.get("/api/auth/me")).status_code == 401
