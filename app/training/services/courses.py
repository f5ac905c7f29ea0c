"""登记与修改培训课程: a course's details, checked, written and audited in the caller's transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.selectors import agency_get
from app.audit.services import audit_change
from app.lib.clock import today
from app.lib.errors import Conflict, DomainError, FieldError, Forbidden, StaleForm
from app.lib.security import Principal
from app.training import rules
from app.training.access import entered_by, require_admin
from app.training.models import TrainingCourse
from app.training.rules import TrainingCategory
from app.training.schemas import CourseDetails, CourseIn, CourseUpdate
from app.training.selectors.courses import course_attendance, course_editable, course_get, course_version


async def course_create(db: AsyncSession, *, principal: Principal, data: CourseIn) -> TrainingCourse:
    """登记培训课程: title, category, hours, dates, provider, how attendance is verified."""
    require_admin(principal, "登记培训课程")
    agency = await agency_get(db, principal, data.agency_id or principal.agency_id)
    details = _course_details(data)
    await _course_clash(db, agency.id, details["title"], data.starts_on)
    by_id, by_name = entered_by(principal)
    course = TrainingCourse(
        agency_id=agency.id,
        year=data.starts_on.year,
        created_by_id=by_id,
        created_by_name=by_name,
        **details,
    )
    db.add(course)
    await db.flush()
    await audit_change(
        db,
        principal,
        "training.course.create",
        course,
        agency_id=agency.id,
        data={_audit_key(k): _shown(k, details[k]) for k in _AUDITED_ON_CREATE},
    )
    return course


_AUDITED_ON_CREATE = ("title", "category", "hours_tenths", "starts_on", "ends_on", "verification")


def _audit_key(column: str) -> str:
    return "hours" if column == "hours_tenths" else column


def _shown(column: str, value: Any) -> Any:
    """A course's column as the audit trail records it: hours as text, dates in ISO form."""
    if column == "hours_tenths":
        return rules.format_hours(value)
    return value.isoformat() if isinstance(value, dt.date) else value


def _course_details(data: CourseDetails) -> dict[str, Any]:
    """A course's own columns from what was sent, checked and tidied, or every error."""
    errors: list[FieldError] = []
    title = " ".join(data.title.split())
    if not title:
        errors.append(FieldError("title", "课程名称不能为空"))
    try:
        tenths = rules.parse_hours(str(data.hours))
    except ValueError as exc:
        errors.append(FieldError("hours", str(exc)))
        tenths = 0
    ends_on = data.ends_on or data.starts_on
    if ends_on < data.starts_on:
        errors.append(FieldError("ends_on", "结束日期不能早于开始日期"))
    elif ends_on.year != data.starts_on.year:
        errors.append(FieldError("ends_on", "课程起止日期须在同一年度内（跨年度的培训请按年度分别登记）"))
    if data.starts_on.year > today().year + 1 or data.starts_on.year < 2000:
        errors.append(FieldError("starts_on", "开始日期的年份不合理"))
    if errors:
        raise DomainError(errors[0].message, errors=errors)
    return {
        "title": title,
        "category": data.category.value,
        "hours_tenths": tenths,
        "starts_on": data.starts_on,
        "ends_on": ends_on,
        "provider": data.provider.strip(),
        "verification": data.verification.value,
        "note": data.note.strip(),
    }


async def _course_clash(
    db: AsyncSession, agency_id: int, title: str, starts_on: dt.date, *, other_than: int | None = None
) -> None:
    stmt = select(TrainingCourse.id).where(
        TrainingCourse.agency_id == agency_id,
        TrainingCourse.title == title,
        TrainingCourse.starts_on == starts_on,
    )
    if other_than is not None:
        stmt = stmt.where(TrainingCourse.id != other_than)
    clash = await db.scalar(stmt)
    if clash:
        raise Conflict(f"本单位已登记同名、同开始日期的课程（课程编号 {clash}）", field="title")


async def course_update(
    db: AsyncSession, *, principal: Principal, course_id: int, data: CourseUpdate
) -> TrainingCourse:
    """修改课程信息: title, provider, dates, verification, note; hours and category while no one attended.

    Attendance already entered is never rewritten: once the course has ledger lines its hours and
    category are refused (the lines keep what they were recorded with; a wrong figure is corrected
    line by line, or by a new course), and its dates must still cover every line's date. Audited
    with the old and new value of each field changed; a stale form (another edit in between) is refused.
    """
    require_admin(principal, "修改培训课程")
    course, agency = await course_get(db, principal, course_id)
    if not course_editable(principal, agency.path):
        raise Forbidden("只能修改本单位及下级单位组织的课程；上级单位组织的课程请联系组织单位修改")
    if data.version != course_version(course):
        raise StaleForm("该课程已被他人修改，请刷新页面后重新编辑", field="version")
    new = _course_details(data)
    changed = {k: v for k, v in new.items() if getattr(course, k) != v}
    if not changed:
        return course
    lines, first, last = await course_attendance(db, course.id)
    if lines:
        _refuse_fixed_fields(
            course, changed, lines, first, last, starts_on=data.starts_on, ends_on=new["ends_on"]
        )
    if "title" in changed or "starts_on" in changed:
        await _course_clash(db, course.agency_id, new["title"], data.starts_on, other_than=course.id)
    before = {k: getattr(course, k) for k in changed}
    for k, v in changed.items():
        setattr(course, k, v)
    course.year = course.starts_on.year
    try:
        await db.flush()
    except IntegrityError as exc:
        # A concurrent edit or creation took the same (agency, title, start): the caller's edge rolls back.
        raise Conflict("保存时课程信息冲突，请刷新后重试", field="title") from exc

    await audit_change(
        db,
        principal,
        "training.course.update",
        course,
        agency_id=course.agency_id,
        data={
            "changes": {_audit_key(k): [_shown(k, before[k]), _shown(k, v)] for k, v in changed.items()},
            "attendance_lines": lines,
        },
    )
    return course


def _refuse_fixed_fields(
    course: TrainingCourse,
    changed: dict[str, Any],
    lines: int,
    first: dt.date | None,
    last: dt.date | None,
    *,
    starts_on: dt.date,
    ends_on: dt.date,
) -> None:
    """A course with ledger lines keeps its hours and category, and its dates must cover the lines'."""
    errors: list[FieldError] = []
    fixed = "：已登记的学时记录按原课程的学时和类别记入台账，修改课程不会改写它们。如有误，请对相关学时记录逐条更正或冲销，或另行登记正确的课程"
    if "hours_tenths" in changed:
        errors.append(
            FieldError(
                "hours",
                f"该课程已有 {lines} 条学时记录，不能修改学时（现为 {rules.format_hours(course.hours_tenths)}）{fixed}",
            )
        )
    if "category" in changed:
        errors.append(
            FieldError(
                "category",
                f"该课程已有 {lines} 条学时记录，不能修改培训类别（现为 {TrainingCategory(course.category).label}）{fixed}",
            )
        )
    if first is not None and last is not None and not (starts_on <= first and last <= ends_on):
        span = first.isoformat() if first == last else f"{first.isoformat()} 至 {last.isoformat()}"
        key = "starts_on" if starts_on > first else "ends_on"
        errors.append(FieldError(key, f"已登记的学时记录的培训日期为 {span}，课程起止日期须包含这些日期"))
    if errors:
        raise DomainError(errors[0].message, errors=errors)


__all__ = ["course_create", "course_update"]
