"""Static files: every page links them by a versioned address, and they are cached for good."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from app.lib.static import STATIC_DIR, static_url
from tests.factories import World
from tests.integration.conftest import Client

TEMPLATES = Path(__file__).resolve().parents[3] / "app" / "templates"


def test_no_template_links_a_static_file_without_its_version() -> None:
    unversioned = [
        f"{p.relative_to(TEMPLATES)}: {m.group(0)}"
        for p in TEMPLATES.rglob("*.html")
        for m in re.finditer(r"""["']/static/[^"']*["']""", p.read_text(encoding="utf-8"))
    ]
    assert unversioned == []


def test_the_version_is_the_files_content_hash() -> None:
    for name in ("css/app.css", "js/exam.js"):
        digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
        assert static_url(name) == f"/static/{name}?v={digest}"


async def test_pages_link_the_versioned_file_and_it_is_cached_for_good(client: Client, world: World) -> None:
    page = await client.get("/login")
    assert page.status_code == 200
    linked = re.findall(r'href="(/static/css/app\.css\?v=[0-9a-f]{12})"', page.text)
    assert linked == [static_url("css/app.css")]
    css = await client.get(linked[0])
    assert css.status_code == 200 and css.content == (STATIC_DIR / "css/app.css").read_bytes()
    assert sorted(css.headers["cache-control"].split(", ")) == ["immutable", "max-age=31536000", "public"]
    assert "set-cookie" not in css.headers


async def test_files_are_answered_from_memory_with_their_type_etag_and_nothing_else(
    client: Client, world: World
) -> None:
    js = await client.get("/static/js/exam.js")
    assert js.status_code == 200 and js.content == (STATIC_DIR / "js/exam.js").read_bytes()
    assert js.headers["content-type"].startswith(("application/javascript", "text/javascript"))
    etag = js.headers["etag"]
    again = await client.get("/static/js/exam.js", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""
    css = await client.get("/static/css/app.css")
    assert css.headers["content-type"].startswith("text/css")
    for missing in ("/static/js/nope.js", "/static/../settings.py", "/static/%2e%2e/asgi.py", "/static/"):
        r = await client.get(missing)
        assert r.status_code == 404, (missing, r.status_code)
