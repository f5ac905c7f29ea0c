"""Editing a course's details: audited, scoped, stale forms refused, the ledger never rewritten."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.audit.services import audit_verify
from app.training.models import TrainingCourse, TrainingRecord
from tests.factories import World, add_course
from tests.integration.conftest import Client
from tests.integration.training.conftest import YEAR, api_course, assert_totals_match_ledger, day

HTML = {"accept": "text/html"}


def edit_body(course: dict[str, Any], **changes: Any) -> dict[str, Any]:
    keys = (
        "version",
        "title",
        "category",
        "hours",
        "starts_on",
        "ends_on",
        "provider",
        "verification",
        "note",
    )
    return {**{k: course[k] for k in keys}, **changes}


async def test_details_are_edited_and_audited_hours_and_category_only_before_attendance(
    client: Client, world: World, db: AsyncSession
) -> None:
    await client.login("admin_a")
    course = await api_course(client, agency_id=world.dept_a.id)
    cid = course["id"]
    assert course["can_edit"] is True and course["attendance_lines"] == 0 and course["version"]

    # No one attended yet: everything may change, hours and category included.
    r = await client.put(
        f"/api/training/courses/{cid}",
        json=edit_body(
            course, title="行政处罚法 专题培训（第一期）", hours="6", category="special_law", note="更正"
        ),
    )
    assert r.status_code == 200, r.text
    edited = r.json()
    assert (edited["title"], edited["hours"], edited["category"], edited["note"]) == (
        "行政处罚法 专题培训（第一期）",
        6,
        "special_law",
        "更正",
    )
    assert edited["version"] != course["version"]
    event = (await db.scalars(select(AuditEvent).where(AuditEvent.action == "training.course.update"))).one()
    assert event.actor_id == world.admin_a.id and event.entity_id == str(cid)
    changes = json.loads(event.data)["changes"]
    assert changes["hours"] == ["4", "6"] and changes["category"] == ["general_law", "special_law"]
    await db.commit()

    # The form loaded before that edit is stale: refused, nothing changed.
    r = await client.put(f"/api/training/courses/{cid}", json=edit_body(course, provider="别的机构"))
    assert r.status_code == 409 and "已被他人修改" in r.json()["detail"]

    # Attendance recorded: hours and category are fixed, the ledger line keeps what it was entered with.
    r = await client.post(
        f"/api/training/courses/{cid}/attendance",
        json={"id_numbers": [world.officer_a.id_number], "attended_on": f"{YEAR}-03-11"},
    )
    assert r.status_code == 201, r.text
    edited = (await client.get(f"/api/training/courses/{cid}")).json()
    assert edited["attendance_lines"] == 1
    r = await client.put(
        f"/api/training/courses/{cid}", json=edit_body(edited, hours="8", category="new_law")
    )
    assert r.status_code == 400, r.text
    errors = {e["field"]: e["message"] for e in r.json()["errors"]}
    assert errors["hours"].startswith("该课程已有 1 条学时记录，不能修改学时（现为 6）")
    assert errors["category"].startswith("该课程已有 1 条学时记录，不能修改培训类别（现为 专门法律知识）")
    assert "不会改写" in errors["hours"]
    # The dates must still cover the attendance (2025-03-11).
    r = await client.put(
        f"/api/training/courses/{cid}",
        json=edit_body(edited, starts_on=f"{YEAR}-03-12", ends_on=f"{YEAR}-03-13"),
    )
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "starts_on"
    assert "培训日期为 2025-03-11" in r.json()["errors"][0]["message"]
    # Title, provider, dates that still cover it, verification and note do change.
    r = await client.put(
        f"/api/training/courses/{cid}",
        json=edit_body(
            edited,
            title="行政处罚法专题培训",
            provider="省司法厅",
            ends_on=f"{YEAR}-03-12",
            verification="certificate",
        ),
    )
    assert r.status_code == 200, r.text
    assert (r.json()["provider"], r.json()["ends_on"], r.json()["verification"]) == (
        "省司法厅",
        f"{YEAR}-03-12",
        "certificate",
    )
    line = (await db.scalars(select(TrainingRecord).where(TrainingRecord.course_id == cid))).one()
    assert (line.hours_tenths, line.category, line.attended_on) == (60, "special_law", day(3, 11))
    assert (
        len((await db.scalars(select(AuditEvent).where(AuditEvent.action == "training.course.update"))).all())
        == 2
    )
    assert (await audit_verify(db)).ok
    await db.commit()
    await assert_totals_match_ledger(db)


async def test_who_may_edit_and_clashes(client: Client, world: World, db: AsyncSession) -> None:
    province_course = await add_course(db, world.province, "全省新法律法规网络培训", starts_on=day(5, 1))
    other = await add_course(db, world.city_a, "宪法学习", starts_on=day(4, 1))
    mine = await add_course(db, world.city_a, "民法典学习", starts_on=day(4, 1))
    pid, oid, mid = province_course.id, other.id, mine.id
    await db.commit()
    await client.login("admin_a")
    above = (await client.get(f"/api/training/courses/{pid}")).json()
    assert above["can_edit"] is False  # visible from below, edited only by the province
    r = await client.put(f"/api/training/courses/{pid}", json=edit_body(above, note="改"))
    assert r.status_code == 403
    assert (await client.get(f"/training/courses/{pid}/edit", headers=HTML)).status_code == 403
    current = (await client.get(f"/api/training/courses/{mid}")).json()
    r = await client.put(f"/api/training/courses/{mid}", json=edit_body(current, title="宪法学习"))
    assert r.status_code == 409 and f"课程编号 {oid}" in r.json()["detail"]
    await client.login("admin_b")
    r = await client.put(f"/api/training/courses/{mid}", json=edit_body(current, note="改"))
    assert r.status_code == 404
    await client.login("sfj_admin")
    r = await client.put(f"/api/training/courses/{mid}", json=edit_body(current, note="省里补充"))
    assert r.status_code == 200 and r.json()["note"] == "省里补充"
    assert (await db.get(TrainingCourse, mid)) is not None


async def test_course_edit_page(client: Client, world: World, db: AsyncSession) -> None:
    await client.login("admin_a")
    course = await api_course(client)
    cid = course["id"]
    detail = await client.get(f"/training/courses/{cid}", headers=HTML)
    assert f'href="/training/courses/{cid}/edit"' in detail.text
    page = await client.get(f"/training/courses/{cid}/edit", headers=HTML)
    assert page.status_code == 200 and "修改课程信息" in page.text and 'name="hours"' in page.text
    version = re.search(r'name="version" value="([0-9a-f]+)"', page.text)
    assert version and version.group(1) == course["version"]
    form = {
        "version": version.group(1),
        "title": "行政处罚法专题培训（修订）",
        "category": "general_law",
        "hours": "4",
        "starts_on": f"{YEAR}-03-10",
        "ends_on": f"{YEAR}-03-01",
        "verification": "sign_in_sheet",
        "provider": "市司法局",
        "note": "",
    }
    bad = await client.form(f"/training/courses/{cid}/edit", form)
    assert bad.status_code == 400 and "结束日期不能早于开始日期" in bad.text
    r = await client.form(f"/training/courses/{cid}/edit", {**form, "ends_on": ""}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/training/courses/{cid}?msg=updated"
    done = await client.get(r.headers["location"], headers=HTML)
    assert "课程信息已修改" in done.text and "行政处罚法专题培训（修订）" in done.text
    # The same form again is stale: the page shows the course as it is now, with the reason.
    stale = await client.form(f"/training/courses/{cid}/edit", {**form, "ends_on": "", "note": "再改"})
    assert stale.status_code == 409 and "已被他人修改" in stale.text and "再改" not in stale.text
    # Once someone attended, hours and category are shown, not editable.
    r = await client.post(
        f"/api/training/courses/{cid}/attendance", json={"id_numbers": [world.officer_a.id_number]}
    )
    assert r.status_code == 201, r.text
    page = await client.get(f"/training/courses/{cid}/edit", headers=HTML)
    assert "已有 1 条学时记录" in page.text and '<input type="hidden" name="hours" value="4">' in page.text
