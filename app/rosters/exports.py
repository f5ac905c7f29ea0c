"""Exports of exactly the filtered roster rows: CSV (UTF-8 with BOM) streamed as the cursor reads,
and XLSX (frozen header, column widths, real dates) written off the event loop.

Both read the rows in batches through a server-side cursor and never hold the roster in memory:
the CSV goes out batch by batch; the XLSX goes row by row into xlsxwriter's constant-memory
worksheet on a worker thread, then the finished file is sent from disk and deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.lib.enums import EmploymentStatus, Post, StaffType
from app.lib.security import Principal
from app.rosters.rules import RosterFilter
from app.rosters.services import DEFAULT_REQUIREMENT, RowMaker, Scope, roster_stream

DATE = "date"
NUMBER = "number"
TEXT = "text"


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
    ]


_STAFF = {m.value: m.label for m in StaffType}
_POST = {m.value: m.label for m in Post}
_STATUS = {m.value: m.label for m in EmploymentStatus}


def value_maker(scope: Scope, principal: Principal) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A function from a result tuple to the export's cell values (dates stay dates)."""
    maker = RowMaker(scope, principal)
    names = {i: a[0] for i, a in scope.agencies.items()}
    reqs = scope.requirements
    mask = maker.id_number

    def values(r: Sequence[Any]) -> tuple[Any, ...]:
        (_oid, name, idn, gender, birth, agency_id, staff, post, field, area, status, exam_until, g, s, n) = r
        req = reqs.get(agency_id) or DEFAULT_REQUIREMENT
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
            req.total / 10,
            "达标" if req.met(g, s, n) else "未达标",
        )

    return values


def csv_safe(text: str) -> str:
    # A cell starting with = + - @ would run as a formula when the file is opened in Excel.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, str):
        return csv_safe(v)
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, dt.date):
        return v.isoformat()
    return v


async def csv_stream(
    maker: async_sessionmaker[AsyncSession], scope: Scope, f: RosterFilter, principal: Principal
) -> AsyncIterator[bytes]:
    """The CSV, a batch of rows per chunk: BOM and header first, so Excel reads it as UTF-8."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([c.header for c in columns(scope.year)])
    yield ("\ufeff" + buf.getvalue()).encode()
    values = value_maker(scope, principal)
    cell = _csv_cell
    async for part in roster_stream(maker, scope, f):
        buf.seek(0)
        buf.truncate()
        writer.writerows([[cell(v) for v in values(r)] for r in part])
        yield buf.getvalue().encode()


class XlsxBuilder:
    """One workbook written on worker threads; each call runs while the event loop serves others."""

    def __init__(self, year: int, directory: str | None = None) -> None:
        import xlsxwriter

        fd, self.path = tempfile.mkstemp(prefix="roster-", suffix=".xlsx", dir=directory)
        os.close(fd)
        self.columns = columns(year)
        self.wb = xlsxwriter.Workbook(
            self.path,
            {
                "constant_memory": True,
                "tmpdir": directory or tempfile.gettempdir(),
                # Cells are what they are: no formulas, URLs or numbers guessed out of text.
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "strings_to_numbers": False,
            },
        )
        self.ws = self.wb.add_worksheet("名册")
        self.date_fmt = self.wb.add_format({"num_format": "yyyy-mm-dd"})
        self.head_fmt = self.wb.add_format({"bold": True, "bg_color": "#E8EEF7", "border": 1})
        for i, c in enumerate(self.columns):
            self.ws.set_column(i, i, c.width)
        self.ws.freeze_panes(1, 0)
        for i, c in enumerate(self.columns):
            self.ws.write_string(0, i, c.header, self.head_fmt)
        self.row = 1

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        ws, date_fmt, r = self.ws, self.date_fmt, self.row
        kinds = [c.kind for c in self.columns]
        write_string, write_number, write_datetime = ws.write_string, ws.write_number, ws.write_datetime
        for values in rows:
            for col, (v, kind) in enumerate(zip(values, kinds, strict=True)):
                if v is None or v == "":
                    continue
                if kind == TEXT:
                    write_string(r, col, v)
                elif kind == DATE:
                    write_datetime(r, col, v, date_fmt)
                else:
                    write_number(r, col, v)
            r += 1
        self.row = r

    def close(self) -> None:
        if self.row > 1:
            self.ws.autofilter(0, 0, self.row - 1, len(self.columns) - 1)
        self.wb.close()

    def discard(self) -> None:
        # Already failing: a second error while closing would hide the first.
        with contextlib.suppress(Exception):
            self.wb.close()
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
