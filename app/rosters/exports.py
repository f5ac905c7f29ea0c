"""Exports of exactly the filtered roster rows: CSV (UTF-8 with BOM) streamed as the cursor reads,
and XLSX (frozen header, column widths, real dates) written off the event loop.

Both read the rows in batches through a server-side cursor and never hold the roster in memory:
the CSV goes out batch by batch (on PostgreSQL, as COPY writes it); the XLSX is deflated batch by
batch into a temporary file on a worker thread (``xlsx.SheetWriter``), then sent from disk and deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Numeric, and_, case, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts.models import Agency, Officer
from app.assessments.models import AssessmentRating
from app.certificates.models import Certificate
from app.certificates.rules import CertificateKind, CertificateStatus
from app.lib.enums import EmploymentStatus, Post, StaffType
from app.lib.exports import spreadsheet_safe, spreadsheet_safe_sql
from app.lib.security import Principal
from app.rosters import xlsx
from app.rosters.rules import RosterFilter
from app.rosters.services.paging import RowMaker, roster_stream
from app.rosters.services.scope import Scope
from app.rosters.services.statements import (
    cert_status,
    exam_until_kept,
    exit_open,
    no_jit,
    order_by,
    requirement_total,
    roster_where,
    training_met,
    whole_roster_joins,
)
from app.rosters.xlsx import SheetWriter
from app.training.models import TrainingYearTotal
from app.training.rules import DEFAULT_RULE, format_hours

EXIT_OPEN = "进行中"

DATE, NUMBER, TEXT = xlsx.DATE, xlsx.NUMBER, xlsx.TEXT


@dataclass(frozen=True)
class Column:
    header: str
    width: float
    kind: str = TEXT


def columns(year: int) -> list[Column]:
    return [
        Column("姓名", 10),
        Column("身份证号码", 21),
        Column("性别", 6),
        Column("出生日期", 12, DATE),
        Column("单位", 30),
        Column("人员类别", 16),
        Column("岗位", 14),
        Column("执法类别", 12),
        Column("执法区域", 14),
        Column("在岗状态", 10),
        Column("执法资格", 12),
        Column("资格有效期至", 13, DATE),
        Column(f"{year}年度学时", 13, NUMBER),
        Column("应修学时", 10, NUMBER),
        Column("学时达标", 10),
        Column("证件种类", 14),
        Column("证件编号", 20),
        Column("证件状态", 10),
        Column("证件有效期至", 13, DATE),
        Column("最近考核年度", 12, NUMBER),
        Column("考核等次", 10),
        Column("退出程序", 12),
    ]


_STAFF = {m.value: m.label for m in StaffType}
_POST = {m.value: m.label for m in Post}
_STATUS = {m.value: m.label for m in EmploymentStatus}
_KIND = {m.value: m.label for m in CertificateKind}
_CERT = {m.value: m.label for m in CertificateStatus}


def value_maker(scope: Scope, principal: Principal) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A function from a result tuple to the export's cell values (dates stay dates)."""
    maker = RowMaker(scope, principal)
    names = {i: a[0] for i, a in scope.agencies.items()}
    reqs = scope.requirements
    mask = maker.id_number

    def values(r: Sequence[Any]) -> tuple[Any, ...]:
        (_oid, name, idn, gender, birth, agency_id, staff, post, field, area, status, exam_until, g, s, n) = (
            r[:15]
        )
        number, kind, cert_status, cert_until, rating_year, rating_grade, exit_case = r[15:22]
        req = reqs.get(agency_id) or DEFAULT_RULE
        return (
            name,
            mask(agency_id, idn),
            gender,
            birth,
            names.get(agency_id, ""),
            _STAFF.get(staff, staff),
            _POST.get(post, post),
            field,
            area,
            _STATUS.get(status, status),
            "有效" if exam_until is not None else "无",
            exam_until,
            (g + s + n) / 10,
            req.hours_required / 10,
            "达标" if req.met(g, s, n) else "未达标",
            _KIND.get(kind, "") if kind else "",
            number or "",
            _CERT.get(cert_status, "") if cert_status else "",
            cert_until,
            rating_year,
            rating_grade or "",
            EXIT_OPEN if exit_case else "",
        )

    return values


def csv_row_maker(scope: Scope, principal: Principal) -> Callable[[Sequence[Any]], tuple[str, ...]]:
    """A result tuple straight to the CSV's text cells (the hot loop of a 200,000-row export)."""
    mask = RowMaker(scope, principal).id_number
    names = {i: spreadsheet_safe(a[0]) for i, a in scope.agencies.items()}
    reqs = {i: (r, format_hours(r.hours_required)) for i, r in scope.requirements.items()}
    default = (DEFAULT_RULE, format_hours(DEFAULT_RULE.hours_required))
    safe = spreadsheet_safe

    def row(r: Sequence[Any]) -> tuple[str, ...]:
        (_oid, name, idn, gender, birth, agency_id, staff, post, field, area, status, exam_until, g, s, n) = (
            r[:15]
        )
        number, kind, cert_status, cert_until, rating_year, rating_grade, exit_case = r[15:22]
        req, required = reqs.get(agency_id) or default
        return (
            safe(name),
            mask(agency_id, idn),
            gender,
            birth.isoformat(),
            names.get(agency_id, ""),
            _STAFF.get(staff, staff),
            _POST.get(post, post),
            safe(field),
            safe(area),
            _STATUS.get(status, status),
            "有效" if exam_until is not None else "无",
            exam_until.isoformat() if exam_until is not None else "",
            format_hours(g + s + n),
            required,
            "达标" if req.met(g, s, n) else "未达标",
            _KIND.get(kind, "") if kind else "",
            number or "",
            _CERT.get(cert_status, "") if cert_status else "",
            cert_until.isoformat() if cert_until is not None else "",
            str(rating_year) if rating_year is not None else "",
            rating_grade or "",
            EXIT_OPEN if exit_case else "",
        )

    return row


def _sql_label(col: Any, labels: dict[str, str]) -> Any:
    # The simple CASE form: the column (or expression) is evaluated once, not once per label.
    return case(labels, value=col, else_=col)


def _sql_hours(tenths: Any) -> Any:
    return func.trim_scale(cast(tenths, Numeric) / 10)


def copy_statement(scope: Scope, f: RosterFilter, principal: Principal) -> Any:
    """The CSV's cells computed by PostgreSQL, the same text ``csv_row_maker`` makes, in order."""
    t = TrainingYearTotal
    exam_until = exam_until_kept(scope.as_of)
    g, s, n = t.category_hours()
    idn = Officer.id_number
    masked = func.substr(idn, 1, 4) + literal("*" * 10) + func.substr(idn, 15, 4)
    cols = columns(scope.year)
    values = [
        spreadsheet_safe_sql(Officer.name),
        case((Officer.agency_id == principal.agency_id, idn), else_=masked),
        Officer.gender,
        Officer.birth_date,
        spreadsheet_safe_sql(Agency.name),
        _sql_label(Officer.staff_type, _STAFF),
        _sql_label(Officer.post, _POST),
        spreadsheet_safe_sql(Officer.field),
        spreadsheet_safe_sql(Officer.area),
        _sql_label(Officer.employment_status, _STATUS),
        case((exam_until.is_not(None), "有效"), else_="无"),
        exam_until,
        _sql_hours(g + s + n),
        _sql_hours(requirement_total(scope)),
        case((training_met(scope), "达标"), else_="未达标"),
        func.coalesce(_sql_label(Certificate.kind, _KIND), ""),
        func.coalesce(Certificate.number, ""),
        func.coalesce(_sql_label(cert_status(scope.as_of), _CERT), ""),
        Certificate.valid_until,
        AssessmentRating.year,
        func.coalesce(AssessmentRating.grade, ""),
        case((exit_open(), EXIT_OPEN), else_=""),
    ]
    stmt = (
        select(*(v.label(c.header) for v, c in zip(values, cols, strict=True)))
        .select_from(Officer)
        .join(Agency, Agency.id == Officer.agency_id)
        .outerjoin(t, and_(t.year == scope.year, t.officer_id == Officer.id))
    )
    return whole_roster_joins(stmt, f).where(*roster_where(scope, f)).order_by(*order_by(f.sort))


async def _copy_stream(
    maker: async_sessionmaker[AsyncSession], scope: Scope, f: RosterFilter, principal: Principal
) -> AsyncIterator[bytes]:
    """PostgreSQL writes the CSV itself (COPY … TO STDOUT): Python only passes the bytes on.

    The copy runs as a task feeding a small queue, so a slow client holds it back (memory flat)
    and a client that goes away cancels it.
    """
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=8)
    async with maker() as session:
        conn = await session.connection()
        await no_jit(conn)
        await conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
        stmt = copy_statement(scope, f, principal)
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        params = [compiled.params[k] for k in compiled.positiontup or ()]
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None

        async def sink(chunk: bytes) -> None:
            await queue.put(bytes(chunk))  # asyncpg hands over a reused bytearray

        async def run() -> None:
            try:
                await raw.copy_from_query(str(compiled), *params, output=sink, format="csv", header=True)
            finally:
                await queue.put(None)

        task = asyncio.create_task(run())
        try:
            while (chunk := await queue.get()) is not None:
                yield chunk
            await task  # raises what the copy raised
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def csv_stream(
    maker: async_sessionmaker[AsyncSession], scope: Scope, f: RosterFilter, principal: Principal
) -> AsyncIterator[bytes]:
    """The CSV: BOM and header first, so Excel reads it as UTF-8, then the rows as they come."""
    yield "\ufeff".encode()
    if maker.kw["bind"].dialect.name == "postgresql":
        async for chunk in _copy_stream(maker, scope, f, principal):
            yield chunk
        return
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([c.header for c in columns(scope.year)])
    row = csv_row_maker(scope, principal)
    async for part in roster_stream(maker, scope, f):
        writer.writerows(map(row, part))
        yield buf.getvalue().encode()
        buf.seek(0)
        buf.truncate()
    if buf.tell():
        yield buf.getvalue().encode()


class XlsxBuilder:
    """One workbook written on worker threads; each call runs while the event loop serves others."""

    def __init__(self, year: int, directory: str | None = None) -> None:
        fd, self.path = tempfile.mkstemp(prefix="roster-", suffix=".xlsx", dir=directory)
        self.file = os.fdopen(fd, "wb")
        cols = columns(year)
        self.writer = SheetWriter(
            self.file,
            sheet="名册",
            headers=[c.header for c in cols],
            widths=[c.width for c in cols],
            kinds=[c.kind for c in cols],
        )

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        self.writer.write(rows)

    def close(self) -> None:
        self.writer.close()
        self.file.close()

    def discard(self) -> None:
        # Already failing: a second error while closing would hide the first.
        with contextlib.suppress(Exception):
            self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


async def xlsx_file(
    maker: async_sessionmaker[AsyncSession],
    scope: Scope,
    f: RosterFilter,
    principal: Principal,
    *,
    directory: str | None = None,
) -> str:
    """Write the XLSX to a temporary file and return its path (the caller deletes it)."""
    builder = await asyncio.to_thread(XlsxBuilder, scope.year, directory)
    values = value_maker(scope, principal)
    try:
        async for part in roster_stream(maker, scope, f):
            rows = [values(r) for r in part]
            await asyncio.to_thread(builder.write, rows)
        await asyncio.to_thread(builder.close)
    except BaseException:
        await asyncio.to_thread(builder.discard)
        raise
    return builder.path
