"""The authority's side: defining exams and blueprints, sessions, enrolment, results, statistics."""

from __future__ import annotations

import csv
import io
import re

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.exams.models import Exam, ExamEnrolment
from tests.factories import World, add_officer
from tests.integration.conftest import Client
from tests.integration.exams.conftest import (
    PUBLIC_SIZES,
    SPECIAL_SIZES,
    ExamSetup,
    bank_toml,
    correct_answers,
    import_text,
)


async def _banks(db: AsyncSession) -> None:
    await import_text(db, bank_toml("pub", sizes=PUBLIC_SIZES, prefix="P"), "pub.toml")
    await import_text(
        db,
        bank_toml("mkt", part="specialised", field="市场监管", sizes=SPECIAL_SIZES, prefix="M"),
        "mkt.toml",
    )


EXAM = {
    "title": "2026年度执法资格考试",
    "parts": [
        {
            "part": "public",
            "duration_minutes": 60,
            "blueprint": [
                {"category": "public_law", "type": "single", "count": 6, "points": 10},
                {"category": "public_law", "type": "judge", "count": 4, "points": 10},
            ],
        }
    ],
}


async def test_define_exam_by_json_with_policy_defaults_and_refusals(
    client: Client, db: AsyncSession, world: World
) -> None:
    await _banks(db)
    await client.login("sfj_admin")
    r = await client.post("/api/exams", json=EXAM)
    assert r.status_code == 201, r.text
    exam = r.json()
    assert exam["pass_mark"] == 60 and exam["retakes"] == 1  # the authority's policy
    assert exam["parts"][0]["question_count"] == 10
    assert [r["type_label"] for r in exam["parts"][0]["blueprint"]] == ["单选题", "判断题"]

    too_many = {
        **EXAM,
        "parts": [
            {
                **EXAM["parts"][0],
                "blueprint": [{"category": "public_law", "type": "single", "count": 20, "points": 5}],
            }
        ],
    }
    r = await client.post("/api/exams", json=too_many)
    assert r.status_code == 400 and "需要 20 题，题库中只有 8 题" in r.json()["detail"]
    wrong_total = {
        **EXAM,
        "parts": [
            {
                **EXAM["parts"][0],
                "blueprint": [{"category": "public_law", "type": "single", "count": 5, "points": 10}],
            }
        ],
    }
    r = await client.post("/api/exams", json=wrong_total)
    assert r.status_code == 400 and "分值之和应为 100 分，现为 50 分" in r.json()["detail"]
    r = await client.post("/api/exams", json={**EXAM, "parts": [EXAM["parts"][0], EXAM["parts"][0]]})
    assert r.status_code == 400 and "重复" in r.json()["detail"]
    special_missing = {
        **EXAM,
        "parts": [
            {
                "part": "specialised",
                "duration_minutes": 30,
                "blueprint": [{"category": "new_law", "type": "single", "count": 10, "points": 10}],
            }
        ],
    }
    r = await client.post("/api/exams", json=special_missing)
    assert r.status_code == 400 and "市场监管" in r.json()["detail"]
    assert await db.scalar(select(func.count()).select_from(Exam)) == 1

    await client.login("admin_a")
    assert (await client.post("/api/exams", json=EXAM)).status_code == 403


async def test_pages_define_exam_open_session_enrol_agency_and_see_results(
    client: Client, db: AsyncSession, world: World
) -> None:
    await _banks(db)
    # an officer who may not hold a certificate, in city A: never enrolled with the agency
    from app.lib.enums import StaffType

    await add_officer(db, world.dept_a, "辅助人员", staff_type=StaffType.ASSISTANT)
    world.officer_a.name = "=HYPERLINK(1)"  # a name typed to run as a formula in a spreadsheet
    await db.commit()
    await client.login("sfj_admin")
    r = await client.get("/exams/new", headers={"accept": "text/html"})
    assert r.status_code == 200 and "组卷规则" in r.text
    form = {
        "title": "页面定义的考试",
        "pass_mark": "70",
        "retakes": "",
        "multiple_scoring": "partial",
        "parts_mode": "exam",  # this exam's own parts, not the authority's default
        "parts_order": "public,specialised",
        "public_on": "1",
        "public_minutes": "50",
        "public_blueprint": "公共法律知识 单选题 5 10\n公共法律知识 多选题 2 15\n公共法律知识 判断题 2 10",
        "specialised_on": "1",
        "specialised_minutes": "30",
        "specialised_blueprint": "专门法律知识 单选题 4 15\n专门法律知识 判断题 2 20",
    }
    bad = {**form, "public_blueprint": "公共法律知识 单选题 5 10\n公共法律 问答题 2 15"}
    r = await client.form("/exams/new", bad)
    assert r.status_code == 400 and "第 2 行：题型 问答题 无效" in r.text
    r = await client.form("/exams/new", form, follow_redirects=False)
    assert r.status_code == 303, r.text
    exam_url = r.headers["location"].split("?")[0]
    exam_id = int(exam_url.rsplit("/", 1)[1])
    page = (await client.get(exam_url, headers={"accept": "text/html"})).text
    assert "及格分数</dt><dd>70 分" in page and "多选题少选按比例得分" in page

    r = await client.form(
        f"/exams/{exam_id}/sessions",
        {
            "title": "甲市场次",
            "opens_at": "2026-01-01T09:00",
            "closes_at": "2026-01-01T09:10",
            "review_policy": "never",
        },
    )
    assert r.status_code == 400 and "短于最长的考试部分" in r.text
    r = await client.form(
        f"/exams/{exam_id}/sessions",
        {
            "title": "甲市场次",
            "opens_at": "2026-01-01T09:00",
            "closes_at": "2099-01-01T12:00",
            "review_policy": "never",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    session_url = r.headers["location"].split("?")[0]
    session_id = int(session_url.rsplit("/", 1)[1])

    r = await client.form(f"{session_url}/enrol", {"id_numbers": "110101199001011234"})
    assert r.status_code == 400 and "不存在或不在您的管理范围内" in r.text
    r = await client.form(f"{session_url}/enrol", {"agency_id": str(world.city_a.id)})
    assert (
        r.status_code == 200
        and "已安排 1 名考生" in r.text
        and "1 名不在岗或人员性质不得申领执法证" in r.text
    )
    r = await client.form(f"{session_url}/enrol", {"id_numbers": world.officer_a.id_number})
    assert "1 名此前已安排" in r.text
    enrolled = (
        await db.scalars(select(ExamEnrolment.officer_id).where(ExamEnrolment.session_id == session_id))
    ).all()
    assert list(enrolled) == [world.officer_a.id]
    await db.commit()

    # officer_a takes the public part through the pages: all right; the specialised part: all wrong.
    await client.login("officer_a")
    my = (await client.get("/my/exams", headers={"accept": "text/html"})).text
    assert "开始考试：公共法律知识" in my
    starts = re.findall(r'action="(/my/exams/sessions/\d+/parts/\d+/start)"', my)
    r = await client.form(starts[0], {}, follow_redirects=False)
    assert r.status_code == 303
    attempt_id = int(r.headers["location"].rsplit("/", 1)[1])
    answers = await correct_answers(db, attempt_id)
    assert (
        await client.put(f"/api/my/exams/attempts/{attempt_id}/answers", json={"answers": answers})
    ).status_code == 200
    r = await client.form(f"/my/exams/attempts/{attempt_id}/submit", {}, follow_redirects=True)
    assert r.status_code == 200 and 'id="score">100<' in r.text and "本场考试不公布答案" in r.text
    r = await client.form(starts[1], {}, follow_redirects=False)
    special_id = int(r.headers["location"].rsplit("/", 1)[1])
    await client.form(f"/my/exams/attempts/{special_id}/submit", {})

    await client.login("sfj_admin")
    results = (await client.get(f"/api/exams/sessions/{session_id}/results")).json()
    (agency,) = results["agencies"]
    assert agency["agency_name"] == "甲市市场监督管理局"
    assert (agency["enrolled"], agency["attempted"], agency["passed_all"]) == (1, 1, 0)
    assert agency["average_score"] == 50.0
    (officer,) = results["officers"]
    assert officer["parts"] == {"public": 100.0, "specialised": 0.0} and officer["passed_all"] is False
    assert officer["officer_name"] == "=HYPERLINK(1)"  # the JSON shows the name as typed
    r = await client.get(f"/exams/sessions/{session_id}/results.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["人员编号", "姓名", "单位", "执法领域"]
    assert rows[1][1] == "'=HYPERLINK(1)" and rows[1][4:7] == ["100", "0", "未通过"]
    page = (await client.get(session_url, headers={"accept": "text/html"})).text
    assert "甲市市场监督管理局" in page and "未通过" in page
    stats = (await client.get(f"/api/exams/sessions/{session_id}/stats")).json()
    public = stats["parts"][0]
    assert public["candidates"] == 1 and len(public["questions"]) == 9
    assert all(q["share_correct"] == 1.0 for q in public["questions"])
    assert all(q["title"] == "" for q in public["questions"])  # TOML questions have no GIFT title
    assert (
        await client.get(f"/exams/sessions/{session_id}/stats", headers={"accept": "text/html"})
    ).status_code == 200


async def test_results_are_scoped_to_the_subtree(
    client: Client, db: AsyncSession, world: World, setup: ExamSetup
) -> None:
    from app.exams.schemas import EnrolIn
    from app.exams.services.sessions import session_enrol
    from tests.integration.exams.conftest import authority

    await session_enrol(
        db,
        principal=authority(world),
        session_id=setup.session_id,
        data=EnrolIn(officer_ids=[world.officer_b.id]),
    )
    await db.commit()  # the test is the edge
    await client.login("sfj_admin")
    everyone = (await client.get(f"/api/exams/sessions/{setup.session_id}/results")).json()
    assert {o["officer_name"] for o in everyone["officers"]} == {"李明", "王芳"}
    city_a = (
        await client.get(
            f"/api/exams/sessions/{setup.session_id}/results", params={"agency_id": world.city_a.id}
        )
    ).json()
    assert {o["officer_name"] for o in city_a["officers"]} == {"李明"}
    assert (await client.get("/api/exams/sessions/999/results")).status_code == 404
