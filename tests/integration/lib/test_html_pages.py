"""Pages are HTML whatever their handler's return annotation.

A page handler that may answer a page or a redirect is annotated ``-> Any``; Litestar then defaults
its media type to JSON, and the page (a Template) went out as ``application/json``: Chromium showed
the account-created page, with the one-time password, as source text. ``render`` now says HTML.
"""

from __future__ import annotations

from tests.factories import World


async def test_the_account_created_page_is_html(client, world: World) -> None:
    await client.login(world.admin_a.username)
    r = await client.form(
        "/accounts/new",
        {
            "username": "new.admin",
            "display_name": "新管理员",
            "role": "agency_admin",
            "agency_id": world.dept_a.id,
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert "一次性初始密码" in r.text


async def test_a_refused_form_is_shown_again_as_html(client, world: World) -> None:
    await client.login(world.admin_a.username)
    r = await client.form("/certificates/apply", {"kind": "enforcement"})
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("text/html")
    assert "请选择申领证件的执法人员" in r.text
