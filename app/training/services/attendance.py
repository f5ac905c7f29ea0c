"""登记参训: officers typed into a course's form by ID number, checked exactly like an imported sheet."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.services import audit_change
from app.lib.clock import today
from app.lib.errors import Conflict, DomainError, NotFound
from app.lib.imports import RowFault
from app.lib.security import Principal
from app.lib.tabular import Row
from app.training import rules
from app.training.schemas import AttendanceIn
from app.training.selectors.courses import course_get
from app.training.services.corrections import date_error, hours_or_error
from app.training.sheets.format import AttendanceRejected
from app.training.sheets.ledger import Course, Ledger
from app.training.sheets.rows import Line, RowParser

_LABEL = "身份证号码"


async def attendance_add(
    db: AsyncSession, *, principal: Principal, course_id: int, data: AttendanceIn
) -> list[int]:
    """登记参训: officers by ID number (one a line), the course's date and hours unless given.

    Checked exactly like an imported sheet (line numbers for row numbers); all or nothing:
    ``AttendanceRejected`` lists every line that cannot be recorded, and then nothing was written.
    Returns the new records' ids. Never commits: the caller does.
    """
    if not principal.is_admin:
        raise NotFound("页面不存在")
    course, agency = await course_get(db, principal, course_id)
    tenths = hours_or_error(data.hours, "hours") if data.hours not in (None, "") else None
    if tenths is not None and (msg := rules.hours_over_course(tenths, course.hours_tenths)):
        raise DomainError(msg, field="hours")
    if data.attended_on is not None and (msg := date_error(data.attended_on, course)):
        raise DomainError(msg, field="attended_on")
    errors: list[RowFault] = []
    parser = RowParser(lambda _k: _LABEL, errors, today())
    lines: list[Line] = []
    for number, raw in enumerate(data.id_numbers, start=1):
        raw = raw.strip()
        if not raw:
            continue
        line = parser.parse(Row(number=number, values={"id_number": raw}))
        line.attended_on = data.attended_on
        line.tenths = tenths
        lines.append(line)
    if not lines:
        raise DomainError("请至少填写一个身份证号码", field="id_numbers")
    ledger = Ledger(
        db=db,
        principal=principal,
        year=course.year,
        labels=lambda _k: _LABEL,
        default_course=Course.of(course),
    )
    ledger.errors.extend(errors)
    # The checks' scratch tables and, on a refusal or a clash, all the rest go with the savepoint.
    try:
        async with db.begin_nested():
            await ledger.open()
            await ledger.feed(lines)
            await ledger.finish()
            if ledger.errors:
                raise AttendanceRejected(ledger.row_errors())
            new_ids = await ledger.write(returning=True)
            await ledger.close()
    except IntegrityError as exc:
        raise Conflict(
            "有学时记录刚刚被他人登记，本次未写入任何数据，请刷新后重试", field="id_numbers"
        ) from exc
    await audit_change(
        db,
        principal,
        "training.record.create",
        course,
        agency_id=principal.agency_id or agency.id,
        data={
            "course_id": course.id,
            "record_ids": sorted(new_ids),
            "hours": rules.format_hours(ledger.tenths),
        },
    )
    return sorted(new_ids)


__all__ = ["attendance_add"]
