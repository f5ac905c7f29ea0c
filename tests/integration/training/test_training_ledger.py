"""Courses, attendance typed in, and the append-only ledger with its corrections (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.audit.services import audit_verify
from app.training.models import TrainingCourse, TrainingRecord
from tests.factories import World, add_course, add_officer, add_record, make_id_number
from tests.integration.conftest import Client
from tests.integration.training.conftest import (
    YEAR,
    api_course,
    assert_totals_match_ledger,
    count,
    day,
    ledger_counts,
)

# ---------------------------------------------------------------- courses


async def test_course_is_recorded_audited_and_scoped(client: Client, world: World, db: AsyncSession) -> None:
    await client.login("admin_a")
    course = await api_course(client, hours="2.5", agency_id=world.dept_a.id)
    assert course["hours"] == 2.5 and course["year"] == YEAR
    assert course["category_label"] == "公共法律知识" and course["verification_label"] == "签到表"
    assert course["agency_name"] == "甲市市场监督管理局" and course["created_by_name"] == "admin_a"
    event = (await db.scalars(select(AuditEvent).where(AuditEvent.action == "training.course.create"))).one()
    assert event.actor_id == world.admin_a.id and event.entity_id == str(course["id"])
    assert (event.entity_type, event.agency_id) == ("training_course", world.dept_a.id)
    assert json.loads(event.data) == {
        "title": "行政处罚法专题培训",
        "category": "general_law",
        "hours": "2.5",
        "starts_on": f"{YEAR}-03-10",
        "ends_on": f"{YEAR}-03-11",
        "verification": "sign_in_sheet",
    }

    listed = (await client.get("/api/training/courses", params={"year": YEAR})).json()
    assert [c["id"] for c in listed["items"]] == [course["id"]]
    # The province sees it (its subtree); city B does not, not even by number.
    await client.login("sfj_admin")
    assert (await client.get(f"/api/training/courses/{course['id']}")).status_code == 200
    await client.login("admin_b")
    assert (await client.get(f"/api/training/courses/{course['id']}")).status_code == 404
    assert (await client.get("/api/training/courses", params={"year": YEAR})).json()["total"] == 0


async def test_a_course_from_above_is_visible_below(client: Client, world: World, db: AsyncSession) -> None:
    province_course = await add_course(db, world.province, "全省新法律法规网络培训", starts_on=day(5, 1))
    await db.commit()
    await client.login("admin_a")
    r = await client.get(f"/api/training/courses/{province_course.id}")
    assert r.status_code == 200 and r.json()["agency_name"] == "江南省"
    r = await client.post(
        f"/api/training/courses/{province_course.id}/attendance",
        json={"id_numbers": [world.officer_a.id_number]},
    )
    assert r.status_code == 201, r.text
    # ... but an admin below may only record their own officers.
    r = await client.post(
        f"/api/training/courses/{province_course.id}/attendance",
        json={"id_numbers": [world.officer_b.id_number]},
    )
    assert r.status_code == 422 and "未找到身份证号码" in r.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    "fields,field,message",
    [
        ({"hours": "2.25"}, "hours", "最多保留一位小数"),
        ({"hours": 0}, "hours", "学时须大于 0"),
        ({"hours": "两小时"}, "hours", "不是正数"),
        ({"ends_on": f"{YEAR}-03-01"}, "ends_on", "结束日期不能早于开始日期"),
        ({"ends_on": f"{YEAR + 1}-01-05"}, "ends_on", "同一年度"),
        ({"category": "外语"}, "category", "取值不在允许范围内"),
    ],
)
async def test_course_errors_name_the_field(
    client: Client, world: World, fields: dict[str, object], field: str, message: str
) -> None:
    await client.login("admin_a")
    body = {
        "title": "培训",
        "category": "general_law",
        "hours": 4,
        "starts_on": f"{YEAR}-03-10",
        "verification": "certificate",
        **fields,
    }
    r = await client.post("/api/training/courses", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == field and message in r.json()["errors"][0]["message"]


async def test_course_pages(client: Client, world: World) -> None:
    await client.login("admin_a")
    html = {"accept": "text/html"}
    assert "登记培训课程" in (await client.get("/training/courses/new", headers=html)).text
    bad = await client.form(
        "/training/courses/new",
        {
            "title": "宪法学习",
            "category": "general_law",
            "hours": "-1",
            "starts_on": f"{YEAR}-04-01",
            "verification": "sign_in_sheet",
        },
    )
    assert bad.status_code == 400 and "不是正数" in bad.text
    r = await client.form(
        "/training/courses/new",
        {
            "title": "宪法学习",
            "category": "general_law",
            "hours": "3",
            "starts_on": f"{YEAR}-04-01",
            "verification": "online_completion",
            "agency_id": str(world.dept_a.id),
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    page = await client.get(r.headers["location"], headers=html)
    assert page.status_code == 200 and "课程已登记" in page.text and "网络课程完成记录" in page.text
    listing = await client.get("/training/courses", headers=html)
    assert "宪法学习" in listing.text


# ---------------------------------------------------------------- attendance typed in


async def test_attendance_is_all_or_nothing(client: Client, world: World, db: AsyncSession) -> None:
    await client.login("admin_a")
    course = await api_course(client)
    url = f"/api/training/courses/{course['id']}/attendance"
    stranger = make_id_number(region="110105")
    before = await ledger_counts(db)
    r = await client.post(
        url, json={"id_numbers": [world.officer_a.id_number, stranger, world.officer_b.id_number, "123"]}
    )
    assert r.status_code == 422, r.text
    lines = [e["message"] for e in r.json()["errors"]]
    assert lines[0].startswith("第2行：未找到身份证号码") and lines[1].startswith("第3行：未找到身份证号码")
    assert lines[2].startswith("第4行：身份证号码应为18位")
    assert await ledger_counts(db) == before

    r = await client.post(url, json={"id_numbers": [world.officer_a.id_number]})
    assert r.status_code == 201, r.text
    (line,) = r.json()["created"]
    assert line["hours"] == 4 and line["attended_on"] == f"{YEAR}-03-11"  # the course's hours and last day
    assert line["kind"] == "record" and line["entered_by_name"] == "admin_a" and line["counts"] is True

    again = await client.post(
        url, json={"id_numbers": [world.officer_a.id_number], "attended_on": f"{YEAR}-03-11"}
    )
    assert again.status_code == 422 and "已登记" in again.json()["errors"][0]["message"]
    # Another day of the same course is another record; more hours than the course has is not.
    r = await client.post(
        url, json={"id_numbers": [world.officer_a.id_number], "attended_on": f"{YEAR}-03-10", "hours": 2}
    )
    assert r.status_code == 201
    r = await client.post(
        url, json={"id_numbers": [world.officer_a.id_number], "attended_on": f"{YEAR}-03-10", "hours": 5}
    )
    assert r.status_code == 400 and "超过课程学时" in r.text
    r = await client.post(
        url, json={"id_numbers": [world.officer_a.id_number], "attended_on": f"{YEAR}-04-01"}
    )
    assert r.status_code == 400 and "不在课程起止日期" in r.text
    event = (
        await db.scalars(
            select(AuditEvent).where(AuditEvent.action == "training.record.create").order_by(AuditEvent.id)
        )
    ).first()
    assert event is not None and event.actor_id == world.admin_a.id
    await assert_totals_match_ledger(db)


async def test_attendance_form(client: Client, world: World, db: AsyncSession) -> None:
    other = await add_officer(db, world.dept_a, "赵强")
    await db.commit()
    await client.login("admin_a")
    course = await api_course(client)
    html = {"accept": "text/html"}
    bad = await client.form(
        f"/training/courses/{course['id']}/attendance",
        {
            "id_numbers": f"{world.officer_a.id_number}\n{world.officer_b.id_number}",
            "attended_on": "",
            "hours": "",
        },
    )
    assert bad.status_code == 422 and "第 2 行" in bad.text and "未登记任何学时" in bad.text
    r = await client.form(
        f"/training/courses/{course['id']}/attendance",
        {
            "id_numbers": f"{world.officer_a.id_number}\r\n\r\n{other.id_number}\n",
            "attended_on": "",
            "hours": "3.5",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    page = await client.get(r.headers["location"], headers=html)
    assert "已登记 2 人的学时" in page.text and "赵强" in page.text and "李明" in page.text
    assert await count(db, TrainingRecord, TrainingRecord.course_id == course["id"]) == 2

    # ---------------------------------------------------------------- corrections
    await assert_totals_match_ledger(db)


async def test_reverse_and_amend_append_and_never_edit(
    client: Client, world: World, db: AsyncSession
) -> None:
    await client.login("admin_a")
    course = await api_course(client)
    r = await client.post(
        f"/api/training/courses/{course['id']}/attendance", json={"id_numbers": [world.officer_a.id_number]}
    )
    record_id = r.json()["created"][0]["id"]

    # Amend: 4 hours were 3, on the first day.
    r = await client.post(
        f"/api/training/records/{record_id}/amendment",
        json={"reason": "签到表记录有误", "hours": 3, "attended_on": f"{YEAR}-03-10"},
    )
    assert r.status_code == 201, r.text
    reversal, amendment = r.json()["reversal"], r.json()["amendment"]
    assert (reversal["hours"], reversal["kind"], reversal["corrects_id"]) == (-4, "reversal", record_id)
    assert (amendment["hours"], amendment["kind"], amendment["corrects_id"]) == (3, "amendment", record_id)
    assert amendment["attended_on"] == f"{YEAR}-03-10" and amendment["reason"] == "签到表记录有误"
    original = (await client.get(f"/api/training/records/{record_id}")).json()
    assert [(x["id"], x["counts"]) for x in original] == [
        (record_id, False),
        (reversal["id"], False),
        (amendment["id"], True),
    ]
    assert original[0]["hours"] == 4  # the original line is untouched

    # The original cannot be corrected twice; the reversal cannot be corrected at all.
    r = await client.post(f"/api/training/records/{record_id}/reversal", json={"reason": "再次冲销"})
    assert r.status_code == 409 and "不能重复更正" in r.json()["detail"]
    r = await client.post(f"/api/training/records/{reversal['id']}/reversal", json={"reason": "x"})
    assert r.status_code == 409 and "冲销记录本身不能再更正" in r.json()["detail"]
    r = await client.post(
        f"/api/training/records/{amendment['id']}/amendment", json={"reason": "x", "hours": 3}
    )
    assert r.status_code == 400 and "与原记录相同" in r.json()["detail"]
    r = await client.post(f"/api/training/records/{amendment['id']}/reversal", json={"reason": ""})
    assert r.status_code == 400

    # Reverse the amendment: the year's total goes back to nothing.
    r = await client.post(f"/api/training/records/{amendment['id']}/reversal", json={"reason": "未实际参训"})
    assert r.status_code == 201 and r.json()["reversal"]["hours"] == -3
    second_reversal_id = r.json()["reversal"]["id"]
    year = (await client.get(f"/api/training/officers/{world.officer_a.id}", params={"year": YEAR})).json()
    assert year["total"] == 0 and len(year["records"]) == 4
    # ... and the same officer, course and day can be recorded again (a new generation).
    r = await client.post(
        f"/api/training/courses/{course['id']}/attendance", json={"id_numbers": [world.officer_a.id_number]}
    )
    assert r.status_code == 201, r.text
    year = (await client.get(f"/api/training/officers/{world.officer_a.id}", params={"year": YEAR})).json()
    assert year["total"] == 4

    actions = (
        await db.scalars(select(AuditEvent.action).where(AuditEvent.action.startswith("training.record")))
    ).all()
    assert sorted(actions) == sorted(
        [
            "training.record.create",
            "training.record.amend",
            "training.record.reverse",
            "training.record.create",
        ]
    )
    # Each correction is audited on the record it corrects, in the officer's agency, with its lines.
    events = {
        e.action: e
        for e in await db.scalars(
            select(AuditEvent).where(
                AuditEvent.action.in_(["training.record.amend", "training.record.reverse"])
            )
        )
    }
    amended, reversed_ = events["training.record.amend"], events["training.record.reverse"]
    assert (amended.entity_type, amended.entity_id) == ("training_record", str(record_id))
    assert (reversed_.entity_type, reversed_.entity_id) == ("training_record", str(amendment["id"]))
    assert amended.agency_id == reversed_.agency_id == world.officer_a.agency_id
    assert json.loads(amended.data) == {
        "reversal_id": reversal["id"],
        "amendment_id": amendment["id"],
        "officer_id": world.officer_a.id,
        "before": {"attended_on": f"{YEAR}-03-11", "hours": "4"},
        "after": {"attended_on": f"{YEAR}-03-10", "hours": "3"},
        "reason": "签到表记录有误",
    }
    assert json.loads(reversed_.data) == {
        "reversal_id": second_reversal_id,
        "officer_id": world.officer_a.id,
        "hours": "3",
        "reason": "未实际参训",
    }
    assert (await audit_verify(db)).ok
    await assert_totals_match_ledger(db)


async def test_correction_pages(client: Client, world: World) -> None:
    await client.login("admin_a")
    html = {"accept": "text/html"}
    page = await client.get(f"/training/records/{world.record_a.id}", headers=html)
    assert page.status_code == 200 and "冲销或更正" in page.text
    r = await client.form(f"/training/records/{world.record_a.id}/reverse", {"reason": ""})
    assert r.status_code == 400
    r = await client.form(
        f"/training/records/{world.record_a.id}/amend",
        {"reason": "学时有误", "hours": "9", "attended_on": ""},
    )
    assert r.status_code == 400 and "超过课程学时" in r.text
    r = await client.form(
        f"/training/records/{world.record_a.id}/amend",
        {"reason": "学时有误", "hours": "1.5", "attended_on": ""},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    amended = await client.get(r.headers["location"], headers=html)
    assert "已更正" in amended.text and "学时有误" in amended.text
    r = await client.form(f"/training/records/{world.record_a.id}/reverse", {"reason": "重复"})
    assert r.status_code == 409 and "不能重复更正" in r.text


async def test_the_database_refuses_a_second_reversal_and_malformed_lines(
    world: World, db: AsyncSession
) -> None:
    r = world.record_a
    # Plain values: the session's objects expire at every rollback below.
    original = {
        "officer_id": r.officer_id,
        "course_id": r.course_id,
        "year": r.year,
        "category": r.category,
        "attended_on": r.attended_on,
        "hours_tenths": -r.hours_tenths,
        "corrects_id": r.id,
    }
    officer_a, dept_a = world.officer_a, world.dept_a

    def reversal(**kw: object) -> TrainingRecord:
        fields: dict[str, object] = {
            **original,
            "kind": "reversal",
            "reason": "测试",
            "generation": -1,
            "entered_by_name": "test",
            **kw,
        }
        return TrainingRecord(**fields)

    db.add(reversal())
    await db.commit()
    db.add(reversal(generation=-7))  # even with another generation: one reversal per record
    with pytest.raises(IntegrityError):
        await db.commit()
    await db.rollback()
    for bad in (
        reversal(kind="record", corrects_id=None, generation=0),  # a record with negative hours
        reversal(reason=""),  # a correction without a reason
        reversal(hours_tenths=20),  # a positive reversal
    ):
        db.add(bad)
        with pytest.raises(IntegrityError):
            await db.commit()
        await db.rollback()
    # Two live records for one (course, officer, day): the unique generation refuses the twin.
    await db.refresh(dept_a)
    await db.refresh(officer_a)
    twin = await add_course(db, dept_a, "twin", starts_on=day(6, 1))
    await add_record(db, officer_a, twin, attended_on=day(6, 1), hours_tenths=20)
    await db.commit()
    with pytest.raises(IntegrityError):
        await add_record(db, officer_a, twin, attended_on=day(6, 1), hours_tenths=20)
    await db.rollback()


# ---------------------------------------------------------------- what an officer sees


async def test_an_officer_sees_their_own_year_and_nothing_else(client: Client, world: World) -> None:
    await client.login("officer_a")
    mine = (await client.get("/api/my/training", params={"year": 2020})).json()
    assert mine["officer_name"] == "李明" and mine["total"] == 2 and mine["required"] == 40
    assert mine["needed"] == 38 and mine["status"] == "short" and mine["percent"] == 5
    assert [r["id"] for r in mine["records"]] == [world.record_a.id]
    assert [c["label"] for c in mine["categories"]] == ["公共法律知识", "专门法律知识", "新法律法规"]
    assert (await client.get(f"/api/training/records/{world.record_a.id}")).status_code == 200
    assert (await client.get(f"/api/training/records/{world.record_b.id}")).status_code == 404
    assert (await client.get(f"/api/training/officers/{world.officer_a.id}")).status_code == 403
    r = await client.post(f"/api/training/records/{world.record_a.id}/reversal", json={"reason": "x"})
    assert r.status_code == 403

    page = await client.get("/my/training?year=2020", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert re.search(r"<progress[^>]*value=\"5\"", page.text)
    assert (
        "已修 <strong>2</strong> / 应修 40 学时" in page.text and "还差 <strong>38</strong> 学时" in page.text
    )
    assert "甲市2020年行政处罚法培训" in page.text and "我的学时" in page.text
    home = await client.get("/", headers={"accept": "text/html"})
    assert 'href="/my/training"' in home.text


async def test_amending_into_a_duplicate_is_refused(client: Client, world: World, db: AsyncSession) -> None:
    course = await add_course(
        db, world.dept_a, "两天培训", starts_on=day(9, 1), ends_on=day(9, 2), hours_tenths=40
    )
    first = await add_record(db, world.officer_a, course, attended_on=day(9, 1), hours_tenths=20)
    await add_record(db, world.officer_a, course, attended_on=day(9, 2), hours_tenths=20)
    await db.commit()
    await client.login("admin_a")
    r = await client.post(
        f"/api/training/records/{first.id}/amendment",
        json={"reason": "日期有误", "attended_on": f"{YEAR}-09-02"},
    )
    assert r.status_code == 409 and "重复" in r.json()["detail"]
    assert await count(db, TrainingRecord, TrainingRecord.course_id == course.id) == 2
    assert await count(db, TrainingCourse) == 3
