"""Exam sessions (考试场次) and enrolment (报名)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency, Officer
from app.accounts.selectors import agency_get, agency_policies
from app.audit.services import audit_change
from app.exams.models import ExamEnrolment, ExamSession
from app.exams.schemas import EnrolIn, EnrolResult, ExamOut, Position, SessionIn, SessionOut
from app.exams.services.common import (
    authority_required,
    exam_row,
    parts_of,
    session_counted,
    session_row,
    session_state,
)
from app.exams.services.exams import exam_detail
from app.lib.clock import utcnow
from app.lib.enums import EmploymentStatus, StaffType
from app.lib.errors import Conflict, DomainError, FieldError
from app.lib.security import Principal


async def session_create(
    db: AsyncSession, *, principal: Principal, exam_id: int, data: SessionIn
) -> ExamSession:
    """开设考试场次: a time window, the review policy, whether leaving the page submits."""
    authority_required(principal, "开设考试场次")
    exam, _agency = await exam_row(db, principal, exam_id)
    errors: list[FieldError] = []
    for name in ("opens_at", "closes_at"):
        if getattr(data, name).tzinfo is None:
            errors.append(FieldError(name, "时间须带时区（例如 2026-09-01T09:00:00+08:00）"))
    if errors:
        raise DomainError(errors[0].message, errors=errors)
    if data.closes_at <= data.opens_at:
        raise DomainError("结束时间须晚于开始时间", field="closes_at")
    parts = await parts_of(db, exam.id)
    longest = max(p.duration_minutes for p in parts)
    if data.closes_at - data.opens_at < dt.timedelta(minutes=longest):
        raise DomainError(f"考试时段短于最长的考试部分（{longest} 分钟）", field="closes_at")
    title = " ".join(data.title.split())
    s = ExamSession(
        exam_id=exam.id,
        agency_id=principal.agency_id if principal.agency_id else exam.agency_id,
        title=title,
        opens_at=data.opens_at,
        closes_at=data.closes_at,
        review_policy=data.review_policy.value,
        submit_on_leave=data.submit_on_leave,
        created_by_name=principal.username,
    )
    db.add(s)
    await db.flush()
    await audit_change(
        db,
        principal,
        "exam.session.create",
        s,
        {
            "exam_id": exam.id,
            "title": title,
            "opens_at": data.opens_at.isoformat(),
            "closes_at": data.closes_at.isoformat(),
            "review_policy": s.review_policy,
            "submit_on_leave": s.submit_on_leave,
        },
    )
    return s


async def session_detail(
    db: AsyncSession, principal: Principal, session_id: int
) -> tuple[SessionOut, ExamOut]:
    s, exam = await session_row(db, principal, session_id)
    return await session_counted(db, s, exam.title), await exam_detail(db, principal, exam.id)


async def session_enrol(
    db: AsyncSession, *, principal: Principal, session_id: int, data: EnrolIn
) -> EnrolResult:
    """报名: officers of the principal's subtree, by id, ID number, or a whole agency's tree."""
    authority_required(principal, "安排考生")
    s, _exam = await session_row(db, principal, session_id)
    if session_state(s, utcnow()) == "closed":
        raise Conflict("考试场次已结束，不能再安排考生")
    errors: list[Position] = []
    wanted: dict[int, int | None] = {}
    skipped = 0
    scope = Agency.path.startswith(principal.agency_path)
    if data.officer_ids:
        found = set(
            (
                await db.scalars(
                    select(Officer.id)
                    .join(Agency, Agency.id == Officer.agency_id)
                    .where(Officer.id.in_(data.officer_ids), scope)
                )
            ).all()
        )
        for i, oid in enumerate(data.officer_ids, start=1):
            if oid in found:
                wanted[oid] = None
            else:
                errors.append(
                    Position(
                        position=f"第 {i} 个人员编号", message=f"执法人员 {oid} 不存在或不在您的管理范围内"
                    )
                )
    numbers = [n.strip().upper() for n in data.id_numbers if n.strip()]
    if numbers:
        rows = dict(
            (
                await db.execute(
                    select(Officer.id_number, Officer.id)
                    .join(Agency, Agency.id == Officer.agency_id)
                    .where(Officer.id_number.in_(numbers), scope)
                )
            ).all()
        )
        for i, n in enumerate(numbers, start=1):
            if n in rows:
                wanted[rows[n]] = None
            else:
                errors.append(
                    Position(position=f"第 {i} 行", message=f"身份证号码 {n} 不存在或不在您的管理范围内")
                )
    if errors:
        raise DomainError(errors[0].message, errors=[FieldError(e.position, e.message) for e in errors])
    if data.agency_id is not None:
        agency = await agency_get(db, principal, data.agency_id)
        policies = await agency_policies(db, {agency.id: agency.path})
        policy = policies[agency.id]
        rows2 = await db.execute(
            select(Officer.id, Officer.staff_type, Officer.employment_status)
            .join(Agency, Agency.id == Officer.agency_id)
            .where(Agency.path.startswith(agency.path))
        )
        for oid, staff_type, status in rows2:
            if status != EmploymentStatus.ACTIVE or not policy.staff_type_allowed(StaffType(staff_type)):
                skipped += 1
                continue
            wanted.setdefault(oid, agency.id)
    already = set(
        (await db.scalars(select(ExamEnrolment.officer_id).where(ExamEnrolment.session_id == s.id))).all()
    )
    new = [oid for oid in wanted if oid not in already]
    db.add_all(
        ExamEnrolment(
            session_id=s.id, officer_id=oid, via_agency_id=wanted[oid], created_by_name=principal.username
        )
        for oid in new
    )
    await db.flush()
    if new:
        await audit_change(
            db,
            principal,
            "exam.session.enrol",
            s,
            {"added": len(new), "agency_id": data.agency_id, "officer_ids": new[:200]},
        )
    return EnrolResult(added=len(new), already=len(wanted) - len(new), skipped=skipped)
