"""冲销与更正: a ledger line is never edited; it is reversed, or reversed and entered again corrected.

Each use case writes its lines, adds them to the yearly totals and audits, inside the caller's
transaction; the caller commits (the request's edge, or the console's session).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Officer
from app.audit.services import audit_record
from app.lib.clock import today, utcnow
from app.lib.errors import Conflict, DomainError
from app.lib.security import Principal, actor_of
from app.training import rules
from app.training.access import entered_by, require_admin
from app.training.models import TrainingCourse, TrainingRecord
from app.training.rules import RecordKind
from app.training.schemas import AmendmentIn, ReversalIn
from app.training.selectors.records import ledger_entry, record_get, reversed_clause
from app.training.services.totals import totals_add


def hours_or_error(raw: float | str, field: str) -> int:
    """Hours as tenths, or a ``DomainError`` on ``field`` saying why the text is not hours."""
    try:
        return rules.parse_hours(str(raw))
    except ValueError as exc:
        raise DomainError(str(exc), field=field) from exc


def date_error(attended_on: dt.date, course: TrainingCourse) -> str | None:
    """Why a date cannot be the attendance date at ``course`` (Chinese), or None."""
    return rules.attendance_date_error(
        attended_on, starts_on=course.starts_on, ends_on=course.ends_on, today=today()
    )


async def _correctable(
    db: AsyncSession, principal: Principal, record_id: int
) -> tuple[TrainingRecord, TrainingCourse, Officer]:
    require_admin(principal, "更正学时记录")
    record = await record_get(db, principal, record_id)
    already = bool(await db.scalar(select(reversed_clause(record.id))))
    if msg := rules.correction_error(ledger_entry(record), already_reversed=already):
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
        # The unique (course, officer, date, generation) key refused a concurrent twin; the
        # caller's edge rolls the whole use case back.
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
    if msg := rules.hours_over_course(tenths, course.hours_tenths):
        raise DomainError(msg, field="hours")
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


__all__ = ["date_error", "hours_or_error", "record_amend", "record_reverse"]
