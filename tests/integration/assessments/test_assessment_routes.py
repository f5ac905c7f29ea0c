"""The pages and the JSON API of assessment and exit, as the three roles use them."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.assessments.models import AssessmentRating, ExitCase
from app.assessments.services import closing
from app.lib import clock
from app.lib.security import system_principal
from tests.factories import World
from tests.integration.assessments.conftest import TODAY, add_qualification, add_rating, count
from tests.integration.conftest import Client


async def test_rating_form_confirm_and_consequences(client: Client, db: AsyncSession, world: World) -> None:
    await client.login("admin_a")
    oid = world.officer_a.id
    r = await client.get(f"/assessments/officers/{oid}")
    assert r.status_code == 200 and "登记考核结果" in r.text
    r = await client.form(f"/assessments/officers/{oid}", {"year": "2026", "grade": "良好"})
    assert r.status_code == 400 and "不在本发证机关的等次列表中" in r.text
    assert await count(db, AssessmentRating) == 0
    r = await client.form(
        f"/assessments/officers/{oid}",
        {
            "year": "2026",
            "grade": "不合格",
            "legal_test_score": "45",
            "remedy": "off_post_training",
            "confirm": "1",
        },
        follow_redirects=True,
    )
    assert r.status_code == 200 and "考核结果已保存" in r.text
    assert "2026 年度考核不合格：当年公务员年度考核不得评为优秀；须离岗培训" in r.text
    rating = await db.scalar(select(AssessmentRating))
    assert rating is not None and rating.status == "confirmed" and rating.legal_test_score == 45
    # Locked: the page offers a correction, and a correction without a reason is refused.
    r = await client.form(f"/assessments/ratings/{rating.id}/correct", {"grade": "合格", "reason": ""})
    assert r.status_code == 400
    r = await client.form(
        f"/assessments/ratings/{rating.id}/correct",
        {"grade": "合格", "reason": "测试成绩登记错误"},
        follow_redirects=True,
    )
    assert r.status_code == 200 and "已更正" in r.text
    r = await client.get("/assessments", params={"year": 2026})
    assert "李明" in r.text and "不合格" not in r.text.split("<tbody>")[1].split("</tbody>")[0]


async def test_json_rating_api(client: Client, world: World) -> None:
    await client.login("admin_a")
    r = await client.post(
        "/api/assessments/ratings", json={"officer_id": world.officer_a.id, "year": 2026, "grade": "合格"}
    )
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert r.json()["status"] == "draft"
    r = await client.post(f"/api/assessments/ratings/{rid}/confirm")
    assert r.status_code == 200 and r.json()["status"] == "confirmed"
    r = await client.post(
        "/api/assessments/ratings", json={"officer_id": world.officer_a.id, "year": 2026, "grade": "优秀"}
    )
    assert r.status_code == 409
    r = await client.post(
        "/api/assessments/ratings", json={"officer_id": world.officer_b.id, "year": 2026, "grade": "合格"}
    )
    assert r.status_code == 404
    r = await client.get("/api/assessments/ratings", params={"year": 2026})
    assert r.json()["total"] == 1
    schema = (await client.get("/schema/openapi.json")).json()
    for path in (
        "/api/assessments/ratings",
        "/api/assessments/cases/{case_id}/decision",
        "/api/assessments/close-year",
    ):
        assert path in schema["paths"], path


async def test_import_page(client: Client, db: AsyncSession, world: World) -> None:
    await client.login("admin_a")
    a = world.officer_a
    body = f"身份证号码,姓名,考核等次\r\n{a.id_number},{a.name},合格\r\n{a.id_number},{a.name},不合格\r\n".encode()
    files = {"file": ("k.csv", body, "text/csv")}
    r = await client.post(
        "/assessments/import", files=files, data={"year": "2026"}, headers={"accept": "text/html"}
    )
    assert r.status_code == 422 and "与第 2 行重复" in r.text
    assert await count(db, AssessmentRating) == 0


async def test_case_through_the_pages(
    client: Client, db: AsyncSession, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_rating(db, world.officer_a, 2025, "不合格")
    await add_rating(db, world.officer_a, 2026, "不合格")
    q = await add_qualification(db, world.officer_a)
    await db.commit()

    await client.login("sfj_admin")
    r = await client.form("/assessments/close-year", {"year": "2026"}, follow_redirects=True)
    assert r.status_code == 200 and "新开立退出案件 <strong>1</strong> 件" in r.text
    r = await client.form("/assessments/close-year", {"year": "2026"}, follow_redirects=True)
    assert "新开立退出案件 <strong>0</strong> 件" in r.text
    case = await db.scalar(select(ExitCase))
    assert case is not None
    r = await client.form(
        f"/assessments/cases/{case.id}/decision", {"decision": "confirm", "reason": "事实清楚"}
    )
    assert r.status_code == 400 and "期限" in r.text  # the officer has not been heard yet
    assert r.headers["content-type"].startswith("text/html"), r.headers["content-type"]

    await client.raw.post("/logout", headers={"x-csrftoken": await client.csrf()})
    await client.login("officer_a")
    r = await client.get("/my/assessments")
    assert r.status_code == 200 and f"/my/assessments/cases/{case.id}" in r.text
    r = await client.form(
        f"/my/assessments/cases/{case.id}/statement",
        {"statement": "2025 年度我长期病休"},
        follow_redirects=True,
    )
    assert r.status_code == 200 and "陈述申辩已提交" in r.text and "长期病休" in r.text
    r = await client.get(f"/assessments/cases/{case.id}")
    assert r.status_code == 403  # the administrators' page is not the officer's

    await client.raw.post("/logout", headers={"x-csrftoken": await client.csrf()})
    await client.login("admin_a")
    r = await client.form(f"/assessments/cases/{case.id}/decision", {"decision": "confirm", "reason": "x"})
    assert r.status_code == 403  # an agency administrator does not decide
    await client.raw.post("/logout", headers={"x-csrftoken": await client.csrf()})
    await client.login("sfj_admin")
    r = await client.form(
        f"/assessments/cases/{case.id}/decision",
        {"decision": "confirm", "reason": "连续两年不合格，陈述理由不成立"},
        follow_redirects=True,
    )
    assert r.status_code == 200 and "决定已作出" in r.text and "取消执法资格" in r.text
    await db.commit()  # end the test session's snapshot (SQLite keeps it otherwise)
    await db.refresh(q)
    assert q.status == "removed"
    r = await client.get(f"/api/assessments/cases/{case.id}")
    kinds = [e["kind"] for e in r.json()["timeline"]]
    assert kinds[:4] == ["opened", "notified", "statement", "decision"]

    # The review, through the pages too: the officer asks, the office decides it.
    await client.raw.post("/logout", headers={"x-csrftoken": await client.csrf()})
    await client.login("officer_a")
    r = await client.form(
        f"/my/assessments/cases/{case.id}/review-request", {"request": "请求复核"}, follow_redirects=True
    )
    assert r.status_code == 200 and "复核申请已提交" in r.text and "请求复核" in r.text
    await client.raw.post("/logout", headers={"x-csrftoken": await client.csrf()})
    await client.login("sfj_admin")
    r = await client.form(
        f"/assessments/cases/{case.id}/review-decision", {"result": "upheld", "reason": " "}
    )
    assert r.status_code in (400, 422) and "作出复核决定" in r.text  # the review form again, with its error
    r = await client.form(
        f"/assessments/cases/{case.id}/review-decision",
        {"result": "upheld", "reason": "原决定事实清楚"},
        follow_redirects=True,
    )
    assert r.status_code == 200 and "复核决定已记录" in r.text
    await db.commit()
    await db.refresh(case)
    assert case.status == "closed" and case.review_result == "upheld"


async def test_close_year_api_is_the_authority_s(client: Client, world: World) -> None:
    await client.login("admin_a")
    r = await client.post("/api/assessments/close-year", json={"year": 2026})
    assert r.status_code == 403
    await client.raw.post("/logout", headers={"x-csrftoken": await client.csrf()})
    await client.login("sfj_admin")
    r = await client.post("/api/assessments/close-year", json={"year": 2026})
    assert r.status_code == 200 and r.json()["cases_opened"] == 0 and r.json()["scope"] == "江南省"
    assert clock.today() == TODAY and dt.date(2026, 1, 1) < TODAY


async def test_console_runs_show_on_the_authority_page_within_its_tree(
    client: Client, db: AsyncSession, world: World
) -> None:
    for officer in (world.officer_a, world.officer_b):
        await add_rating(db, officer, 2025, "不合格")
        await add_rating(db, officer, 2026, "不合格")
    await db.commit()
    out = await closing.close_year(db, principal=system_principal(), year=2026)
    assert out.cases_opened == 2
    await db.commit()  # what the console's session does when the close returns
    await client.login("sfj_admin")
    r = await client.get("/assessments/close-year")
    assert "控制台命令，全部单位" in r.text and "乙市生态环境局" in r.text
    assert '<script src="/static/js/close_year.js?v=' in r.text
    js = await client.get("/static/js/close_year.js")
    assert js.status_code == 200 and "close-year-progress" in js.text
    # A city-level authority would see only its own agencies' lines: the summary is cut to the viewer's tree.
    from app.accounts.models import Account
    from app.lib.enums import Role

    account = await db.get(Account, world.admin_a.id)
    assert account is not None
    account.role = Role.AUTHORITY_ADMIN.value
    await db.commit()
    await client.raw.post("/logout", headers={"x-csrftoken": await client.csrf()})
    await client.login("admin_a")
    r = await client.get("/assessments/close-year")
    assert r.status_code == 200 and "甲市市场监督管理局" in r.text and "乙市生态环境局" not in r.text


@pytest.mark.parametrize(
    "url",
    [
        "/assessments/cases?status=&year=&returned=",  # the filter form's 全部 sends empty values
        "/assessments/cases?status=open",
        "/assessments?year=2026&agency_id=&grade=&status=",
        "/api/assessments/cases?status=",
    ],
)
async def test_list_filters_take_the_forms_empty_all(client: Client, world: World, url: str) -> None:
    await client.login("sfj_admin")
    r = await client.get(url)
    assert r.status_code == 200, r.text


async def test_list_filters_refuse_an_unknown_status_with_the_field(client: Client, world: World) -> None:
    await client.login("sfj_admin")
    r = await client.get("/assessments/cases?status=nonsense")
    assert r.status_code == 400 and "status" in r.text
