"""Attendance into the ledger: bulk import of attendance sheets, and attendance typed in a form.

A sheet (CSV in UTF-8 or GBK, XLSX; read by ``app.lib.tabular``) has one row per officer and
course: ID number (matched to an officer of the importer's agency tree), optionally the name (a
cross-check), the course (by its number or exact title; or one course chosen for the whole file),
the date and the hours (both default to the course's). Each bad row is reported with its
spreadsheet row number and the reason — unknown officer, hours not a positive number, date outside
the year or the course, course unknown, duplicate (in the file or already in the ledger) — and a
commit writes all rows or none.

The import is set-based. The file is streamed in chunks: each chunk is parsed off the event loop,
judged where no database is needed (cell text, course, date, hours) and staged into a temporary
table (COPY on PostgreSQL, executemany on SQLite). On PostgreSQL a plain CSV file (no quotes: what
Excel and WPS export for attendance sheets) is not split in Python at all: COPY splits it, each
distinct (course, date, hours) text is judged once in Python, and a join stages the rows
(``_Ledger.stage_plain``: ~0.3 s of database work instead of ~0.9 s of Python for 100 000 rows,
with the same verdicts and messages). Then a handful of joins judge every row at once —
officer by ID number in the importer's tree, name, twins within the file, lines already in the
ledger — and, when no row failed, one INSERT … SELECT appends the lines in key order and one
GROUP BY adds them to the yearly totals, inside the one transaction. Python memory stays flat
whatever the file's length: the rows live in the database's scratch table, not in the process.

The same sheet cannot count twice: a committed batch's SHA-256 is unique (``该文件已导入（批次 N）``),
and an edited copy's rows collide with the live records already there (duplicate rows).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, cast

import asyncpg
import msgspec
from sqlalchemy import (
    String,
    Table,
    bindparam,
    func,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import settings as app_settings
from app.accounts.models import Account, Agency
from app.accounts.rules import id_number_error, mask_id_number
from app.lib import tabular
from app.lib.audit import audit_record
from app.lib.clock import utcnow
from app.lib.enums import Role
from app.lib.errors import Conflict, DomainError, FieldError, NotFound
from app.lib.security import Principal
from app.lib.tabular import PlainCsv, Row, TableError, read_table
from app.training import rules
from app.training.models import TrainingCourse, TrainingImportBatch, TrainingRecord
from app.training.rules import RecordKind
from app.training.schemas import AttendanceIn, ImportPreview, ImportReport, ImportRowError, ImportSampleRow
from app.training.services import (
    actor_of,
    committed_batch,
    course_get,
    course_visible,
    date_error,
    entered_by,
    system_principal,
    today,
)

# ================================================================= the file format

COLUMNS: dict[str, list[str]] = {
    "name": ["姓名"],
    "id_number": ["身份证号码", "身份证号", "公民身份号码", "身份证"],
    "course_id": ["课程编号", "课程ID", "课程号"],
    "course": ["课程名称", "培训课程", "课程", "培训名称", "培训项目"],
    "attended_on": ["培训日期", "日期", "完成日期", "结业日期", "签到日期", "参训日期"],
    "hours": ["学时", "培训学时", "学时数", "获得学时"],
}
"""canonical key → accepted headers; the first one is the template's and the one named in messages."""
REQUIRED = ["id_number"]
TEMPLATE_HEADERS = [names[0] for names in COLUMNS.values()]
ORDER = {k: i for i, k in enumerate(COLUMNS)}

MAX_IMPORT_ROWS = 200_000
CHUNK_ROWS = 10_000
_IMPORT_LOCK = 7_270_002
SAMPLE_SIZE = 20
STORED_ERRORS = 200
STAGE_TTL_SECONDS = 24 * 3600

_SCI_NOTATION = re.compile(r"^\d(\.\d+)?[eE]\+?\d+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

INSERT_COLUMNS = (
    "officer_id",
    "course_id",
    "year",
    "category",
    "attended_on",
    "hours_tenths",
    "kind",
    "corrects_id",
    "reason",
    "generation",
    "batch_id",
    "entered_by_id",
    "entered_by_name",
    "entered_at",
)


class ImportFileError(DomainError):
    """The file as a whole cannot be imported (type, encoding, header, no course...)."""

    title = "文件无法导入"


class AlreadyImported(Conflict):
    title = "文件已导入"

    def __init__(self, batch: TrainingImportBatch) -> None:
        when = batch.created_at.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")
        super().__init__(
            f"该文件已导入（批次 {batch.id}，{when}，{batch.rows_imported} 条记录），不会重复计算学时",
            field="file",
        )
        self.batch_id = batch.id


class ImportRejected(DomainError):
    """Some rows are bad: nothing was written. ``preview`` lists every one of them."""

    status_code = 422
    title = "导入文件有错误"

    def __init__(self, preview: ImportPreview, batch_id: int | None = None) -> None:
        n = preview.invalid_rows
        super().__init__(
            f"文件中有 {n} 行数据有错误，未导入任何学时，请修改后重新上传"
            if n
            else "文件中没有可导入的数据行",
            errors=[FieldError("file", f"第{e.row}行 {e.column}：{e.message}") for e in preview.errors[:1]],
        )
        self.preview = preview
        self.batch_id = batch_id


class AttendanceRejected(DomainError):
    """Some of the officers typed in cannot be recorded: nothing was written."""

    status_code = 422
    title = "参训登记有错误"

    def __init__(self, errors: list[ImportRowError]) -> None:
        super().__init__(
            f"有 {len({e.row for e in errors})} 行不能登记，未登记任何学时，请修改后重新提交",
            errors=[FieldError("id_numbers", f"第{e.row}行：{e.message}") for e in errors],
        )
        self.rows = errors


@dataclass
class ImportResult:
    batch_id: int
    imported: int
    preview: ImportPreview


# ================================================================= rows (pure, off the event loop)


@dataclass(slots=True)
class _Line:
    row: int
    id_number: str
    name: str
    course_id: int | None
    course_title: str
    attended_on: dt.date | None
    tenths: int | None
    bad: bool = False
    raw_date: str = ""


Error = tuple[int, int, str, str]
"""(row, column order, column label, message)"""


_OFFICERS_BY_ID_NUMBER = (
    "SELECT id, id_number, name, agency_id FROM officers WHERE id_number = ANY($1::varchar[])"
)
_ID_SHAPE = re.compile(r"^\d{17}[\dX]$")
_EXCEL_NUMBER = "身份证号码在 Excel 中被存成了数字，末几位已丢失：请把该列设置为“文本”格式后重新录入"


class _RowParser:
    """Turns sheet rows into lines, checking what needs no database. Pure; runs off the event loop.

    Dates, hours and course titles repeat on almost every row of a sheet, so each distinct text is
    parsed once. An ID number of the right shape is looked up as it is; the full check (check
    digit, birth date) runs only for one that matches no officer, to say why.
    """

    def __init__(self, label: Callable[[str], str], errors: list[Error], today_: dt.date) -> None:
        self.label = label
        self.errors = errors
        self.today = today_
        self._titles: dict[str, str] = {}
        self._dates: dict[str, dt.date | None] = {}
        self._hours: dict[str, int | str] = {}

    def parse(self, row: Row) -> _Line:
        n = row.number
        values = row.values
        errors = self.errors
        bad = False

        raw_id = values.get("id_number", "")
        id_number = raw_id.replace(" ", "").upper().lstrip("'")
        if not _ID_SHAPE.match(id_number):
            if "id_number" in row.lossy or _SCI_NOTATION.match(raw_id):
                message = _EXCEL_NUMBER
            elif raw_id:
                message = id_number_error(raw_id, today=self.today) or "身份证号码格式不正确"
            else:
                message = "身份证号码不能为空"
            errors.append((n, ORDER["id_number"], self.label("id_number"), message))
            id_number = ""
            bad = True

        course_id: int | None = None
        raw_course_id = values.get("course_id", "")
        if raw_course_id:
            if raw_course_id.isdigit() and len(raw_course_id) < 18:
                course_id = int(raw_course_id)
            else:
                errors.append(
                    (
                        n,
                        ORDER["course_id"],
                        self.label("course_id"),
                        f"课程编号“{raw_course_id}”应为系统中课程的编号（数字）",
                    )
                )
                bad = True
        raw_title = values.get("course", "")
        title = self._titles.get(raw_title)
        if title is None:
            title = self._titles[raw_title] = " ".join(raw_title.split())

        attended_on: dt.date | None = None
        raw_date = values.get("attended_on", "")
        if raw_date:
            if raw_date in self._dates:
                attended_on = self._dates[raw_date]
            else:
                attended_on = self._dates[raw_date] = rules.parse_date(raw_date)
            if attended_on is None:
                errors.append(
                    (
                        n,
                        ORDER["attended_on"],
                        self.label("attended_on"),
                        f"培训日期“{raw_date}”无法识别，应为如 2026-03-01 的日期",
                    )
                )
                bad = True

        tenths: int | None = None
        raw_hours = values.get("hours", "")
        if raw_hours:
            parsed = self._hours.get(raw_hours)
            if parsed is None:
                try:
                    parsed = rules.parse_hours(raw_hours)
                except ValueError as exc:
                    parsed = str(exc)
                self._hours[raw_hours] = parsed
            if isinstance(parsed, str):
                errors.append((n, ORDER["hours"], self.label("hours"), parsed))
                bad = True
            else:
                tenths = parsed

        return _Line(
            row=n,
            id_number=id_number,
            name=values.get("name", ""),
            course_id=course_id,
            course_title=title,
            attended_on=attended_on,
            tenths=tenths,
            bad=bad,
            raw_date=raw_date,
        )


def _next_lines(rows: Iterator[Row], size: int, parser: _RowParser) -> list[_Line]:
    out: list[_Line] = []
    parse = parser.parse
    try:
        for row in rows:
            out.append(parse(row))
            if len(out) >= size:
                break
    except TableError as exc:
        raise ImportFileError(exc.message, field="file") from exc
    return out


# ================================================================= checks against the database


@dataclass(frozen=True, slots=True)
class _Course:
    id: int
    title: str
    year: int
    category: str
    tenths: int
    starts_on: dt.date
    ends_on: dt.date


@dataclass(frozen=True, slots=True)
class _Officer:
    id: int
    name: str
    agency_id: int


_STAGE = "training_import_stage"
_RAW = "training_import_raw"
_COMBOS = "training_import_combos"
PLAIN_CSV = True
"""PostgreSQL splits plain CSV files (see ``_Ledger.stage_plain``); tests turn it off to compare."""
PLAIN_COMBOS = 5_000
_TEXTS = ("course_id", "course", "attended_on", "hours")
_BLANKS_SQL = "E'" + "".join(f"\\u{ord(c):04x}" for c in tabular.BLANKS) + "'"
"""The reader's blanks as a PostgreSQL string (``btrim`` strips what ``str.strip`` strips)."""
"""Most distinct (course, date, hours) texts a plain CSV may have for the database to split it."""
_ROWS = "training_import_rows"
_GENERATIONS = "training_import_generations"
_STAGE_COLUMNS = ("row", "id_number", "name", "course_id", "year", "category", "attended_on", "tenths", "ok")


def _stage_ddl(dialect: str) -> list[str]:
    """The import's scratch tables: temporary, so private to the connection and never logged.

    ``training_import_stage`` takes the sheet's rows as parsed (COPY on PostgreSQL, executemany on
    SQLite); ``training_import_rows`` is the same joined to the officers (by ID number, in scope);
    ``training_import_generations`` holds the few rows that follow an earlier, reversed line.
    """
    on_commit = " ON COMMIT DROP" if dialect == "postgresql" else ""
    boolean = "boolean" if dialect == "postgresql" else "integer"
    day = "date" if dialect == "postgresql" else "text"
    return [
        f"DROP TABLE IF EXISTS {_STAGE}",
        f"DROP TABLE IF EXISTS {_ROWS}",
        f"DROP TABLE IF EXISTS {_GENERATIONS}",
        f"CREATE TEMPORARY TABLE {_STAGE} (row integer, id_number varchar(18), name text, course_id bigint, "
        f"year integer, category varchar(16), attended_on {day}, tenths integer, ok {boolean}){on_commit}",
        f"CREATE TEMPORARY TABLE {_ROWS} (row integer, id_number varchar(18), name text, course_id bigint, "
        f"year integer, category varchar(16), attended_on {day}, tenths integer, ok {boolean}, "
        f"officer_id bigint, officer_name text, officer_agency_id bigint){on_commit}",
        f"CREATE TEMPORARY TABLE {_GENERATIONS} (row integer PRIMARY KEY, generation integer){on_commit}",
    ]


# Officers by ID number, kept only inside the importer's agency tree (a path prefix). An officer
# outside it is left unmatched: to the importer, unknown.
_RESOLVE = text(
    f"INSERT INTO {_ROWS} SELECT s.row, s.id_number, s.name, s.course_id, s.year, s.category, "
    "s.attended_on, s.tenths, s.ok, "
    "CASE WHEN a.path LIKE :scope THEN o.id END, CASE WHEN a.path LIKE :scope THEN o.name END, "
    "CASE WHEN a.path LIKE :scope THEN o.agency_id END "
    f"FROM {_STAGE} s LEFT JOIN officers o ON o.id_number = s.id_number "
    "LEFT JOIN agencies a ON a.id = o.agency_id"
)
_UNKNOWN = text(f"SELECT row, id_number FROM {_ROWS} WHERE officer_id IS NULL")
_NAME_DIFFERS = text(
    f"SELECT row, name, officer_name, tenths, ok FROM {_ROWS} "
    "WHERE officer_id IS NOT NULL AND name <> '' AND name <> officer_name"
)
# Rows sharing (officer, course, day) with another row that passed every other check.
_TWINS = text(
    f"SELECT r.row, r.officer_id, r.course_id, r.attended_on, r.tenths FROM {_ROWS} r JOIN "
    f"(SELECT officer_id, course_id, attended_on FROM {_ROWS} WHERE ok AND officer_id IS NOT NULL "
    " GROUP BY officer_id, course_id, attended_on HAVING count(*) > 1) d "
    "ON d.officer_id = r.officer_id AND d.course_id = r.course_id AND d.attended_on = r.attended_on "
    "WHERE r.ok"
)
# The staged rows' hours per (year, officer) and category, and the upsert that adds them up.
_SUMMED = ", ".join(
    f"SUM(CASE WHEN category = '{c.value}' THEN tenths ELSE 0 END) AS {c.value}" for c in rules.CATEGORIES
)
_ADD_ON_CONFLICT = "ON CONFLICT (year, officer_id) DO UPDATE SET " + ", ".join(
    f"{c.value} = training_year_totals.{c.value} + excluded.{c.value}" for c in rules.CATEGORIES
)


def _totals_insert(extra: str = "") -> Any:
    return text(
        "INSERT INTO training_year_totals (year, officer_id, general_law, special_law, new_law) "
        f"SELECT year, officer_id, {_SUMMED} FROM {_ROWS} r WHERE officer_id IS NOT NULL{extra} "
        f"GROUP BY year, officer_id ORDER BY year, officer_id {_ADD_ON_CONFLICT}"
    )


_TOTALS = _totals_insert()
# PostgreSQL: the officers who already have a total for the year (most of them, after the first
# import of a year) get theirs by one joined UPDATE, which stays on the row's page and touches no
# index (the table is 70 % full, its key holds no hours); then the upsert only meets the rest (or a
# row a line added by hand, not under the import lock, created meanwhile).
# Half the time of the upsert alone for 100,000 officers (measured: 0.4 s against 0.8 s).
_TOTALS_UPDATE = text(
    "UPDATE training_year_totals t SET "
    + ", ".join(f"{c.value} = t.{c.value} + d.{c.value}" for c in rules.CATEGORIES)
    + f" FROM (SELECT year, officer_id, {_SUMMED} FROM {_ROWS} WHERE officer_id IS NOT NULL "
    "GROUP BY year, officer_id) d WHERE t.year = d.year AND t.officer_id = d.officer_id"
)
_TOTALS_NEW = _totals_insert(
    " AND NOT EXISTS (SELECT 1 FROM training_year_totals t WHERE t.year = r.year AND t.officer_id = r.officer_id)"
)
_SUMS = text(f"SELECT count(*), COALESCE(SUM(tenths), 0) FROM {_ROWS} WHERE ok AND officer_id IS NOT NULL")


def _day(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


@dataclass
class _Ledger:
    """Checks an import set-based: rows are staged in a temporary table chunk by chunk, then judged
    by a handful of joins (officers, twins in the file, lines already in the ledger) and, when every
    row is good, written by one INSERT … SELECT and one GROUP BY into the yearly totals.

    What needs no database (the text of each cell, the course of each row, its date and hours) is
    judged in Python as the rows stream in; only the rows with a usable ID number are staged.
    """

    db: AsyncSession
    principal: Principal
    year: int
    labels: Callable[[str], str]
    default_course: _Course | None = None
    batch_id: int | None = None
    errors: list[Error] = field(default_factory=list)
    total: int = 0
    tenths: int = 0
    sample: list[ImportSampleRow] = field(default_factory=list)
    written: int = 0
    _dialect: str = ""
    _by_id: dict[int, _Course | None] = field(default_factory=dict)
    _by_title: dict[str, list[_Course]] = field(default_factory=dict)
    _date_errors: dict[tuple[int, dt.date], str | None] = field(default_factory=dict)
    _with_lines: set[int] = field(default_factory=set)
    """Courses that had ledger lines before this import (only those need a look at the ledger)."""
    _checked: set[int] = field(default_factory=set)
    _generations: dict[int, int] = field(default_factory=dict)
    _day_text: dict[dt.date, str] = field(default_factory=dict)

    def fail(self, line: _Line, key: str, message: str) -> None:
        line.bad = True
        self.errors.append((line.row, ORDER[key], self.labels(key), message))

    def _fail_row(self, row: int, key: str, message: str) -> None:
        self.errors.append((row, ORDER[key], self.labels(key), message))

    @property
    def plain(self) -> bool:
        """Whether a plain CSV file may be split by the database (PostgreSQL's COPY)."""
        return self._dialect == "postgresql" and PLAIN_CSV

    async def open(self) -> None:
        conn = await self.db.connection()
        self._dialect = conn.dialect.name
        if self._dialect == "postgresql":
            # The sorts of a 100 000-row import (key order for the ledger, GROUP BY for the totals)
            # then stay in memory instead of spilling to disk: for this transaction only.
            await conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
        for statement in _stage_ddl(self._dialect):
            await conn.exec_driver_sql(statement)

    async def close(self) -> None:
        """Drop the scratch tables (PostgreSQL drops them at the end of the transaction anyway)."""
        if self._dialect == "sqlite":
            conn = await self.db.connection()
            for name in (_STAGE, _ROWS, _GENERATIONS):
                await conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")

    async def _courses(self, lines: list[_Line]) -> None:
        ids = sorted(
            {ln.course_id for ln in lines if ln.course_id is not None and ln.course_id not in self._by_id}
        )
        titles = sorted(
            {ln.course_title for ln in lines if ln.course_id is None and ln.course_title}
            - set(self._by_title)
        )
        base = (
            select(
                TrainingCourse.id,
                TrainingCourse.title,
                TrainingCourse.year,
                TrainingCourse.category,
                TrainingCourse.hours_tenths,
                TrainingCourse.starts_on,
                TrainingCourse.ends_on,
            )
            .join(Agency, Agency.id == TrainingCourse.agency_id)
            .where(course_visible(self.principal))
        )
        for chunk in _chunks(ids):
            for r in await self.db.execute(base.where(TrainingCourse.id.in_(chunk))):
                self._by_id[r.id] = _Course(*r)
        for i in ids:
            self._by_id.setdefault(i, None)
        for chunk in _chunks(titles):
            found = await self.db.execute(
                base.where(TrainingCourse.title.in_(chunk), TrainingCourse.year == self.year)
            )
            for r in found:
                self._by_title.setdefault(r.title, []).append(_Course(*r))
        for t in titles:
            self._by_title.setdefault(t, [])
        resolved = [self._by_id[i] for i in ids] + [c for t in titles for c in self._by_title[t]]
        if self.default_course is not None:
            resolved.append(self.default_course)
        fresh = sorted({c.id for c in resolved if c is not None} - self._checked)
        if fresh:
            self._checked.update(fresh)
            has_lines = (
                select(TrainingRecord.id)
                .where(TrainingRecord.course_id == TrainingCourse.id, TrainingRecord.hours_tenths > 0)
                .exists()
            )
            with_lines = await self.db.scalars(
                select(TrainingCourse.id).where(TrainingCourse.id.in_(fresh), has_lines)
            )
            self._with_lines.update(with_lines.all())

    def _course_for(self, line: _Line) -> _Course | None:
        if line.course_id is not None:
            course = self._by_id.get(line.course_id)
            if course is None:
                self.fail(line, "course_id", f"课程编号 {line.course_id} 不存在或不在您的管理范围内")
            return course
        if line.course_title:
            matches = self._by_title.get(line.course_title, [])
            if not matches:
                self.fail(
                    line,
                    "course",
                    f"课程“{line.course_title}”在 {self.year} 年度不存在（须先登记课程，名称须完全一致），或不在您的管理范围内",
                )
                return None
            if len(matches) > 1:
                numbers = "、".join(str(c.id) for c in matches[:5])
                self.fail(
                    line,
                    "course",
                    f"课程名称“{line.course_title}”对应多个课程（编号 {numbers}），请改填课程编号",
                )
                return None
            return matches[0]
        if self.default_course is not None:
            return self.default_course
        self.fail(line, "course", "课程不能为空（请填写课程编号或课程名称）")
        return None

    def _check(self, lines: list[_Line], now_day: dt.date) -> list[tuple[Any, ...]]:
        """The checks that need no officer: course, year, date, hours. Returns the rows to stage."""
        year = self.year
        fail = self.fail
        date_errors = self._date_errors
        sqlite = self._dialect == "sqlite"
        day_text = self._day_text
        staged: list[tuple[Any, ...]] = []
        for line in lines:
            course = self._course_for(line)
            attended_on: dt.date | None = None
            tenths: int | None = None
            if course is not None and course.year != year:
                fail(line, "course", f"课程“{course.title}”属于 {course.year} 年度，不是 {year} 年度")
                course = None
            if course is not None:
                attended_on = line.attended_on or course.ends_on
                if line.attended_on is not None or not line.raw_date:
                    # Dates repeat on nearly every row: each (course, date) is judged once.
                    key = (course.id, attended_on)
                    if key in date_errors:
                        message = date_errors[key]
                    else:
                        message = date_errors[key] = _date_error(attended_on, course, year, now_day)
                    if message is not None:
                        fail(line, "attended_on", message)
                tenths = course.tenths
                if line.tenths is not None:
                    tenths = line.tenths
                    if tenths > course.tenths:
                        fail(
                            line,
                            "hours",
                            f"学时 {rules.format_hours(tenths)} 超过课程学时 {rules.format_hours(course.tenths)}",
                        )
            if not line.id_number:
                continue
            day: Any = attended_on
            if sqlite and attended_on is not None:
                day = day_text.get(attended_on)
                if day is None:
                    day = day_text[attended_on] = attended_on.isoformat()
            ok = not line.bad
            staged.append(
                (
                    line.row,
                    line.id_number,
                    line.name,
                    course.id if course is not None else None,
                    attended_on.year if attended_on is not None else None,
                    course.category if course is not None else None,
                    day,
                    tenths,
                    (1 if ok else 0) if sqlite else ok,
                )
            )
        return staged

    async def feed(self, lines: list[_Line]) -> None:
        """Judge a chunk of parsed rows without the officers, and stage it."""
        if not lines:
            return
        self.total += len(lines)
        await self._courses(lines)
        staged = self._check(lines, today())
        if not staged:
            return
        conn = await self.db.connection()
        if self._dialect == "postgresql":
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            await driver.copy_records_to_table(_STAGE, records=staged, columns=list(_STAGE_COLUMNS))
        else:
            await conn.exec_driver_sql(
                f"INSERT INTO {_STAGE} VALUES ({', '.join('?' for _ in _STAGE_COLUMNS)})", staged
            )

    async def stage_plain(
        self, data: bytes, plain: PlainCsv, table: tabular.Table, parser: _RowParser, max_rows: int
    ) -> bool:
        """Stage a plain CSV file (PostgreSQL): the database splits it, the rows need no Python.

        COPY puts the raw cells of the rows after the header into a scratch table. A row whose ID
        number is 18 ASCII digits (or 17 and an X) is judged by its (course, date, hours) texts;
        those repeat, so each distinct one goes through the same Python checks as any row (its
        verdict — and its errors — then hold for every row that has it) and one join stages the
        rows. Every other row (a blank or odd ID number: spaces, quote, full-width digits…) is
        read back and parsed as the Python reader would. Same rows, same messages, same figures.

        False (and nothing kept) when COPY refuses the file (a blank or ragged line, mixed line
        ends), a cell or line is over the reader's limits, or there are more than ``PLAIN_COMBOS``
        distinct texts: the caller then reads the file in Python.
        """
        conn = await self.db.connection()
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        cells = [f"c{i}" for i in range(plain.width)]
        await driver.execute("SAVEPOINT training_import_plain")
        try:
            await driver.execute(
                f"CREATE TEMPORARY TABLE {_RAW} (n bigint GENERATED ALWAYS AS IDENTITY, "
                + ", ".join(f"{c} text" for c in cells)
                + ") ON COMMIT DROP"
            )
            await driver.copy_to_table(
                _RAW,
                source=_async_chunks(plain.chunks(data)),
                columns=cells,
                format="csv",
                delimiter=plain.delimiter,
            )
        except asyncpg.PostgresError:
            await driver.execute("ROLLBACK TO SAVEPOINT training_import_plain")
            return False
        pos = table.positions
        id_cell = f"r.c{pos['id_number']}"
        keys = [f"coalesce(r.c{pos[t]}, '')" if t in pos else "''" for t in _TEXTS]
        # 18 ASCII digits, or 17 and an X: the ID number as the Python reader would keep it.
        canonical = f"(octet_length({id_cell}) = 18 AND ltrim({id_cell}, '0123456789') IN ('', 'X', 'x'))"
        octets = " + ".join(f"coalesce(octet_length(r.{c}), 0)" for c in cells)
        # One pass: the distinct texts of the rows with a canonical ID, how many rows have one (or
        # not), and the longest line.
        groups = await driver.fetch(
            f"SELECT {', '.join(keys)}, coalesce({canonical}, false), count(*), max({octets}) "
            f"FROM {_RAW} r GROUP BY 1, 2, 3, 4, 5 LIMIT {PLAIN_COMBOS + 1}"
        )
        longest = max((g[6] for g in groups), default=0)
        if len(groups) > PLAIN_COMBOS or longest + plain.width > tabular.CSV_FIELD_LIMIT:
            # Too many distinct texts, or a line so long the reader's limits may apply (it says which).
            await driver.execute("ROLLBACK TO SAVEPOINT training_import_plain")
            return False
        combos = [tuple(g[:4]) for g in groups if g[4]]
        canonical_rows = sum(g[5] for g in groups if g[4])
        others = sum(g[5] for g in groups if not g[4])
        if canonical_rows > max_rows:
            raise ImportFileError(tabular.too_many_rows(max_rows), field="file")
        if combos:
            await self._stage_combos(driver, combos, parser, table, keys, canonical if others else "")
        self.total += canonical_rows
        # The other rows, read back in row order and parsed as the Python reader would.
        last = 0
        filled = canonical_rows
        while others:
            rest = await driver.fetch(
                f"SELECT r.n, {', '.join(f'r.{c}' for c in cells)} FROM {_RAW} r "
                f"WHERE r.n > $1 AND NOT coalesce({canonical}, false) ORDER BY r.n LIMIT {CHUNK_ROWS}",
                last,
            )
            if not rest:
                break
            last = rest[-1][0]
            found = [
                row
                for r in rest
                if (row := tabular.row_of(table.header_row + r[0], [c or "" for c in list(r)[1:]], pos))
            ]
            filled += len(found)
            if filled > max_rows:
                raise ImportFileError(tabular.too_many_rows(max_rows), field="file")
            await self.feed([parser.parse(row) for row in found])
        await driver.execute("RELEASE SAVEPOINT training_import_plain")
        return True

    async def _stage_combos(
        self,
        driver: Any,
        combos: list[tuple[str, ...]],
        parser: _RowParser,
        table: tabular.Table,
        keys: list[str],
        canonical: str,
    ) -> None:
        """Judge each distinct (course, date, hours) text once and stage every row that has it.

        Each one goes through the row checks as row -(k+1), under an ID number of the right shape;
        its verdict and its errors are then those of every row that has it. ``canonical`` limits the
        rows to those with a canonical ID number ("" when every row has one).
        """
        probe = "1" * 18
        lines = [
            parser.parse(
                Row(
                    number=-(k + 1),
                    values={
                        "id_number": probe,
                        **{t: v.strip(tabular.BLANKS) for t, v in zip(_TEXTS, combo, strict=True)},
                    },
                )
            )
            for k, combo in enumerate(combos)
        ]
        await self._courses(lines)
        verdicts = self._check(lines, today())
        by_combo: dict[int, list[Error]] = {}
        kept: list[Error] = []
        for error in self.errors:
            (by_combo.setdefault(-error[0] - 1, []) if error[0] < 0 else kept).append(error)
        self.errors[:] = kept
        pos = table.positions
        name = f"coalesce(btrim(r.c{pos['name']}, {_BLANKS_SQL}), '')" if "name" in pos else "''"
        where = f" WHERE {canonical}" if canonical else ""
        columns = "row, id_number, name, course_id, year, category, attended_on, tenths, ok"
        select = f"r.n + $1, upper(r.c{pos['id_number']}), {name}"
        if len(combos) == 1 and not by_combo:
            # The usual sheet (one course, one day, one number of hours): no join.
            _row, _id, _name, course_id, year, category, attended_on, tenths, ok = verdicts[0]
            await driver.execute(
                f"INSERT INTO {_STAGE} ({columns}) SELECT {select}, $2::bigint, $3::integer, $4, $5::date, "
                f"$6::integer, $7::boolean FROM {_RAW} r{where}",
                table.header_row,
                course_id,
                year,
                category,
                attended_on,
                tenths,
                ok,
            )
            return
        await driver.execute(
            f"CREATE TEMPORARY TABLE {_COMBOS} (k integer, t0 text, t1 text, t2 text, t3 text, course_id bigint, "
            "year integer, category varchar(16), attended_on date, tenths integer, ok boolean) ON COMMIT DROP"
        )
        await driver.copy_records_to_table(
            _COMBOS,
            records=[(k, *combo, *v[3:]) for k, (combo, v) in enumerate(zip(combos, verdicts, strict=True))],
        )
        on = " AND ".join(f"k.t{i} = {key}" for i, key in enumerate(keys))
        await driver.execute(
            f"INSERT INTO {_STAGE} ({columns}) SELECT {select}, k.course_id, k.year, k.category, k.attended_on, "
            f"k.tenths, k.ok FROM {_RAW} r JOIN {_COMBOS} k ON {on}{where}",
            table.header_row,
        )
        if by_combo:
            bad = await driver.fetch(
                f"SELECT r.n + $1, k.k FROM {_RAW} r JOIN {_COMBOS} k ON {on} "
                f"WHERE NOT k.ok{' AND ' + canonical if canonical else ''}",
                table.header_row,
            )
            for row, k in bad:
                self.errors.extend(
                    (row, order, label, message) for _row, order, label, message in by_combo[k]
                )

    async def finish(self) -> None:
        """The checks against the database, set-based over the staged rows; then the figures."""
        conn = await self.db.connection()
        scope = self.principal.agency_path + "%"
        await conn.execute(_RESOLVE, {"scope": scope})
        for row, id_number in await conn.execute(_UNKNOWN):
            self._fail_row(
                row,
                "id_number",
                id_number_error(id_number)
                or f"未找到身份证号码为 {mask_id_number(id_number)} 的执法人员（或不在您的管理范围内）",
            )
        # Rows that passed every check so far but are rejected below: their hours do not count.
        dropped: dict[int, int] = {}
        for row, name, officer_name, tenths, ok in await conn.execute(_NAME_DIFFERS):
            if _same_name(name) != _same_name(officer_name):
                self._fail_row(
                    row, "name", f"姓名“{name}”与系统中该身份证号码的人员姓名“{officer_name}”不一致"
                )
                if ok:
                    dropped[row] = tenths or 0
        await self._twins(conn, dropped)
        if self._with_lines:
            await self._against_ledger(conn, dropped)
        count, tenths = (await conn.execute(_SUMS)).one()
        self.tenths = int(tenths or 0) - sum(dropped.values())
        await self._sample(conn, set(dropped), int(count or 0))

    async def _twins(self, conn: Any, dropped: dict[int, int]) -> None:
        groups: dict[tuple[Any, ...], list[tuple[int, int]]] = {}
        for row, officer_id, course_id, attended_on, tenths in await conn.execute(_TWINS):
            if row not in dropped:
                groups.setdefault((officer_id, course_id, attended_on), []).append((row, tenths or 0))
        for rows in groups.values():
            if len(rows) < 2:
                continue
            rows.sort()
            first = rows[0][0]
            for row, tenths in rows[1:]:
                self._fail_row(row, "id_number", f"与第{first}行重复（同一人员、同一课程、同一日期）")
                dropped[row] = tenths

    async def _against_ledger(self, conn: Any, dropped: dict[int, int]) -> None:
        """Lines already in the ledger for the same (officer, course, day): a live one makes the row a
        duplicate; only reversed ones give the row the next generation."""
        courses = ",".join(str(int(c)) for c in sorted(self._with_lines))
        found = await conn.execute(
            text(
                f"SELECT s.row, s.tenths, r.generation, EXISTS (SELECT 1 FROM training_records v "
                "WHERE v.corrects_id = r.id AND v.kind = 'reversal') "
                f"FROM {_ROWS} s JOIN training_records r ON r.course_id = s.course_id "
                "AND r.officer_id = s.officer_id AND r.attended_on = s.attended_on AND r.hours_tenths > 0 "
                f"WHERE s.ok AND s.officer_id IS NOT NULL AND s.course_id IN ({courses})"
            )
        )
        earlier: dict[int, tuple[int, list[tuple[int, bool]]]] = {}
        for row, tenths, generation, is_reversed in found:
            if row in dropped:
                continue
            earlier.setdefault(row, (tenths or 0, []))[1].append((generation, bool(is_reversed)))
        for row, (tenths, lines) in sorted(earlier.items()):
            generation = rules.next_generation(lines)
            if generation is None:
                self._fail_row(row, "id_number", "该人员此课程此日期的学时已登记，不能重复登记")
                dropped[row] = tenths
            else:
                self._generations[row] = generation

    async def _sample(self, conn: Any, dropped: set[int], good: int) -> None:
        bad = {e[0] for e in self.errors}
        want = SAMPLE_SIZE + len(dropped)
        rows = await conn.execute(
            text(
                "SELECT row, officer_name, id_number, officer_agency_id, course_id, attended_on, tenths "
                f"FROM {_ROWS} WHERE ok AND officer_id IS NOT NULL ORDER BY row LIMIT {min(want, good) or 1}"
            )
        )
        titles = {c.id: c.title for c in self._by_id.values() if c is not None}
        titles.update({c.id: c.title for cs in self._by_title.values() for c in cs})
        if self.default_course is not None:
            titles[self.default_course.id] = self.default_course.title
        for row, name, id_number, agency_id, course_id, attended_on, tenths in rows:
            if row in bad or len(self.sample) >= SAMPLE_SIZE:
                continue
            self.sample.append(
                ImportSampleRow(
                    row=row,
                    officer_name=name,
                    id_number=id_number
                    if agency_id == self.principal.agency_id
                    else mask_id_number(id_number),
                    course_id=course_id,
                    course_title=titles.get(course_id, ""),
                    attended_on=_day(attended_on),
                    hours=rules.hours_value(tenths),
                )
            )

    async def write(self, *, returning: bool = False) -> list[int]:
        """Every staged row into the ledger (one INSERT … SELECT, in key order) and the totals (one
        GROUP BY). Only when no row failed: the caller commits or rolls back."""
        assert not self.errors
        conn = await self.db.connection()
        if self._generations:
            await conn.execute(
                text(f"INSERT INTO {_GENERATIONS} (row, generation) VALUES (:row, :generation)"),
                [{"row": r, "generation": g} for r, g in self._generations.items()],
            )
        by_id, by_name = entered_by(self.principal)
        table = cast(Table, TrainingRecord.__table__)
        stmt = text(
            f"INSERT INTO training_records ({', '.join(INSERT_COLUMNS)}) "
            "SELECT s.officer_id, s.course_id, s.year, s.category, s.attended_on, s.tenths, "
            f"'{RecordKind.RECORD.value}', NULL, '', COALESCE(g.generation, 0), "
            "CAST(:batch_id AS BIGINT), CAST(:by_id AS BIGINT), :by_name, :at "
            f"FROM {_ROWS} s LEFT JOIN {_GENERATIONS} g ON g.row = s.row "
            "WHERE s.officer_id IS NOT NULL ORDER BY s.course_id, s.officer_id"
            + (" RETURNING id" if returning else "")
        ).bindparams(
            bindparam("by_name", type_=String()),
            bindparam("at", type_=table.c.entered_at.type),
        )
        params = {"batch_id": self.batch_id, "by_id": by_id, "by_name": by_name, "at": utcnow()}
        result = await conn.execute(stmt, params)
        ids: list[int] = [int(i) for i in result.scalars().all()] if returning else []
        self.written = len(ids) if returning else int(result.rowcount or 0)
        if self._dialect == "postgresql":
            updated = (await conn.execute(_TOTALS_UPDATE)).rowcount
            # As many totals updated as lines written: each line had its own officer's total, so
            # there is none to create (the anti-join would cost 0.1 s per 100 000 lines for nothing).
            if updated != self.written:
                await conn.execute(_TOTALS_NEW)
        else:
            await conn.execute(_TOTALS)
        return ids

    def row_errors(self) -> list[ImportRowError]:
        self.errors.sort(key=lambda e: (e[0], e[1]))
        return [ImportRowError(row=r, column=c, message=m) for r, _o, c, m in self.errors]

    @property
    def invalid(self) -> int:
        return len({e[0] for e in self.errors})


async def _async_chunks(chunks: Iterator[bytes | memoryview]) -> Any:
    for chunk in chunks:
        yield chunk


def _date_error(attended_on: dt.date, course: _Course, year: int, today_: dt.date) -> str | None:
    if attended_on.year != year:
        return f"培训日期 {attended_on.isoformat()} 不在 {year} 年度内"
    if not course.starts_on <= attended_on <= course.ends_on:
        return (
            f"培训日期 {attended_on.isoformat()} 不在课程起止日期"
            f"（{course.starts_on.isoformat()} 至 {course.ends_on.isoformat()}）内"
        )
    if attended_on > today_:
        return f"培训日期 {attended_on.isoformat()} 晚于今天，不能登记尚未完成的培训"
    return None


def _same_name(name: str) -> str:
    return "".join(name.split()).replace("·", "").replace("•", "")


def _chunks(items: Sequence[Any], size: int = 1000) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ================================================================= use cases: files


def _clean_filename(filename: str) -> str:
    name = PurePath((filename or "").replace("\\", "/")).name
    name = "".join(ch for ch in name if ch >= " " and ch != "\x7f").strip()
    return name[:200] or "未命名文件"


def _encoding_label(encoding: str | None) -> str | None:
    return {"utf-8-sig": "UTF-8", "gb18030": "GBK/GB18030", "utf-16": "UTF-16"}.get(encoding or "", encoding)


async def _default_course(db: AsyncSession, principal: Principal, course_id: int | None) -> _Course | None:
    if course_id is None:
        return None
    try:
        c, _agency = await course_get(db, principal, course_id)
    except NotFound as exc:
        raise ImportFileError("所选课程不存在或不在您的管理范围内", field="course_id") from exc
    return _Course(c.id, c.title, c.year, c.category, c.hours_tenths, c.starts_on, c.ends_on)


async def _run(
    db: AsyncSession,
    *,
    principal: Principal,
    data: bytes,
    filename: str,
    year: int,
    course_id: int | None,
    write: bool,
    batch_id: int | None,
    max_rows: int,
    max_bytes: int | None,
) -> tuple[_Ledger, ImportPreview]:
    default_course = await _default_course(db, principal, course_id)
    try:
        table = await asyncio.to_thread(
            read_table,
            data,
            filename,
            required=REQUIRED,
            aliases=COLUMNS,
            max_rows=max_rows,
            max_bytes=max_bytes,
        )
    except TableError as exc:
        raise ImportFileError(exc.message, field="file") from exc
    with table:
        if default_course is None and "course_id" not in table.columns and "course" not in table.columns:
            raise ImportFileError(
                f"表头（第{table.header_row}行）缺少“课程编号”或“课程名称”列；或在导入页面为整个文件选择一门课程",
                field="file",
            )

        def label(key: str) -> str:
            return table.columns.get(key) or COLUMNS[key][0]

        ledger = _Ledger(
            db=db,
            principal=principal,
            year=year,
            labels=label,
            default_course=default_course,
            batch_id=batch_id,
        )
        await ledger.open()
        parser = _RowParser(label, ledger.errors, today())
        plain = tabular.plain_csv(table, data) if ledger.plain else None
        if plain is not None and await ledger.stage_plain(data, plain, table, parser, max_rows):
            lines = []
        else:
            lines = await asyncio.to_thread(_next_lines, table.rows, CHUNK_ROWS, parser)
        while lines:
            # The next chunk is parsed in a worker thread while this one is checked and staged:
            # the database works (on its own CPU) while Python reads the sheet.
            upcoming = asyncio.ensure_future(asyncio.to_thread(_next_lines, table.rows, CHUNK_ROWS, parser))
            try:
                await ledger.feed(lines)
            except BaseException:
                with contextlib.suppress(BaseException):
                    await upcoming
                raise
            lines = await upcoming
        if ledger.total == 0:
            raise ImportFileError(f"文件只有表头（第{table.header_row}行），没有数据行", field="file")
        await ledger.finish()
        if write and not ledger.errors:
            await ledger.write()
        await ledger.close()
        preview = ImportPreview(
            filename=filename,
            sha256="",
            file_type=table.kind,
            encoding=_encoding_label(table.encoding),
            year=year,
            total_rows=ledger.total,
            valid_rows=ledger.total - ledger.invalid,
            invalid_rows=ledger.invalid,
            hours_total=rules.hours_value(ledger.tenths),
            errors=ledger.row_errors(),
            sample=ledger.sample,
            ignored_columns=table.ignored,
        )
    return ledger, preview


async def training_import_preview(
    db: AsyncSession,
    *,
    principal: Principal,
    data: bytes,
    filename: str,
    year: int | None = None,
    course_id: int | None = None,
    max_rows: int = MAX_IMPORT_ROWS,
    max_bytes: int | None = None,
) -> ImportPreview:
    """Check a sheet without writing: every bad row with its reason, counts, and the first good rows."""
    if not principal.is_admin:
        raise NotFound("页面不存在")
    filename = _clean_filename(filename)
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        done = await committed_batch(db, sha256)
        if done is not None:
            raise AlreadyImported(done)
        _ledger, preview = await _run(
            db,
            principal=principal,
            data=data,
            filename=filename,
            year=year or today().year,
            course_id=course_id,
            write=False,
            batch_id=None,
            max_rows=max_rows,
            max_bytes=max_bytes,
        )
    finally:
        await db.rollback()  # read-only: end the transaction (and SQLite's lock) now
    preview.sha256 = sha256
    return preview


async def training_import_commit(
    db: AsyncSession,
    *,
    principal: Principal,
    data: bytes,
    filename: str,
    year: int | None = None,
    course_id: int | None = None,
    source: str = "web",
    max_rows: int = MAX_IMPORT_ROWS,
    max_bytes: int | None = None,
) -> ImportResult:
    """Check the sheet and write every row in one transaction, or — when any row is bad — nothing.

    A rejected attempt is kept as a batch with outcome ``rejected`` (and its first errors), then
    ``ImportRejected`` is raised. ``AlreadyImported`` when a committed batch has the same file;
    ``Conflict`` when a concurrent import wrote one of the same records in between.
    """
    if not principal.is_admin:
        raise NotFound("页面不存在")
    filename = _clean_filename(filename)
    sha256 = hashlib.sha256(data).hexdigest()
    year = year or today().year
    by_id, by_name = entered_by(principal)
    kind = "xlsx" if data.startswith(b"PK") else "csv"
    try:
        done = await committed_batch(db, sha256)
        if done is not None:
            raise AlreadyImported(done)
        if (await db.connection()).dialect.name == "postgresql":
            # One import at a time: each writes and sums 100 000 lines chunk by chunk, and two at
            # once could lock the same officers' totals in opposite orders. (SQLite has one writer.)
            await db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _IMPORT_LOCK})
        # The batch row first: a concurrent commit of the same file waits on its unique hash.
        batch = TrainingImportBatch(
            agency_id=principal.agency_id or None,
            sha256=sha256,
            committed_sha256=sha256,
            filename=filename,
            file_type=kind,
            source=source,
            year=year,
            outcome="committed",
            rows_total=0,
            rows_imported=0,
            rows_rejected=0,
            hours_tenths=0,
            errors_json="[]",
            created_by_id=by_id,
            created_by_name=by_name,
        )
        db.add(batch)
        await db.flush()
        ledger, preview = await _run(
            db,
            principal=principal,
            data=data,
            filename=filename,
            year=year,
            course_id=course_id,
            write=True,
            batch_id=batch.id,
            max_rows=max_rows,
            max_bytes=max_bytes,
        )
        preview.sha256 = sha256
        if not preview.ok:
            await db.rollback()
            rejected_id = await _record_rejection(db, principal, preview, source)
            raise ImportRejected(preview, rejected_id)
        batch.file_type = preview.file_type
        batch.rows_total = preview.total_rows
        batch.rows_imported = ledger.written
        batch.hours_tenths = ledger.tenths
        await audit_record(
            db,
            actor=actor_of(principal),
            action="training.import",
            entity_type="training_import_batch",
            entity_id=batch.id,
            agency_id=principal.agency_id or None,
            data={
                "filename": filename,
                "sha256": sha256,
                "year": year,
                "rows": ledger.written,
                "hours": rules.format_hours(ledger.tenths),
                "source": source,
            },
        )
        await db.commit()
    except IntegrityError as exc:
        await db.rollback()
        again = await committed_batch(db, sha256)
        await db.rollback()
        if again is not None:
            raise AlreadyImported(again) from exc
        raise Conflict(
            "导入时发现有相同的学时记录刚刚被登记（可能有人同时导入了相同的签到表），本次未写入任何数据，请重新上传检查",
            field="file",
        ) from exc
    except BaseException:
        await db.rollback()
        raise
    return ImportResult(batch_id=batch.id, imported=ledger.written, preview=preview)


async def _record_rejection(
    db: AsyncSession, principal: Principal, preview: ImportPreview, source: str
) -> int:
    by_id, by_name = entered_by(principal)
    errors = [[e.row, e.column, e.message] for e in preview.errors[:STORED_ERRORS]]
    batch = TrainingImportBatch(
        agency_id=principal.agency_id or None,
        sha256=preview.sha256,
        committed_sha256=None,
        filename=preview.filename,
        file_type=preview.file_type,
        source=source,
        year=preview.year,
        outcome="rejected",
        rows_total=preview.total_rows,
        rows_imported=0,
        rows_rejected=preview.invalid_rows,
        hours_tenths=0,
        errors_json=json.dumps(errors, ensure_ascii=False),
        created_by_id=by_id,
        created_by_name=by_name,
    )
    db.add(batch)
    await db.flush()
    await audit_record(
        db,
        actor=actor_of(principal),
        action="training.import.reject",
        entity_type="training_import_batch",
        entity_id=batch.id,
        agency_id=principal.agency_id or None,
        data={
            "filename": preview.filename,
            "sha256": preview.sha256,
            "rows": preview.total_rows,
            "rejected_rows": preview.invalid_rows,
            "source": source,
        },
    )
    await db.commit()
    return batch.id


# ================================================================= use case: attendance typed in


async def attendance_add(
    db: AsyncSession, *, principal: Principal, course_id: int, data: AttendanceIn
) -> list[int]:
    """登记参训: officers by ID number (one a line), the course's date and hours unless given.

    Checked exactly like an imported sheet (line numbers for row numbers); all or nothing.
    Returns the new records' ids.
    """
    if not principal.is_admin:
        raise NotFound("页面不存在")
    course, agency = await course_get(db, principal, course_id)
    tenths: int | None = None
    if data.hours not in (None, ""):
        try:
            tenths = rules.parse_hours(str(data.hours))
        except ValueError as exc:
            raise DomainError(str(exc), field="hours") from exc
        if tenths > course.hours_tenths:
            raise DomainError(
                f"学时 {rules.format_hours(tenths)} 超过课程学时 {rules.format_hours(course.hours_tenths)}",
                field="hours",
            )
    if data.attended_on is not None and (msg := date_error(data.attended_on, course)):
        raise DomainError(msg, field="attended_on")
    errors: list[Error] = []
    parser = _RowParser(lambda _k: "身份证号码", errors, today())
    lines: list[_Line] = []
    for number, raw in enumerate(data.id_numbers, start=1):
        raw = raw.strip()
        if not raw:
            continue
        values = {"id_number": raw}
        line = parser.parse(Row(number=number, values=values))
        line.attended_on = data.attended_on
        line.tenths = tenths
        lines.append(line)
    if not lines:
        raise DomainError("请至少填写一个身份证号码", field="id_numbers")
    ledger = _Ledger(
        db=db,
        principal=principal,
        year=course.year,
        labels=lambda _k: "身份证号码",
        default_course=_Course(
            course.id,
            course.title,
            course.year,
            course.category,
            course.hours_tenths,
            course.starts_on,
            course.ends_on,
        ),
    )
    ledger.errors.extend(errors)
    try:
        await ledger.open()
        await ledger.feed(lines)
        await ledger.finish()
        if ledger.errors:
            raise AttendanceRejected(ledger.row_errors())
        new_ids = await ledger.write(returning=True)
        await ledger.close()
        await audit_record(
            db,
            actor=actor_of(principal),
            action="training.record.create",
            entity_type="training_course",
            entity_id=course.id,
            agency_id=principal.agency_id or agency.id,
            data={
                "course_id": course.id,
                "record_ids": sorted(new_ids),
                "hours": rules.format_hours(ledger.tenths),
            },
        )
        await db.commit()
    except IntegrityError as exc:
        await db.rollback()
        raise Conflict(
            "有学时记录刚刚被他人登记，本次未写入任何数据，请刷新后重试", field="id_numbers"
        ) from exc
    except BaseException:
        await db.rollback()
        raise
    return sorted(new_ids)


# ================================================================= staging (preview → commit)


def _stage_dir(principal: Principal) -> Path:
    return Path(app_settings.VAR_DIR) / "uploads" / "training-import" / str(principal.account_id)


def _stage_write(directory: Path, sha256: str, data: bytes, meta: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    cutoff = time.time() - STAGE_TTL_SECONDS
    for old in directory.iterdir():
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < cutoff:
                old.unlink()
    tmp = directory / f".{sha256}.{os.getpid()}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, directory / sha256)
    (directory / f"{sha256}.json").write_text(json.dumps(meta, ensure_ascii=False))


def _stage_read(directory: Path, sha256: str) -> tuple[bytes, dict[str, Any]] | None:
    try:
        data = (directory / sha256).read_bytes()
        meta = json.loads((directory / f"{sha256}.json").read_text())
    except (OSError, ValueError):
        return None
    if hashlib.sha256(data).hexdigest() != sha256 or not isinstance(meta, dict):
        return None
    return data, meta


def _stage_remove(directory: Path, sha256: str) -> None:
    for path in (directory / sha256, directory / f"{sha256}.json"):
        with contextlib.suppress(OSError):
            path.unlink()


async def stage_upload(principal: Principal, sha256: str, data: bytes, meta: dict[str, Any]) -> None:
    await asyncio.to_thread(_stage_write, _stage_dir(principal), sha256, data, meta)


async def staged_upload(principal: Principal, sha256: str) -> tuple[bytes, dict[str, Any]] | None:
    if not _SHA256.match(sha256):
        return None
    return await asyncio.to_thread(_stage_read, _stage_dir(principal), sha256)


async def unstage_upload(principal: Principal, sha256: str) -> None:
    if _SHA256.match(sha256):
        await asyncio.to_thread(_stage_remove, _stage_dir(principal), sha256)


def template_csv() -> bytes:
    """The import template: headers only, UTF-8 with a BOM so that Excel shows the Chinese."""
    return ("\ufeff" + ",".join(TEMPLATE_HEADERS) + "\r\n").encode("utf-8")


# ================================================================= use case: the operator's command


@dataclass
class CommandOutcome:
    """What ``app training import`` reports: the checked file, or why it could not be read."""

    ok: bool
    dry_run: bool
    report: ImportReport | None = None
    error: str | None = None

    def json(self) -> str:
        body: dict[str, Any] = {"ok": self.ok, "dry_run": self.dry_run, "error": self.error}
        if self.report is not None:
            body.update(msgspec.to_builtins(self.report))
        return json.dumps(body, ensure_ascii=False, indent=2)

    def lines(self) -> list[str]:
        if self.report is None:
            return [f"导入失败：{self.error}"]
        r = self.report
        kind = "Excel（.xlsx）" if r.file_type == "xlsx" else f"CSV（{r.encoding}）"
        out = [
            f"文件：{r.filename}（{kind}） 年度：{r.year} SHA-256：{r.sha256}",
            f"数据行：{r.total_rows} 检查通过：{r.valid_rows} 有错误：{r.invalid_rows} 学时合计：{r.hours_total:g}",
        ]
        out += [f"第{e.row}行 {e.column}：{e.message}" for e in r.errors]
        if not r.ok:
            out.append(f"有 {r.invalid_rows} 行错误，未写入任何数据。")
        elif self.dry_run:
            out.append("全部检查通过（--dry-run，未写入）。")
        else:
            out.append(f"已导入 {r.imported} 条学时记录（批次 {r.batch_id}）。")
        return out


async def _command_principal(db: AsyncSession, username: str | None) -> Principal:
    if username is None:
        return system_principal()
    row = (
        await db.execute(
            select(Account, Agency)
            .join(Agency, Agency.id == Account.agency_id)
            .where(func.lower(Account.username) == username.strip().lower())
        )
    ).one_or_none()
    if row is None or not row[0].is_active:
        raise DomainError(f"账号“{username}”不存在或已停用", field="as_user")
    account, agency = row
    role = Role(account.role)
    if role not in (Role.AGENCY_ADMIN, Role.AUTHORITY_ADMIN):
        raise DomainError(f"账号“{username}”不是管理员，不能导入学时", field="as_user")
    return Principal(
        account_id=account.id,
        username=account.username,
        display_name=account.display_name,
        role=role,
        agency_id=agency.id,
        agency_path=agency.path,
        agency_name=agency.name,
        officer_id=account.officer_id,
        must_change_password=False,
    )


async def command_import(
    *,
    data: bytes,
    filename: str,
    dry_run: bool,
    year: int | None,
    course_id: int | None,
    username: str | None,
    database_url: str | None = None,
) -> CommandOutcome:
    """The web import for operators: same checks, same all-or-nothing commit, source ``cli``."""
    from app.db import make_engine, make_sessionmaker
    from app.settings import get_settings

    engine = make_engine(database_url or get_settings().database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            try:
                principal = await _command_principal(db, username)
                kw: dict[str, Any] = {
                    "principal": principal,
                    "data": data,
                    "filename": filename,
                    "year": year,
                    "course_id": course_id,
                }
                if dry_run:
                    preview = await training_import_preview(db, **kw)
                    return CommandOutcome(
                        ok=preview.ok,
                        dry_run=True,
                        report=_as_report(preview, dry_run=True, imported=0, batch_id=None),
                    )
                try:
                    result = await training_import_commit(db, source="cli", **kw)
                except ImportRejected as exc:
                    report = _as_report(exc.preview, dry_run=False, imported=0, batch_id=exc.batch_id)
                    return CommandOutcome(ok=False, dry_run=False, report=report)
                report = _as_report(
                    result.preview, dry_run=False, imported=result.imported, batch_id=result.batch_id
                )
                return CommandOutcome(ok=True, dry_run=False, report=report)
            except DomainError as exc:
                return CommandOutcome(ok=False, dry_run=dry_run, error=exc.message)
    finally:
        await engine.dispose()


def _as_report(preview: ImportPreview, *, dry_run: bool, imported: int, batch_id: int | None) -> ImportReport:
    return ImportReport(
        **{k: getattr(preview, k) for k in preview.__struct_fields__},
        dry_run=dry_run,
        imported=imported,
        batch_id=batch_id,
    )


__all__ = [
    "COLUMNS",
    "MAX_IMPORT_ROWS",
    "AlreadyImported",
    "AttendanceRejected",
    "ImportFileError",
    "ImportRejected",
    "ImportResult",
    "attendance_add",
    "command_import",
    "training_import_commit",
    "training_import_preview",
]
