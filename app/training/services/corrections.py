"""冲销与更正: a ledger line is never edited; it is reversed, or reversed and entered again corrected.

Each use case writes its lines, adds them to the yearly totals and audits, inside the caller's
transaction; the caller commits (the request's edge, or the console's session).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Officer
from app.audit.services import audit_change
from app.lib.clock import today, utcnow
from app.lib.errors import Conflict, DomainError
from app.lib.security import Principal
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


@dataclass(frozen=True)
class _Why:
    """Who corrects, when, and the reason: stamped on every line of one correction and on its audit."""

    principal: Principal
    reason: str
    by_id: int | None
    by_name: str
    at: dt.datetime

    @classmethod
    def of(cls, principal: Principal, reason: str, missing: str) -> _Why:
        """``missing`` is the message when the reason is blank."""
        if not reason.strip():
            raise DomainError(missing, field="reason")
        return cls(principal, reason.strip(), *entered_by(principal), utcnow())


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


def _correcting_line(
    record: TrainingRecord,
    kind: RecordKind,
    why: _Why,
    *,
    year: int,
    attended_on: dt.date,
    tenths: int,
    generation: int,
) -> TrainingRecord:
    """A new line that corrects ``record`` (a reversal or an amendment): its officer, course, category."""
    return TrainingRecord(
        officer_id=record.officer_id,
        course_id=record.course_id,
        year=year,
        category=record.category,
        attended_on=attended_on,
        hours_tenths=tenths,
        kind=kind.value,
        corrects_id=record.id,
        reason=why.reason,
        generation=generation,
        batch_id=None,
        entered_by_id=why.by_id,
        entered_by_name=why.by_name,
        entered_at=why.at,
    )


def _reversal_of(record: TrainingRecord, why: _Why) -> TrainingRecord:
    return _correcting_line(
        record,
        RecordKind.REVERSAL,
        why,
        year=record.year,
        attended_on=record.attended_on,
        tenths=-record.hours_tenths,
        generation=rules.reversal_generation(record.generation),
    )


async def _enter(
    db: AsyncSession,
    why: _Why,
    action: str,
    record: TrainingRecord,
    officer: Officer,
    reversal: TrainingRecord,
    amendment: TrainingRecord | None = None,
    **audited: Any,
) -> None:
    """Write a correction's lines into the ledger and the yearly totals, and audit it on the record."""
    lines = [reversal] if amendment is None else [reversal, amendment]
    db.add_all(lines)
    try:
        await db.flush()
    except IntegrityError as exc:
        # The unique (course, officer, date, generation) key refused a concurrent twin; the
        # caller's edge rolls the whole use case back.
        raise Conflict(
            "该记录刚刚已被他人冲销或更正，或更正后的记录与已有记录重复，请刷新后查看", field="record_id"
        ) from exc
    await totals_add(db, [(line.year, line.officer_id, line.category, line.hours_tenths) for line in lines])
    await audit_change(
        db,
        why.principal,
        action,
        record,
        agency_id=officer.agency_id,
        data={
            "reversal_id": reversal.id,
            **({} if amendment is None else {"amendment_id": amendment.id}),
            "officer_id": record.officer_id,
            **audited,
            "reason": why.reason,
        },
    )


async def record_reverse(
    db: AsyncSession, *, principal: Principal, record_id: int, data: ReversalIn
) -> TrainingRecord:
    """冲销: a new line with the hours negated, referring to the record and saying why."""
    record, _course, officer = await _correctable(db, principal, record_id)
    why = _Why.of(principal, data.reason, "请填写冲销原因")
    reversal = _reversal_of(record, why)
    hours = rules.format_hours(record.hours_tenths)
    await _enter(db, why, "training.record.reverse", record, officer, reversal, hours=hours)
    return reversal


async def record_amend(
    db: AsyncSession, *, principal: Principal, record_id: int, data: AmendmentIn
) -> tuple[TrainingRecord, TrainingRecord]:
    """更正: reverse the record and enter the corrected one (date and/or hours), both with the reason."""
    record, course, officer = await _correctable(db, principal, record_id)
    why = _Why.of(principal, data.reason, "请填写更正原因")
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
    reversal = _reversal_of(record, why)
    amendment = _correcting_line(
        record,
        RecordKind.AMENDMENT,
        why,
        year=attended_on.year,
        attended_on=attended_on,
        tenths=tenths,
        generation=generation,
    )
    await _enter(
        db,
        why,
        "training.record.amend",
        record,
        officer,
        reversal,
        amendment,
        before=_date_and_hours(record.attended_on, record.hours_tenths),
        after=_date_and_hours(attended_on, tenths),
    )
    return reversal, amendment


def _date_and_hours(attended_on: dt.date, tenths: int) -> dict[str, str]:
    return {"attended_on": attended_on.isoformat(), "hours": rules.format_hours(tenths)}


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
