"""Use cases of the training domain. One transaction each: load, apply rules, write, audit.

Scope: an administrator sees the officers of their agency subtree and their ledger lines; an
officer sees only their own. Courses are visible down the tree and up it: an agency records its
officers' attendance at its own courses, its subtree's and those organised above it (a province's
course for every city), never at a sibling's. Anything out of scope is reported as not found.

The yearly compliance of a whole agency tree is one set-based query over the covering index
``ix_training_records_compliance`` (year, officer, category, hours); the per-officer standing is
then applied in memory by ``rules``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.accounts.models import Agency, Officer, PostingHistory
from app.accounts.rules import path_ids
from app.accounts.services import agency_get, agency_policies, agency_policy, officer_get
from app.lib.audit import SYSTEM, audit_record
from app.lib.clock import today, utcnow
from app.lib.enums import EmploymentStatus
from app.lib.errors import Conflict, DomainError, FieldError, Forbidden, NotFound, StaleForm
from app.lib.exports import spreadsheet_safe
from app.lib.policy import DEFAULT_POLICY, Policy
from app.lib.security import Principal, actor_of, system_principal
from app.training import rules
from app.training.models import TrainingCourse, TrainingImportBatch, TrainingRecord, TrainingYearTotal
from app.training.rules import (
    CATEGORIES,
    RecordKind,
    Requirement,
    TrainingCategory,
    TrainingRule,
    Verification,
)
from app.training.schemas import (
    AmendmentIn,
    BatchOut,
    CategoryFigure,
    ComplianceRow,
    ComplianceSummary,
    CorrectionOut,
    CourseDetail,
    CourseIn,
    CourseOut,
    CourseUpdate,
    ImportRowError,
    OfficerYear,
    RecordOut,
    ReversalIn,
)

# ---------------------------------------------------------------- who and where


def entered_by(principal: Principal) -> tuple[int | None, str]:
    """(account id, name) stamped on every ledger line and course: who made it."""
    if principal.account_id == 0:
        return None, SYSTEM.name
    return principal.account_id, principal.username


def course_visible(principal: Principal) -> ColumnElement[bool]:
    """Courses of the principal's subtree and of the agencies above it (``Agency`` joined)."""
    return or_(
        Agency.path.startswith(principal.agency_path),
        Agency.id.in_(path_ids(principal.agency_path) or [-1]),
    )


def _require_admin(principal: Principal, action: str) -> None:
    if not principal.is_admin:
        raise Forbidden(f"只有管理员可以{action}")


async def policies_by_agency(db: AsyncSession, agencies: list[Agency]) -> dict[int, Policy]:
    """Each agency's policy: that of its nearest issuing authority at or above it (batch form)."""
    return await agency_policies(db, {a.id: a.path for a in agencies})


# ---------------------------------------------------------------- courses


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
    category, verification = TrainingCategory(c.category), Verification(c.verification)
    return CourseOut(
        id=c.id,
        agency_id=c.agency_id,
        agency_name=agency_name,
        year=c.year,
        title=c.title,
        category=category,
        category_label=category.label,
        hours=rules.hours_value(c.hours_tenths),
        starts_on=c.starts_on,
        ends_on=c.ends_on,
        provider=c.provider,
        verification=verification,
        verification_label=verification.label,
        note=c.note,
        created_by_name=c.created_by_name,
        created_at=c.created_at,
        editable=True,
        can_edit=can_edit,
        version=course_version(c),
        attendance_lines=attendance_lines,
    )


def hours_or_error(raw: float | str, field: str) -> int:
    try:
        return rules.parse_hours(str(raw))
    except ValueError as exc:
        raise DomainError(str(exc), field=field) from exc


async def course_create(db: AsyncSession, *, principal: Principal, data: CourseIn) -> TrainingCourse:
    """登记培训课程: title, category, hours, dates, provider, how attendance is verified."""
    _require_admin(principal, "登记培训课程")
    agency = await agency_get(db, principal, data.agency_id or principal.agency_id)
    title, tenths, ends_on = _course_fields(data)
    await _course_clash(db, agency.id, title, data.starts_on)
    by_id, by_name = entered_by(principal)
    course = TrainingCourse(
        agency_id=agency.id,
        year=data.starts_on.year,
        title=title,
        category=data.category.value,
        hours_tenths=tenths,
        starts_on=data.starts_on,
        ends_on=ends_on,
        provider=data.provider.strip(),
        verification=data.verification.value,
        note=data.note.strip(),
        created_by_id=by_id,
        created_by_name=by_name,
    )
    db.add(course)
    await db.flush()
    await audit_record(
        db,
        actor=actor_of(principal),
        action="training.course.create",
        entity_type="training_course",
        entity_id=course.id,
        agency_id=agency.id,
        data={
            "title": course.title,
            "category": course.category,
            "hours": rules.format_hours(course.hours_tenths),
            "starts_on": course.starts_on.isoformat(),
            "ends_on": course.ends_on.isoformat(),
            "verification": course.verification,
        },
    )
    await db.commit()
    return course


def _course_fields(data: CourseIn | CourseUpdate) -> tuple[str, int, dt.date]:
    """The checks of a course's own fields: (title, hours in tenths, end date) or every error."""
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
    return title, tenths, ends_on


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


_COURSE_LABELS = {
    "title": "课程名称",
    "category": "培训类别",
    "hours": "学时",
    "starts_on": "开始日期",
    "ends_on": "结束日期",
    "provider": "培训机构",
    "verification": "参训核验方式",
    "note": "备注",
}


async def course_update(
    db: AsyncSession, *, principal: Principal, course_id: int, data: CourseUpdate
) -> TrainingCourse:
    """修改课程信息: title, provider, dates, verification, note; hours and category while no one attended.

    Attendance already entered is never rewritten: once the course has ledger lines its hours and
    category are refused (the lines keep what they were recorded with; a wrong figure is corrected
    line by line, or by a new course), and its dates must still cover every line's date. Audited
    with the old and new value of each field changed; a stale form (another edit in between) is refused.
    """
    _require_admin(principal, "修改培训课程")
    course, agency = await course_get(db, principal, course_id)
    if not course_editable(principal, agency.path):
        raise Forbidden("只能修改本单位及下级单位组织的课程；上级单位组织的课程请联系组织单位修改")
    if data.version != course_version(course):
        raise StaleForm("该课程已被他人修改，请刷新页面后重新编辑", field="version")
    title, tenths, ends_on = _course_fields(data)
    new = {
        "title": title,
        "category": data.category.value,
        "hours_tenths": tenths,
        "starts_on": data.starts_on,
        "ends_on": ends_on,
        "provider": data.provider.strip(),
        "verification": data.verification.value,
        "note": data.note.strip(),
    }
    changed = {k: v for k, v in new.items() if getattr(course, k) != v}
    if not changed:
        return course
    lines, first, last = await course_attendance(db, course.id)
    if lines:
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
        if first is not None and last is not None and not (data.starts_on <= first and last <= ends_on):
            span = first.isoformat() if first == last else f"{first.isoformat()} 至 {last.isoformat()}"
            key = "starts_on" if data.starts_on > first else "ends_on"
            errors.append(FieldError(key, f"已登记的学时记录的培训日期为 {span}，课程起止日期须包含这些日期"))
        if errors:
            raise DomainError(errors[0].message, errors=errors)
    if "title" in changed or "starts_on" in changed:
        await _course_clash(db, course.agency_id, title, data.starts_on, other_than=course.id)
    before = {k: getattr(course, k) for k in changed}
    for k, v in changed.items():
        setattr(course, k, v)
    course.year = course.starts_on.year

    def shown(key: str, value: Any) -> Any:
        if key == "hours_tenths":
            return rules.format_hours(value)
        return value.isoformat() if isinstance(value, dt.date) else value

    await audit_record(
        db,
        actor=actor_of(principal),
        action="training.course.update",
        entity_type="training_course",
        entity_id=course.id,
        agency_id=course.agency_id,
        data={
            "changes": {
                ("hours" if k == "hours_tenths" else k): [shown(k, before[k]), shown(k, v)]
                for k, v in changed.items()
            },
            "attendance_lines": lines,
        },
    )
    try:
        await db.commit()
    except IntegrityError as exc:
        await db.rollback()
        raise Conflict("保存时课程信息冲突，请刷新后重试", field="title") from exc
    return course


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
    total = int(await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = (
        await db.execute(
            stmt.order_by(TrainingCourse.starts_on.desc(), TrainingCourse.id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
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
    records = await _records(
        db, scope, order=(TrainingRecord.id.desc(),), limit=per_page, offset=(page - 1) * per_page
    )
    lines, _first, _last = await course_attendance(db, course.id)
    base = course_out(
        course, agency.name, can_edit=course_editable(principal, agency.path), attendance_lines=lines
    )
    return CourseDetail(
        **{k: getattr(base, k) for k in base.__struct_fields__},
        records=records,
        records_total=total,
        attendees=attendees,
        page=page,
        per_page=per_page,
    )


# ---------------------------------------------------------------- ledger lines


def reversed_clause(record_id: Any) -> ColumnElement[bool]:
    """EXISTS a reversal of ``record_id`` (a column or a value)."""
    rev = aliased(TrainingRecord)
    return select(rev.id).where(rev.corrects_id == record_id, rev.kind == RecordKind.REVERSAL.value).exists()


async def _records(
    db: AsyncSession,
    where: ColumnElement[bool],
    *,
    order: tuple[Any, ...],
    limit: int | None = None,
    offset: int = 0,
) -> list[RecordOut]:
    rev = aliased(TrainingRecord)
    amend = aliased(TrainingRecord)
    reversed_by = (
        select(rev.id)
        .where(rev.corrects_id == TrainingRecord.id, rev.kind == RecordKind.REVERSAL.value)
        .scalar_subquery()
    )
    amended_by = (
        select(amend.id)
        .where(amend.corrects_id == TrainingRecord.id, amend.kind == RecordKind.AMENDMENT.value)
        .scalar_subquery()
    )
    stmt: Select[Any] = (
        select(
            TrainingRecord,
            Officer.name,
            Agency.name,
            TrainingCourse.title,
            reversed_by.label("reversed_by"),
            amended_by.label("amended_by"),
        )
        .join(Officer, Officer.id == TrainingRecord.officer_id)
        .join(Agency, Agency.id == Officer.agency_id)
        .join(TrainingCourse, TrainingCourse.id == TrainingRecord.course_id)
        .where(where)
        .order_by(*order)
        .offset(offset)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return [
        record_out(r, officer_name, agency_name, title, reversed_by_id, amended_by_id)
        for r, officer_name, agency_name, title, reversed_by_id, amended_by_id in (
            await db.execute(stmt)
        ).all()
    ]


def record_out(
    r: TrainingRecord,
    officer_name: str,
    agency_name: str,
    course_title: str,
    reversed_by_id: int | None = None,
    amended_by_id: int | None = None,
) -> RecordOut:
    category, kind = TrainingCategory(r.category), RecordKind(r.kind)
    return RecordOut(
        id=r.id,
        officer_id=r.officer_id,
        officer_name=officer_name,
        agency_name=agency_name,
        course_id=r.course_id,
        course_title=course_title,
        category=category,
        category_label=category.label,
        year=r.year,
        attended_on=r.attended_on,
        hours=rules.hours_value(r.hours_tenths),
        kind=kind,
        kind_label=kind.label,
        corrects_id=r.corrects_id,
        reason=r.reason,
        batch_id=r.batch_id,
        entered_by_name=r.entered_by_name,
        entered_at=r.entered_at,
        reversed_by_id=reversed_by_id,
        amended_by_id=amended_by_id,
        counts=kind is not RecordKind.REVERSAL and reversed_by_id is None,
    )


async def record_get(db: AsyncSession, principal: Principal, record_id: int) -> TrainingRecord:
    """A ledger line of an officer in the principal's subtree, or of the officer themself."""
    row = (
        await db.execute(
            select(TrainingRecord, Agency.path)
            .join(Officer, Officer.id == TrainingRecord.officer_id)
            .join(Agency, Agency.id == Officer.agency_id)
            .where(TrainingRecord.id == record_id)
        )
    ).one_or_none()
    if row is None:
        raise NotFound("学时记录不存在或不在您的管理范围内", field="record_id")
    record, path = row
    own = principal.officer_id is not None and principal.officer_id == record.officer_id
    if not own and not (principal.is_admin and principal.can_see_agency_path(path)):
        raise NotFound("学时记录不存在或不在您的管理范围内", field="record_id")
    return record


async def record_detail(db: AsyncSession, principal: Principal, record_id: int) -> list[RecordOut]:
    """The line and every line of its correction chain (what it corrects and what corrects it)."""
    record = await record_get(db, principal, record_id)
    ids = {record.id}
    # Walk back to the original and forward through reversals and amendments (chains are short).
    frontier = {record.id}
    if record.corrects_id is not None:
        frontier.add(record.corrects_id)
        ids.add(record.corrects_id)
    while frontier:
        found = set(
            (
                await db.scalars(
                    select(TrainingRecord.id).where(
                        or_(
                            TrainingRecord.corrects_id.in_(frontier),
                            TrainingRecord.id.in_(
                                select(TrainingRecord.corrects_id).where(TrainingRecord.id.in_(frontier))
                            ),
                        )
                    )
                )
            ).all()
        )
        frontier = found - ids
        ids |= found
    return await _records(db, TrainingRecord.id.in_(ids), order=(TrainingRecord.id,))


def _entry(r: TrainingRecord) -> rules.LedgerEntry:
    return rules.LedgerEntry(
        id=r.id,
        kind=RecordKind(r.kind),
        year=r.year,
        category=TrainingCategory(r.category),
        tenths=r.hours_tenths,
        corrects_id=r.corrects_id,
    )


async def _correctable(
    db: AsyncSession, principal: Principal, record_id: int
) -> tuple[TrainingRecord, TrainingCourse, Officer]:
    _require_admin(principal, "更正学时记录")
    record = await record_get(db, principal, record_id)
    already = bool(await db.scalar(select(reversed_clause(record.id))))
    if msg := rules.correction_error(_entry(record), already_reversed=already):
        raise Conflict(msg, field="record_id")
    course = await db.get(TrainingCourse, record.course_id)
    officer = await db.get(Officer, record.officer_id)
    assert course is not None and officer is not None
    return record, course, officer


def _reversal_of(
    record: TrainingRecord, reason: str, principal: Principal, now: dt.datetime
) -> TrainingRecord:
    by_id, by_name = entered_by(principal)
    return TrainingRecord(
        officer_id=record.officer_id,
        course_id=record.course_id,
        year=record.year,
        category=record.category,
        attended_on=record.attended_on,
        hours_tenths=-record.hours_tenths,
        kind=RecordKind.REVERSAL.value,
        corrects_id=record.id,
        reason=reason,
        generation=rules.reversal_generation(record.generation),
        batch_id=None,
        entered_by_id=by_id,
        entered_by_name=by_name,
        entered_at=now,
    )


async def _flush_correction(db: AsyncSession) -> None:
    try:
        await db.flush()
    except IntegrityError as exc:
        await db.rollback()
        raise Conflict(
            "该记录刚刚已被他人冲销或更正，或更正后的记录与已有记录重复，请刷新后查看", field="record_id"
        ) from exc


async def record_reverse(
    db: AsyncSession, *, principal: Principal, record_id: int, data: ReversalIn
) -> TrainingRecord:
    """冲销: a new line with the hours negated, referring to the record and saying why."""
    record, _course, officer = await _correctable(db, principal, record_id)
    reason = data.reason.strip()
    if not reason:
        raise DomainError("请填写冲销原因", field="reason")
    reversal = _reversal_of(record, reason, principal, utcnow())
    db.add(reversal)
    await _flush_correction(db)
    await totals_add(db, [(record.year, record.officer_id, record.category, -record.hours_tenths)])
    await audit_record(
        db,
        actor=actor_of(principal),
        action="training.record.reverse",
        entity_type="training_record",
        entity_id=record.id,
        agency_id=officer.agency_id,
        data={
            "reversal_id": reversal.id,
            "officer_id": record.officer_id,
            "hours": rules.format_hours(record.hours_tenths),
            "reason": reason,
        },
    )
    await db.commit()
    return reversal


async def record_amend(
    db: AsyncSession, *, principal: Principal, record_id: int, data: AmendmentIn
) -> tuple[TrainingRecord, TrainingRecord]:
    """更正: reverse the record and enter the corrected one (date and/or hours), both with the reason."""
    record, course, officer = await _correctable(db, principal, record_id)
    reason = data.reason.strip()
    if not reason:
        raise DomainError("请填写更正原因", field="reason")
    attended_on = data.attended_on or record.attended_on
    tenths = hours_or_error(data.hours, "hours") if data.hours not in (None, "") else record.hours_tenths
    assert tenths is not None
    if msg := date_error(attended_on, course):
        raise DomainError(msg, field="attended_on")
    if tenths > course.hours_tenths:
        raise DomainError(
            f"学时 {rules.format_hours(tenths)} 超过课程学时 {rules.format_hours(course.hours_tenths)}",
            field="hours",
        )
    if attended_on == record.attended_on and tenths == record.hours_tenths:
        raise DomainError("更正后的培训日期和学时与原记录相同；如要取消该记录，请使用“冲销”", field="hours")
    same_key = await _same_key(db, course.id, record.officer_id, attended_on)
    generation = rules.next_generation(
        [(gen, is_reversed or rid == record.id) for rid, gen, is_reversed in same_key]
    )
    if generation is None:
        raise Conflict("该人员此课程在该日期已有学时记录，不能更正为重复的记录", field="attended_on")
    now = utcnow()
    reversal = _reversal_of(record, reason, principal, now)
    by_id, by_name = entered_by(principal)
    amendment = TrainingRecord(
        officer_id=record.officer_id,
        course_id=record.course_id,
        year=attended_on.year,
        category=record.category,
        attended_on=attended_on,
        hours_tenths=tenths,
        kind=RecordKind.AMENDMENT.value,
        corrects_id=record.id,
        reason=reason,
        generation=generation,
        batch_id=None,
        entered_by_id=by_id,
        entered_by_name=by_name,
        entered_at=now,
    )
    db.add_all([reversal, amendment])
    await _flush_correction(db)
    await totals_add(
        db,
        [
            (record.year, record.officer_id, record.category, -record.hours_tenths),
            (amendment.year, amendment.officer_id, amendment.category, amendment.hours_tenths),
        ],
    )
    await audit_record(
        db,
        actor=actor_of(principal),
        action="training.record.amend",
        entity_type="training_record",
        entity_id=record.id,
        agency_id=officer.agency_id,
        data={
            "reversal_id": reversal.id,
            "amendment_id": amendment.id,
            "officer_id": record.officer_id,
            "before": {
                "attended_on": record.attended_on.isoformat(),
                "hours": rules.format_hours(record.hours_tenths),
            },
            "after": {"attended_on": attended_on.isoformat(), "hours": rules.format_hours(tenths)},
            "reason": reason,
        },
    )
    await db.commit()
    return reversal, amendment


async def _same_key(
    db: AsyncSession, course_id: int, officer_id: int, attended_on: dt.date
) -> list[tuple[int, int, bool]]:
    """(id, generation, reversed) of the positive lines for one (course, officer, date)."""
    rows = await db.execute(
        select(TrainingRecord.id, TrainingRecord.generation, reversed_clause(TrainingRecord.id)).where(
            TrainingRecord.course_id == course_id,
            TrainingRecord.officer_id == officer_id,
            TrainingRecord.attended_on == attended_on,
            TrainingRecord.hours_tenths > 0,
        )
    )
    return [(r[0], r[1], bool(r[2])) for r in rows]


def date_error(attended_on: dt.date, course: TrainingCourse, *, year: int | None = None) -> str | None:
    """Why a date cannot be the attendance date at ``course`` (Chinese), or None."""
    if year is not None and attended_on.year != year:
        return f"培训日期 {attended_on.isoformat()} 不在 {year} 年度内"
    if not course.starts_on <= attended_on <= course.ends_on:
        return (
            f"培训日期 {attended_on.isoformat()} 不在课程起止日期"
            f"（{course.starts_on.isoformat()} 至 {course.ends_on.isoformat()}）内"
        )
    if attended_on > today():
        return f"培训日期 {attended_on.isoformat()} 晚于今天，不能登记尚未完成的培训"
    return None


async def correction_out(
    db: AsyncSession, principal: Principal, reversal: TrainingRecord, amendment: TrainingRecord | None
) -> CorrectionOut:
    ids = [reversal.id] + ([amendment.id] if amendment is not None else [])
    lines = {r.id: r for r in await _records(db, TrainingRecord.id.in_(ids), order=(TrainingRecord.id,))}
    return CorrectionOut(
        reversal=lines[reversal.id], amendment=lines[amendment.id] if amendment is not None else None
    )


# ---------------------------------------------------------------- an officer's year


async def joined_on(db: AsyncSession, officer_id: int) -> dt.date | None:
    """When the officer entered service: the start of their first posting."""
    return await db.scalar(
        select(func.min(PostingHistory.started_on)).where(PostingHistory.officer_id == officer_id)
    )


async def officer_year(
    db: AsyncSession, principal: Principal, officer_id: int, year: int, *, as_of: dt.date | None = None
) -> OfficerYear:
    """This year's hours against the requirement, per category, with every ledger line behind them."""
    if not principal.is_admin and principal.officer_id != officer_id:
        raise NotFound("执法人员不存在或不在您的管理范围内", field="officer_id")
    officer, agency = await officer_get(db, principal, officer_id)
    as_of = as_of or today()
    rule = TrainingRule.from_policy(await agency_policy(db, agency))
    requirement = rules.requirement_for(rule, year, await joined_on(db, officer.id))
    lines = await _records(
        db,
        and_(TrainingRecord.officer_id == officer.id, TrainingRecord.year == year),
        order=(TrainingRecord.attended_on, TrainingRecord.id),
    )
    totals = rules.year_totals(
        (
            rules.LedgerEntry(line.id, line.kind, line.year, line.category, round(line.hours * 10))
            for line in lines
        ),
        year,
    )
    if requirement is None:  # joined after that year: nothing was owed
        requirement = Requirement(year=year, total=0, minimums={}, start_month=13)
    standing = rules.assess(requirement, totals, as_of=as_of)
    return OfficerYear(
        officer_id=officer.id,
        officer_name=officer.name,
        agency_name=agency.name,
        year=year,
        as_of=as_of,
        required=rules.hours_value(requirement.total),
        prorated=requirement.prorated,
        start_month=min(requirement.start_month, 12),
        total=rules.hours_value(totals.total),
        percent=standing.percent,
        needed=rules.hours_value(standing.needed),
        expected=rules.hours_value(standing.expected),
        behind_pace=standing.behind_pace,
        status=standing.status,
        status_label=standing.status.label,
        categories=[
            CategoryFigure(
                category=c,
                label=c.label,
                hours=rules.hours_value(totals.of(c)),
                minimum=rules.hours_value(requirement.minimums.get(c, 0)),
                short=rules.hours_value(standing.short_by_category.get(c, 0)),
            )
            for c in CATEGORIES
        ],
        records=lines,
    )


# ---------------------------------------------------------------- yearly totals (the ledger summed)

Delta = tuple[int, int, str, int]
"""(year, officer_id, category, signed tenths) to add to ``training_year_totals``"""

_COLUMNS = tuple(c.value for c in CATEGORIES)
_UPSERT_SQLITE = (
    f"INSERT INTO training_year_totals (year, officer_id, {', '.join(_COLUMNS)}) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (year, officer_id) DO UPDATE SET " + ", ".join(f"{c} = {c} + excluded.{c}" for c in _COLUMNS)
)
_UPSERT_POSTGRESQL = text(
    f"INSERT INTO training_year_totals (year, officer_id, {', '.join(_COLUMNS)}) "
    "SELECT * FROM unnest(:years, :officers, :c0, :c1, :c2) "
    "ON CONFLICT (year, officer_id) DO UPDATE SET "
    + ", ".join(f"{c} = training_year_totals.{c} + excluded.{c}" for c in _COLUMNS)
).bindparams(
    bindparam("years", type_=ARRAY(Integer)),
    bindparam("officers", type_=ARRAY(BigInteger)),
    bindparam("c0", type_=ARRAY(BigInteger)),
    bindparam("c1", type_=ARRAY(BigInteger)),
    bindparam("c2", type_=ARRAY(BigInteger)),
)
_INDEX = {c.value: i for i, c in enumerate(CATEGORIES)}


async def totals_add(db: AsyncSession, deltas: list[Delta]) -> None:
    """Add ledger lines' hours to the yearly totals, inside the caller's transaction.

    Summed per (year, officer) first and written in key order, so that concurrent writers lock
    rows in the same order and cannot deadlock. One statement on PostgreSQL (arrays), one
    executemany on SQLite.
    """
    summed: dict[tuple[int, int], list[int]] = {}
    for year, officer_id, category, tenths in deltas:
        row = summed.get((year, officer_id))
        if row is None:
            row = summed[(year, officer_id)] = [0, 0, 0]
        row[_INDEX[category]] += tenths
    if not summed:
        return
    rows = sorted(summed.items())
    conn = await db.connection()
    if conn.dialect.name == "postgresql":
        await conn.execute(
            _UPSERT_POSTGRESQL,
            {
                "years": [k[0] for k, _ in rows],
                "officers": [k[1] for k, _ in rows],
                "c0": [v[0] for _, v in rows],
                "c1": [v[1] for _, v in rows],
                "c2": [v[2] for _, v in rows],
            },
        )
    else:
        await conn.exec_driver_sql(_UPSERT_SQLITE, [(*k, *v) for k, v in rows])


def ledger_sums(year: int | None = None) -> Select[Any]:
    """The yearly totals straight from the ledger: GROUP BY year, officer, category."""
    r = TrainingRecord.__table__.c
    stmt = select(r.year, r.officer_id, r.category, func.sum(r.hours_tenths).label("tenths"))
    if year is not None:
        stmt = stmt.where(r.year == year)
    return stmt.group_by(r.year, r.officer_id, r.category)


async def totals_check(db: AsyncSession, *, year: int | None = None) -> list[tuple[int, int, str, int, int]]:
    """Differences between the yearly totals and the ledger: (year, officer, category, kept, ledger)."""
    ledger = {(y, o, c): int(t) for y, o, c, t in await db.execute(ledger_sums(year))}
    t = TrainingYearTotal
    kept_stmt = select(t.year, t.officer_id, t.general_law, t.special_law, t.new_law)
    if year is not None:
        kept_stmt = kept_stmt.where(t.year == year)
    kept: dict[tuple[int, int, str], int] = {}
    for y, o, *values in await db.execute(kept_stmt):
        for category, value in zip(_COLUMNS, values, strict=True):
            if value:
                kept[(y, o, category)] = int(value)
    return sorted(
        (*key, kept.get(key, 0), ledger.get(key, 0))
        for key in kept.keys() | ledger.keys()
        if kept.get(key, 0) != ledger.get(key, 0)
    )


async def totals_rebuild(db: AsyncSession) -> int:
    """Recompute the yearly totals from the ledger in one transaction; returns the rows written."""
    from sqlalchemy import delete, insert

    r = TrainingRecord.__table__.c
    pivoted = select(
        r.year,
        r.officer_id,
        *[func.sum(case((r.category == c, r.hours_tenths), else_=0)) for c in _COLUMNS],
    ).group_by(r.year, r.officer_id)
    await db.execute(delete(TrainingYearTotal))
    await db.execute(insert(TrainingYearTotal).from_select(["year", "officer_id", *_COLUMNS], pivoted))
    n = int(await db.scalar(select(func.count()).select_from(TrainingYearTotal)) or 0)
    await audit_record(
        db,
        actor=SYSTEM,
        action="training.totals.rebuild",
        entity_type="training_year_totals",
        entity_id="all",
        data={"rows": n},
    )
    await db.commit()
    return n


# ---------------------------------------------------------------- compliance of an agency tree


@dataclass(frozen=True)
class Compliance:
    summary: ComplianceSummary
    rows: list[ComplianceRow]
    """The requested page (everything when no limit was given): most hours missing first, then by
    agency (in tree order) and by officer (in order of registration)."""
    total: int
    """Officers matching the status filter."""


_STATUS_FILTERS = {"all", "short", "behind", "met"}
_NO_SHORT: dict[TrainingCategory, int] = {}


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a use case makes and drops masses of small tuples."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def key_order_scan(db: AsyncSession, agencies: int) -> bool:
    """Whether to read the officers in key order rather than through their agency index: on SQLite,
    when the tree holds most agencies (then twice as fast, the yearly totals being read in order
    too); PostgreSQL's planner makes this choice itself."""
    if (await db.connection()).dialect.name != "sqlite":
        return False
    everything = int(await db.scalar(select(func.count()).select_from(Agency)) or 0)
    return agencies * 2 >= everything


def value_by_agency(values: dict[int, Any]) -> Any:
    """``values[Officer.agency_id]`` as SQL: the most common value, the others named by agency
    (a tree's agencies share a handful of policies, so the CASE stays short)."""
    groups: dict[Any, list[int]] = {}
    for agency_id, value in values.items():
        groups.setdefault(value, []).append(agency_id)
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    if len(ordered) == 1:
        return literal(ordered[0][0])
    return case(*((Officer.agency_id.in_(ids), value) for value, ids in ordered[1:]), else_=ordered[0][0])


def _compliance_statement(
    scope_path: str, year: int, *, with_joined: bool, scan: bool = False
) -> Select[Any]:
    """ONE set-based query: every officer in post in the subtree with their net hours per category.

    Officers are joined to their row of the yearly totals through its key (year, officer), which
    covers the hours; an officer without hours that year comes back with nulls. ``scan`` reads
    the officers in key order instead of through the agency index (``agency_id + 0`` keeps SQLite
    off it): for most of a province that is twice as fast, as the totals are then read in order too.
    """
    t = TrainingYearTotal
    agency_of: Any = Officer.agency_id + 0 if scan else Officer.agency_id
    stmt: Any = (
        select(Officer.id, Officer.agency_id, t.general_law, t.special_law, t.new_law)
        .outerjoin(t, and_(t.year == year, t.officer_id == Officer.id))
        .where(
            agency_of.in_(select(Agency.id).where(Agency.path.startswith(scope_path))),
            Officer.employment_status == EmploymentStatus.ACTIVE.value,
        )
    )
    if with_joined:
        joined = (
            select(PostingHistory.officer_id, func.min(PostingHistory.started_on).label("joined_on"))
            .group_by(PostingHistory.officer_id)
            .subquery("joined")
        )
        stmt = stmt.add_columns(joined.c.joined_on).outerjoin(joined, joined.c.officer_id == Officer.id)
    return stmt


async def training_compliance(
    db: AsyncSession,
    principal: Principal,
    year: int,
    *,
    agency_id: int | None = None,
    status: str = "all",
    as_of: dt.date | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> Compliance:
    """Who is short, by how much, per category, and who is behind pace, in an agency tree.

    One query brings every officer's hours; the rules are applied to each in a tight loop, and
    result rows are built only for the page asked for (``offset``/``limit``; all without a limit).
    """
    _require_admin(principal, "查看培训学时达标情况")
    if status not in _STATUS_FILTERS:
        raise DomainError("状态筛选无效", field="status")
    as_of = as_of or today()
    if agency_id is not None:
        agency = await agency_get(db, principal, agency_id)
    elif principal.agency_id:
        agency = await agency_get(db, principal, principal.agency_id)
    else:
        agency = Agency(id=0, name="全部单位", path="/", depth=0)
    tree = list((await db.scalars(select(Agency).where(Agency.path.startswith(agency.path)))).all())
    policies = await policies_by_agency(db, tree)
    names = {a.id: a.name for a in tree}
    paths = {a.id: a.path for a in tree}
    rules_by_agency = {aid: TrainingRule.from_policy(p) for aid, p in policies.items()}
    with_joined = any(r.prorate_joiners for r in rules_by_agency.values())
    conn = await db.connection()
    scan = await key_order_scan(db, len(tree))

    # Hundreds of thousands of small tuples would set the cyclic garbage collector scanning them
    # again and again (half of the loop's time); they hold no cycles, so it pauses meanwhile.
    with gc_paused():
        result = await conn.execute(
            _compliance_statement(agency.path, year, with_joined=with_joined, scan=scan)
        )
        # The hot loop: 200 000 officers must cost well under a second, so it uses plain tuples and
        # caches one requirement per (agency, month joined); ``rules.evaluate`` decides each officer.
        evaluate = rules.evaluate
        standings: dict[tuple[int, int], tuple[Requirement | None, int]] = {}
        met = short = behind_count = officers = 0
        want_short, want_met, want_behind = status == "short", status == "met", status == "behind"
        picked: list[tuple[Any, ...]] = []
        for row in result.all():  # fetched at once: row by row would cost a round of the driver each
            officer_id, agency_of, g, s, n = row[0], row[1], row[2] or 0, row[3] or 0, row[4] or 0
            joined: dt.date | None = row[5] if with_joined else None
            # The requirement depends on the month of joining only when it falls in (or after) the year.
            month = (
                0 if joined is None or joined.year < year else (13 if joined.year > year else joined.month)
            )
            cached = standings.get((agency_of, month))
            if cached is None:
                req = rules.requirement_for(rules_by_agency[agency_of], year, joined)
                cached = (req, rules.expected_by(req, as_of) if req is not None else 0)
                standings[(agency_of, month)] = cached
            requirement, expected = cached
            if requirement is None:
                continue  # joined after the year: nothing was owed
            needed, short_by, state = evaluate(requirement, expected, (g, s, n), as_of=as_of)
            total = g + s + n
            officers += 1
            is_behind = total < expected
            if needed:
                short += 1
            else:
                met += 1
            if is_behind:
                behind_count += 1
            if (want_short and not needed) or (want_met and needed) or (want_behind and not is_behind):
                continue
            picked.append(
                (
                    -needed,
                    paths.get(agency_of, ""),
                    officer_id,
                    agency_of,
                    g,
                    s,
                    n,
                    requirement,
                    expected,
                    short_by or _NO_SHORT,
                    state,
                )
            )

        ordered = (sorted(picked) if limit is None else heapq.nsmallest(offset + limit, picked))[offset:]
        # Names only for the rows shown (for an export, every officer of the tree: one more scan).
        names_of = select(Officer.id, Officer.name)
        if limit is not None:
            names_of = names_of.where(Officer.id.in_([r[2] for r in ordered]))
        else:
            names_of = names_of.where(Officer.agency_id.in_(list(paths)))
        officer_names = {i: nm for i, nm in await conn.execute(names_of)} if ordered else {}
        hv = rules.hours_value
        page = [
            ComplianceRow(
                officer_id=officer_id,
                name=officer_names.get(officer_id, ""),
                agency_id=agency_of,
                agency_name=names.get(agency_of, ""),
                required=hv(requirement.total),
                total=hv(g + s + n),
                general_law=hv(g),
                special_law=hv(s),
                new_law=hv(n),
                needed=hv(-neg_needed),
                short_categories={c.value: hv(v) for c, v in short_by.items() if v},
                expected=hv(expected),
                behind_pace=g + s + n < expected,
                status=state,
                status_label=state.label,
            )
            for neg_needed, _path, officer_id, agency_of, g, s, n, requirement, expected, short_by, state in ordered
        ]

    own_rule = rules_by_agency.get(agency.id, TrainingRule.from_policy(DEFAULT_POLICY))
    summary = ComplianceSummary(
        year=year,
        as_of=as_of,
        agency_id=agency.id,
        agency_name=agency.name,
        officers=officers,
        met=met,
        short=short,
        behind=behind_count,
        met_percent=round(met * 100 / officers, 1) if officers else 0.0,
        required=hv(own_rule.hours_required),
    )
    return Compliance(summary=summary, rows=page, total=len(picked))


def compliance_csv(compliance: Compliance) -> Iterator[str]:
    """The rows as CSV lines (UTF-8 with BOM for Excel), Chinese headers."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(
        [
            "姓名",
            "单位",
            "应修学时",
            "已修学时",
            "公共法律知识",
            "专门法律知识",
            "新法律法规",
            "尚差学时",
            "状态",
        ]
    )
    yield "\ufeff" + buf.getvalue()
    for r in compliance.rows:
        buf.seek(0)
        buf.truncate()
        writer.writerow(
            [
                spreadsheet_safe(r.name),
                spreadsheet_safe(r.agency_name),
                *(f"{v:g}" for v in (r.required, r.total, r.general_law, r.special_law, r.new_law, r.needed)),
                r.status_label,
            ]
        )
        yield buf.getvalue()


# ---------------------------------------------------------------- import batches


def batch_out(b: TrainingImportBatch) -> BatchOut:
    try:
        raw = json.loads(b.errors_json or "[]")
    except ValueError:
        raw = []
    return BatchOut(
        id=b.id,
        filename=b.filename,
        sha256=b.sha256,
        file_type=b.file_type,
        source=b.source,
        year=b.year,
        outcome=b.outcome,
        outcome_label="已导入" if b.outcome == "committed" else "已拒绝（未写入）",
        rows_total=b.rows_total,
        rows_imported=b.rows_imported,
        rows_rejected=b.rows_rejected,
        hours=rules.hours_value(b.hours_tenths),
        created_by_name=b.created_by_name,
        created_at=b.created_at,
        errors=[ImportRowError(row=int(e[0]), column=str(e[1]), message=str(e[2])) for e in raw],
    )


def _batch_scope(principal: Principal) -> ColumnElement[bool]:
    in_tree = TrainingImportBatch.agency_id.in_(
        select(Agency.id).where(Agency.path.startswith(principal.agency_path))
    )
    if principal.is_authority:
        return or_(in_tree, TrainingImportBatch.agency_id.is_(None))
    return in_tree


async def batch_list(
    db: AsyncSession, principal: Principal, *, page: int = 1, per_page: int = 50
) -> tuple[list[BatchOut], int]:
    _require_admin(principal, "查看导入批次")
    stmt = select(TrainingImportBatch).where(_batch_scope(principal))
    total = int(await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = await db.scalars(
        stmt.order_by(TrainingImportBatch.id.desc()).limit(per_page).offset((page - 1) * per_page)
    )
    return [batch_out(b) for b in rows], total


async def batch_get(db: AsyncSession, principal: Principal, batch_id: int) -> TrainingImportBatch:
    _require_admin(principal, "查看导入批次")
    batch = await db.scalar(
        select(TrainingImportBatch).where(TrainingImportBatch.id == batch_id, _batch_scope(principal))
    )
    if batch is None:
        raise NotFound("导入批次不存在或不在您的管理范围内", field="batch_id")
    return batch


async def committed_batch(db: AsyncSession, sha256: str) -> TrainingImportBatch | None:
    return await db.scalar(select(TrainingImportBatch).where(TrainingImportBatch.committed_sha256 == sha256))


__all__ = [
    "Compliance",
    "CourseFilter",
    "actor_of",
    "batch_get",
    "batch_list",
    "course_create",
    "course_detail",
    "course_get",
    "course_list",
    "officer_year",
    "record_amend",
    "record_detail",
    "record_get",
    "record_reverse",
    "system_principal",
    "training_compliance",
]
