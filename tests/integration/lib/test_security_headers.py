"""Security headers on every answer and cookie flags, on plain HTTP and behind HTTPS (docs/security.md)."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar

from app.lib.headers import CSP
from tests.factories import PASSWORD, World
from tests.integration.conftest import AppWith, Client, Connect

HTML = {"accept": "text/html"}


def _set_cookies(r: Any) -> dict[str, str]:
    """name → the whole Set-Cookie header of that cookie."""
    out = {}
    for k, v in r.headers.multi_items():
        if k == "set-cookie":
            out[v.split("=", 1)[0]] = v
    return out


async def test_security_headers_on_pages_json_errors_and_static(client: Client, world: World) -> None:
    for url, headers in [
        ("/login", HTML),
        ("/api/auth/me", {}),  # a 401 problem+json
        ("/no-such-page", HTML),  # the HTML error page
        ("/static/css/app.css", {}),
    ]:
        r = await client.get(url, headers=headers)
        assert r.headers["content-security-policy"] == CSP, url
        assert r.headers["x-content-type-options"] == "nosniff", url
        assert r.headers["x-frame-options"] == "DENY", url
        assert r.headers["referrer-policy"] == "same-origin", url
        assert "camera=()" in r.headers["permissions-policy"], url
        assert r.headers["cross-origin-opener-policy"] == "same-origin", url
        assert "strict-transport-security" not in r.headers, url  # plain HTTP: no HSTS
    assert "unsafe-inline" not in CSP and "unsafe-eval" not in CSP
    assert "frame-ancestors 'none'" in CSP and "object-src 'none'" in CSP and "script-src 'self'" in CSP


async def test_pages_do_not_inline_scripts_or_styles(client: Client, world: World) -> None:
    """The CSP forbids inline code; a page that had some would break silently in the browser."""
    await client.login("sfj_admin")
    for url in ["/", "/officers", "/accounts", "/agencies", "/audit", f"/officers/{world.officer_a.id}"]:
        text = (await client.get(url, headers=HTML)).text
        assert "<script>" not in text and " style=" not in text and " onclick=" not in text, url
        assert "<style" not in text, url


async def test_answers_to_a_logged_in_account_are_not_cached(client: Client, world: World) -> None:
    await client.login("admin_a")
    for url in ["/api/officers", "/officers", f"/api/officers/{world.officer_a.id}"]:
        r = await client.get(url, headers=HTML if not url.startswith("/api") else {})
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store", url


@pytest.fixture
async def https_app(app_with: AppWith) -> Litestar:
    return await app_with(PUBLIC_BASE_URL="https://zf.example.gov.cn")


async def test_https_deployment_sends_hsts_and_host_prefixed_secure_cookies(
    https_app: Litestar, world: World, connect: Connect
) -> None:
    async with connect(https_app, "https://zf.example.gov.cn") as client:
        raw = client.raw
        r = await raw.get("/login", headers=HTML)
        assert r.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
        csrf = _set_cookies(r)["__Host-zf_csrf"]
        assert "Secure" in csrf and "Path=/" in csrf and "Domain" not in csrf
        token = raw.cookies.get("__Host-zf_csrf")
        r = await raw.post(
            "/api/auth/login",
            json={"username": "admin_a", "password": PASSWORD},
            headers={"x-csrftoken": token},
        )
        assert r.status_code == 200
        session = _set_cookies(r)["__Host-zf_session"]
        assert "Secure" in session and "HttpOnly" in session and "Path=/" in session
        assert "Domain" not in session and "samesite=lax" in session.lower()
        assert (await raw.get("/api/auth/me")).json()["username"] == "admin_a"


async def test_cookie_flags_on_plain_http(client: Client, world: World) -> None:
    r = await client.get("/login", headers=HTML)
    csrf = _set_cookies(r)["zf_csrf"]
    assert "samesite=strict" in csrf.lower() and "Path=/" in csrf
    assert "Secure" not in csrf  # the test server is plain HTTP; production refuses SECURE_COOKIES=false
    r = await client.login("admin_a")
    session = _set_cookies(r)["zf_session"]
    assert "HttpOnly" in session and "samesite=lax" in session.lower() and "Path=/" in session
    # The cookie holds the session encrypted: neither the account id nor the username reads in it.
    assert "admin_a" not in session and '"aid"' not in session


async def test_pages_escape_what_they_echo(client: Client, world: World) -> None:
    """Templates autoescape: a query or a path that carries markup comes back as text."""
    payload = '<script>alert("x")</script>'
    await client.login("admin_a")
    r = await client.get("/officers", params={"q": payload}, headers=HTML)
    assert r.status_code == 200 and payload not in r.text and "&lt;script&gt;" in r.text
    r = await client.form("/login", {"username": payload, "password": "x"})
    assert payload not in r.text
