"""Reading the ledger: lines with their correction chain, and an officer's year against the requirement."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.accounts.models import Agency, Officer, PostingHistory
from app.accounts.selectors import agency_policy, officer_get
from app.lib.clock import today
from app.lib.errors import NotFound
from app.lib.security import Principal
from app.lib.structs import project
from app.training import rules
from app.training.models import TrainingCourse, TrainingRecord
from app.training.rules import CATEGORIES, RecordKind, Requirement, TrainingCategory, TrainingRule
from app.training.schemas import CategoryFigure, CorrectionOut, OfficerYear, RecordOut


def reversed_clause(record_id: Any) -> ColumnElement[bool]:
    """EXISTS a reversal of ``record_id`` (a column or a value)."""
    rev = aliased(TrainingRecord)
    return select(rev.id).where(rev.corrects_id == record_id, rev.kind == RecordKind.REVERSAL.value).exists()


async def record_lines(
    db: AsyncSession,
    where: ColumnElement[bool],
    *,
    order: tuple[Any, ...],
    limit: int | None = None,
    offset: int = 0,
) -> list[RecordOut]:
    """Ledger lines matching ``where``, each with its officer, course and what reversed or amended it."""
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
    kind = RecordKind(r.kind)
    return project(
        RecordOut,
        r,
        officer_name=officer_name,
        agency_name=agency_name,
        course_title=course_title,
        category_label=TrainingCategory(r.category).label,
        hours=rules.hours_value(r.hours_tenths),
        kind_label=kind.label,
        reversed_by_id=reversed_by_id,
        amended_by_id=amended_by_id,
        counts=kind is not RecordKind.REVERSAL and reversed_by_id is None,
    )


def ledger_entry(r: TrainingRecord) -> rules.LedgerEntry:
    return rules.LedgerEntry(
        id=r.id,
        kind=RecordKind(r.kind),
        year=r.year,
        category=TrainingCategory(r.category),
        tenths=r.hours_tenths,
        corrects_id=r.corrects_id,
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
    return await record_lines(db, TrainingRecord.id.in_(ids), order=(TrainingRecord.id,))


async def correction_out(
    db: AsyncSession, reversal: TrainingRecord, amendment: TrainingRecord | None
) -> CorrectionOut:
    ids = [reversal.id] + ([amendment.id] if amendment is not None else [])
    lines = {r.id: r for r in await record_lines(db, TrainingRecord.id.in_(ids), order=(TrainingRecord.id,))}
    return CorrectionOut(
        reversal=lines[reversal.id], amendment=lines[amendment.id] if amendment is not None else None
    )


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
    lines = await record_lines(
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


__all__ = [
    "correction_out",
    "joined_on",
    "ledger_entry",
    "officer_year",
    "record_detail",
    "record_get",
    "record_lines",
    "record_out",
    "reversed_clause",
]
