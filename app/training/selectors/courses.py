"""Reading courses: one in scope, the list, a course with its attendance, the edit form's fingerprint."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency, Officer
from app.lib.errors import NotFound
from app.lib.paging import count_rows, page_of, page_offset
from app.lib.security import Principal
from app.lib.structs import project
from app.training import rules
from app.training.access import course_visible
from app.training.models import TrainingCourse, TrainingRecord
from app.training.rules import TrainingCategory, Verification
from app.training.schemas import CourseDetail, CourseOut
from app.training.selectors.records import record_lines, reversed_clause


def course_version(c: TrainingCourse) -> str:
    """A fingerprint of the editable details: what an edit form was loaded with."""
    details = [
        c.title,
        c.category,
        c.hours_tenths,
        c.starts_on,
        c.ends_on,
        c.provider,
        c.verification,
        c.note,
    ]
    return hashlib.sha256(json.dumps(details, default=str, ensure_ascii=False).encode()).hexdigest()[:16]


def course_editable(principal: Principal, agency_path: str) -> bool:
    """Details of a course are edited by the administrators of its agency and of the agencies above."""
    return principal.is_admin and agency_path.startswith(principal.agency_path)


def course_out(
    c: TrainingCourse, agency_name: str, *, can_edit: bool = False, attendance_lines: int = 0
) -> CourseOut:
    return project(
        CourseOut,
        c,
        agency_name=agency_name,
        category_label=TrainingCategory(c.category).label,
        hours=rules.hours_value(c.hours_tenths),
        verification_label=Verification(c.verification).label,
        editable=True,
        can_edit=can_edit,
        version=course_version(c),
        attendance_lines=attendance_lines,
    )


async def course_get(db: AsyncSession, principal: Principal, course_id: int) -> tuple[TrainingCourse, Agency]:
    row = (
        await db.execute(
            select(TrainingCourse, Agency)
            .join(Agency, Agency.id == TrainingCourse.agency_id)
            .where(TrainingCourse.id == course_id, course_visible(principal))
        )
    ).one_or_none()
    if row is None or not principal.is_admin:
        raise NotFound("培训课程不存在或不在您的管理范围内", field="course_id")
    return row[0], row[1]


async def course_attendance(db: AsyncSession, course_id: int) -> tuple[int, dt.date | None, dt.date | None]:
    """(ledger lines of every agency, first and last date of the lines that count) of a course."""
    r = TrainingRecord
    lines = int(await db.scalar(select(func.count()).select_from(r).where(r.course_id == course_id)) or 0)
    if not lines:
        return 0, None, None
    first, last = (
        await db.execute(
            select(func.min(r.attended_on), func.max(r.attended_on)).where(
                r.course_id == course_id, r.hours_tenths > 0
            )
        )
    ).one()
    return lines, first, last


@dataclass(frozen=True)
class CourseFilter:
    year: int | None = None
    q: str = ""
    category: TrainingCategory | None = None


async def course_list(
    db: AsyncSession, principal: Principal, f: CourseFilter, *, page: int = 1, per_page: int = 50
) -> tuple[list[CourseOut], int]:
    stmt = (
        select(TrainingCourse, Agency.name, Agency.path)
        .join(Agency, Agency.id == TrainingCourse.agency_id)
        .where(course_visible(principal))
    )
    if f.year is not None:
        stmt = stmt.where(TrainingCourse.year == f.year)
    if f.q.strip():
        stmt = stmt.where(TrainingCourse.title.contains(f.q.strip(), autoescape=True))
    if f.category is not None:
        stmt = stmt.where(TrainingCourse.category == f.category.value)
    total = await count_rows(db, stmt)
    rows = (
        await db.execute(
            page_of(
                stmt.order_by(TrainingCourse.starts_on.desc(), TrainingCourse.id.desc()),
                page=page,
                per_page=per_page,
            )
        )
    ).all()
    return [course_out(c, name, can_edit=course_editable(principal, path)) for c, name, path in rows], total


async def course_detail(
    db: AsyncSession, principal: Principal, course_id: int, *, page: int = 1, per_page: int = 100
) -> CourseDetail:
    course, agency = await course_get(db, principal, course_id)
    scope = and_(TrainingRecord.course_id == course.id, Agency.path.startswith(principal.agency_path))
    total = int(
        await db.scalar(
            select(func.count())
            .select_from(TrainingRecord)
            .join(Officer, Officer.id == TrainingRecord.officer_id)
            .join(Agency, Agency.id == Officer.agency_id)
            .where(scope)
        )
        or 0
    )
    attendees = int(
        await db.scalar(
            select(func.count(func.distinct(TrainingRecord.officer_id)))
            .join(Officer, Officer.id == TrainingRecord.officer_id)
            .join(Agency, Agency.id == Officer.agency_id)
            .where(scope, TrainingRecord.hours_tenths > 0, ~reversed_clause(TrainingRecord.id))
        )
        or 0
    )
    records = await record_lines(
        db, scope, order=(TrainingRecord.id.desc(),), limit=per_page, offset=page_offset(page, per_page)
    )
    lines, _first, _last = await course_attendance(db, course.id)
    base = course_out(
        course, agency.name, can_edit=course_editable(principal, agency.path), attendance_lines=lines
    )
    return project(
        CourseDetail,
        base,
        records=records,
        records_total=total,
        attendees=attendees,
        page=page,
        per_page=per_page,
    )


__all__ = [
    "CourseFilter",
    "course_attendance",
    "course_detail",
    "course_editable",
    "course_get",
    "course_list",
    "course_out",
    "course_version",
]
