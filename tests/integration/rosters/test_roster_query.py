"""The qualification roster through its JSON API and page: filters, scope, keyset pages, ID masking."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Officer
from app.lib.enums import Role
from tests.factories import World, add_account, add_officer
from tests.integration.conftest import Client
from tests.integration.rosters.conftest import TODAY, YEAR, qualify


async def names(client: Client, query: str, **kw: Any) -> list[str]:
    r = await client.get(f"/api/rosters?{query}", **kw)
    assert r.status_code == 200, r.text
    body = r.json()
    got = [row["name"] for row in body["items"]]
    assert body["total"] == len(got)
    return got


@pytest.mark.parametrize(
    "query,expected",
    [
        ("", {"李明", "赵一", "钱二", "孙三", "周四", "吴五", "王芳"}),
        ("exam=valid", {"赵一", "王芳"}),
        ("exam=none", {"李明", "钱二", "孙三", "周四", "吴五"}),
        (f"year={YEAR}&training=met", {"赵一", "吴五", "王芳"}),
        (f"year={YEAR}&training=short", {"李明", "钱二", "孙三", "周四"}),
        (f"year={YEAR - 1}&training=met", {"李明"}),
        ("post=legal_review", {"钱二"}),
        ("staff_type=contract", {"孙三"}),
        ("status=retired", {"孙三"}),
        ("status=active&exam=none", {"李明", "钱二", "周四", "吴五"}),
        ("status=inactive", {"孙三"}),
        ("eligible=no", {"孙三"}),
        ("eligible=yes&status=inactive", set()),
        ("field=生态环境", {"钱二", "王芳"}),
        ("q=赵", {"赵一"}),
        ("q=%25", set()),  # LIKE wildcards are searched for literally
        (f"year={YEAR}&training=met&exam=valid&field=市场监管", {"赵一"}),
        ("cert=valid", {"李明", "赵一", "王芳", "孙三", "吴五"}),
        ("cert=valid&cert_kind=enforcement", {"赵一", "王芳", "孙三", "吴五"}),
        ("cert_kind=supervision", {"李明", "王芳"}),
        ("cert=none", {"钱二", "周四"}),
        ("cert=none&cert_kind=supervision", {"赵一", "钱二", "孙三", "周四", "吴五"}),
        ("cert=expiring", {"王芳"}),
        ("cert=expired", {"周四"}),
        ("cert=suspended", {"钱二"}),
        ("cert=revoked", set()),
        ("cert=duplicate", {"吴五"}),
        ("cert=valid&status=inactive", {"孙三"}),
        ("cert=valid&eligible=no", {"孙三"}),
        ("rating=不合格", {"吴五", "王芳", "钱二"}),
        (f"rating=不合格&rating_year={YEAR}", {"吴五", "王芳"}),
        (f"rating=不合格&rating_year={YEAR - 1}", {"吴五", "钱二"}),
        ("rating=failing", {"吴五", "王芳", "钱二"}),
        (f"rating=failing&rating_year={YEAR - 1}", {"吴五", "钱二"}),
        ("rating=合格", {"赵一"}),
        ("rating=优秀", set()),
        (f"rating=优秀&rating_year={YEAR - 1}", {"赵一"}),
        ("exit=open", {"吴五"}),
        ("exit=none", {"李明", "赵一", "钱二", "孙三", "周四", "王芳"}),
    ],
)
async def test_each_filter_keeps_exactly_its_rows(
    client: Client, world: World, people: dict[str, Officer], query: str, expected: set[str]
) -> None:
    await client.login("sfj_admin")
    assert set(await names(client, query)) == expected


async def test_agency_filter_and_scope(client: Client, world: World, people: dict[str, Officer]) -> None:
    await client.login("sfj_admin")
    assert set(await names(client, f"agency_id={world.dept_b.id}")) == {"王芳"}
    client.raw.cookies.clear()
    # admin_a (city A) sees city A's tree only; city B's agency answers 404 and its officer never shows.
    await client.login("admin_a")
    assert "王芳" not in await names(client, "")
    assert set(await names(client, "field=生态环境")) == {"钱二"}
    r = await client.get(f"/api/rosters?agency_id={world.dept_b.id}")
    assert r.status_code == 404
    r = await client.get(f"/api/rosters/dashboard?agency_id={world.city_b.id}")
    assert r.status_code == 404


async def test_officer_role_is_refused(client: Client, world: World, people: dict[str, Officer]) -> None:
    await client.login("officer_a")
    assert (await client.get("/api/rosters")).status_code == 403
    assert (await client.get("/rosters/export.csv")).status_code == 403


async def test_id_numbers_full_only_for_the_officers_own_agency(
    client: Client, db: AsyncSession, world: World, people: dict[str, Officer]
) -> None:
    await add_account(db, "admin_dept_a", Role.AGENCY_ADMIN, world.dept_a)
    await db.commit()
    await client.login("admin_a")  # city A: above the officers' department
    r = await client.get("/api/rosters?q=赵一")
    row = r.json()["items"][0]
    assert row["id_number"] != people["赵一"].id_number and "**********" in row["id_number"]
    client.raw.cookies.clear()
    await client.login("admin_dept_a")
    row = (await client.get("/api/rosters?q=赵一")).json()["items"][0]
    assert row["id_number"] == people["赵一"].id_number


async def test_row_values(client: Client, world: World, people: dict[str, Officer]) -> None:
    await client.login("sfj_admin")
    r = await client.get(f"/api/rosters?q=赵一&year={YEAR}")
    row = r.json()["items"][0]
    assert row["agency_name"] == world.dept_a.name
    assert (
        row["exam_valid"] is True and row["exam_valid_until"] == (TODAY + dt.timedelta(days=900)).isoformat()
    )
    assert row["training_hours"] == 40 and row["training_required"] == 40 and row["training_met"] is True
    assert row["cert_kind"] == "enforcement" and row["cert_status"] == "valid" and row["cert_number"]
    assert (row["rating_year"], row["rating_grade"], row["exit_open"]) == (YEAR, "合格", False)
    wu = (await client.get("/api/rosters?q=吴五")).json()["items"][0]
    assert (wu["rating_grade"], wu["exit_open"]) == ("不合格", True)
    assert r.json()["filter"] == {"q": "赵一", "year": str(YEAR)}
    # The row shows the latest card of the filtered kind; a card past its last day reads expired.
    zhou = (await client.get("/api/rosters?q=周四")).json()["items"][0]
    assert zhou["cert_status"] == "expired"
    li = (await client.get("/api/rosters?q=李明&cert_kind=enforcement")).json()
    assert li["total"] == 0
    li = (await client.get("/api/rosters?q=李明")).json()["items"][0]
    assert (li["cert_kind"], li["cert_number"]) == ("supervision", world.cert_a.number)


@pytest.mark.parametrize("sort", ["agency", "name", "newest"])
async def test_keyset_pages_walk_every_row_once_in_order(
    client: Client, db: AsyncSession, world: World, people: dict[str, Officer], sort: str
) -> None:
    # Namesakes: the id breaks the tie, so no row is skipped or repeated at a page boundary.
    for _ in range(3):
        await add_officer(db, world.dept_a, "赵一")
    await db.commit()
    await client.login("sfj_admin")
    everything = (await client.get(f"/api/rosters?sort={sort}&per_page=200")).json()
    seen: list[int] = []
    after = None
    pages = 0
    while True:
        url = f"/api/rosters?sort={sort}&per_page=2" + (f"&after={after}" if after else "")
        body = (await client.get(url)).json()
        assert body["total"] == everything["total"] == 10
        seen += [row["officer_id"] for row in body["items"]]
        pages += 1
        after = body["next_cursor"]
        if after is None:
            break
    assert pages == 5
    assert seen == [row["officer_id"] for row in everything["items"]]
    assert len(set(seen)) == 10
    if sort == "newest":
        assert seen == sorted(seen, reverse=True)
    if sort == "name":
        assert [row["name"] for row in everything["items"]] == sorted(
            row["name"] for row in everything["items"]
        )


async def test_bad_filter_or_cursor_is_a_400_naming_the_field(
    client: Client, world: World, people: dict[str, Officer]
) -> None:
    await client.login("sfj_admin")
    r = await client.get("/api/rosters?exam=maybe", headers={"accept": "application/json"})
    assert r.status_code == 400
    assert "exam" in r.text and "筛选条件有误" in r.text
    r = await client.get("/api/rosters?sort=name&after=abc", headers={"accept": "application/json"})
    assert r.status_code == 400 and "翻页参数无效" in r.text


async def test_roster_page_shows_rows_links_and_the_shareable_url(
    client: Client, world: World, people: dict[str, Officer]
) -> None:
    await client.login("sfj_admin")
    r = await client.get(f"/rosters?exam=valid&year={YEAR}&per_page=1")
    assert r.status_code == 200
    html = r.text
    # The rows come at once; the total is counted apart (the page's script asks /api/rosters/count,
    # the 统计人数 link reloads with count=1), then known to the next page view of the same filter.
    assert "执法人员资格名册" in html and 'id="roster-total" data-src="/api/rosters/count?exam=valid' in html
    assert "count=1" in html and "/static/js/roster.js" in html
    counted = await client.get(f"/rosters?exam=valid&year={YEAR}&per_page=1&count=1")
    assert '符合条件 <strong id="roster-total">2</strong> 人' in counted.text
    assert (await client.get(f"/api/rosters/count?exam=valid&year={YEAR}")).json()["total"] == 2
    r = await client.get(f"/rosters?exam=valid&year={YEAR}&per_page=1")
    html = r.text
    assert '符合条件 <strong id="roster-total">2</strong> 人' in html
    assert f"/rosters/export.csv?exam=valid&amp;year={YEAR}" in html
    assert f"/rosters/export.xlsx?exam=valid&amp;year={YEAR}" in html
    assert "下一页" in html and "after=" in html
    assert f"/rosters?exam=valid&amp;year={YEAR}" in html  # the share link
    # A bad filter in a hand-typed URL: the page says why and shows the unfiltered roster.
    r = await client.get("/rosters?training=half")
    assert r.status_code == 200 and "筛选条件有误" in r.text


async def test_counts_apart_remembered_until_an_audited_change(
    client: Client, db: AsyncSession, world: World, people: dict[str, Officer]
) -> None:
    from app.audit.services import audit_record
    from app.lib.actor import SYSTEM

    await client.login("sfj_admin")
    view = f"exam=valid&year={YEAR}"
    rows_only = (await client.get(f"/api/rosters?{view}&count=false")).json()
    assert rows_only["total"] is None and len(rows_only["items"]) == 2  # not counted yet: rows only
    assert (await client.get(f"/api/rosters/count?{view}")).json() == {
        "total": 2,
        "filter": {"exam": "valid", "year": str(YEAR)},
    }
    assert (await client.get(f"/api/rosters?{view}&count=false")).json()["total"] == 2  # remembered
    # A change that moves an officer into the view is audited in its transaction: a new count.
    await qualify(db, people["钱二"])
    await audit_record(
        db,
        actor=SYSTEM,
        action="exam.qualification.granted",
        entity_type="officer",
        entity_id=str(people["钱二"].id),
    )
    await db.commit()
    assert (await client.get(f"/api/rosters?{view}&count=false")).json()["total"] is None
    assert (await client.get(f"/api/rosters?{view}")).json()["total"] == 3
    assert (await client.get(f"/api/rosters/count?{view}&training=bogus")).status_code == 400
