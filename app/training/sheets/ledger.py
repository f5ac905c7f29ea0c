"""The set-based ledger writer: staged rows judged by a handful of joins, then written in one go.

Rows are staged in a temporary table chunk by chunk, then judged by a handful of joins (officers,
twins in the file, lines already in the ledger) and, when every row is good, written by one
INSERT … SELECT and one GROUP BY into the yearly totals — inside the caller's transaction: the
ledger never commits, and writes nothing unless asked to after every row passed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency
from app.accounts.rules import id_number_error, mask_id_number
from app.lib import imports
from app.lib.chunks import chunks
from app.lib.clock import today, utcnow
from app.lib.imports import ImportRowError, RowFault
from app.lib.security import Principal
from app.training import rules
from app.training.access import course_visible, entered_by
from app.training.models import TrainingCourse, TrainingRecord
from app.training.rules import RecordKind
from app.training.schemas import ImportSampleRow
from app.training.sheets import sql
from app.training.sheets.format import ORDER, SAMPLE_SIZE
from app.training.sheets.rows import Line


@dataclass(frozen=True, slots=True)
class Course:
    """What the checks need of a course."""

    id: int
    title: str
    year: int
    category: str
    tenths: int
    starts_on: dt.date
    ends_on: dt.date

    @classmethod
    def of(cls, c: TrainingCourse) -> Course:
        return cls(c.id, c.title, c.year, c.category, c.hours_tenths, c.starts_on, c.ends_on)


@dataclass
class Ledger:
    """Checks an import set-based and, when every row is good, writes it.

    What needs no database (the text of each cell, the course of each row, its date and hours) is
    judged in Python as the rows stream in (``feed``); only the rows with a usable ID number are
    staged. ``finish`` judges the staged rows against the officers and the ledger; ``write`` appends them.
    """

    db: AsyncSession
    principal: Principal
    year: int
    labels: Callable[[str], str]
    default_course: Course | None = None
    batch_id: int | None = None
    errors: list[RowFault] = field(default_factory=list)
    total: int = 0
    tenths: int = 0
    sample: list[ImportSampleRow] = field(default_factory=list)
    written: int = 0
    dialect: str = ""
    _by_id: dict[int, Course | None] = field(default_factory=dict)
    _by_title: dict[str, list[Course]] = field(default_factory=dict)
    _date_errors: dict[tuple[int, dt.date], str | None] = field(default_factory=dict)
    _with_lines: set[int] = field(default_factory=set)
    """Courses that had ledger lines before this import (only those need a look at the ledger)."""
    _checked: set[int] = field(default_factory=set)
    _generations: dict[int, int] = field(default_factory=dict)
    _day_text: dict[dt.date, str] = field(default_factory=dict)

    def fail(self, line: Line, key: str, message: str) -> None:
        line.bad = True
        self.errors.append((line.row, ORDER[key], self.labels(key), message))

    def _fail_row(self, row: int, key: str, message: str) -> None:
        self.errors.append((row, ORDER[key], self.labels(key), message))

    async def open(self) -> None:
        conn = await self.db.connection()
        self.dialect = conn.dialect.name
        if self.dialect == "postgresql":
            # The sorts of a 100 000-row import (key order for the ledger, GROUP BY for the totals)
            # then stay in memory instead of spilling to disk: for this transaction only.
            await conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
        for statement in sql.stage_ddl(self.dialect):
            await conn.exec_driver_sql(statement)

    async def close(self) -> None:
        """Drop the scratch tables (PostgreSQL drops them at the end of the transaction anyway)."""
        if self.dialect == "sqlite":
            conn = await self.db.connection()
            for name in (sql.STAGE, sql.ROWS, sql.GENERATIONS):
                await conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")

    async def resolve_courses(self, lines: list[Line]) -> None:
        """Load the courses the lines name (by number or title) that are not known yet."""
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
        for some_ids in chunks(ids):
            for r in await self.db.execute(base.where(TrainingCourse.id.in_(some_ids))):
                self._by_id[r.id] = Course(*r)
        for i in ids:
            self._by_id.setdefault(i, None)
        for some_titles in chunks(titles):
            found = await self.db.execute(
                base.where(TrainingCourse.title.in_(some_titles), TrainingCourse.year == self.year)
            )
            for r in found:
                self._by_title.setdefault(r.title, []).append(Course(*r))
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

    def _course_for(self, line: Line) -> Course | None:
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

    def judge(self, lines: list[Line], now_day: dt.date) -> list[tuple[Any, ...]]:
        """The checks that need no officer: course, year, date, hours. Returns the rows to stage."""
        year = self.year
        fail = self.fail
        date_errors = self._date_errors
        sqlite = self.dialect == "sqlite"
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
                        message = date_errors[key] = rules.attendance_date_error(
                            attended_on,
                            starts_on=course.starts_on,
                            ends_on=course.ends_on,
                            today=now_day,
                            year=year,
                        )
                    if message is not None:
                        fail(line, "attended_on", message)
                tenths = course.tenths
                if line.tenths is not None:
                    tenths = line.tenths
                    if message := rules.hours_over_course(tenths, course.tenths):
                        fail(line, "hours", message)
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

    async def feed(self, lines: list[Line]) -> None:
        """Judge a chunk of parsed rows without the officers, and stage it."""
        if not lines:
            return
        self.total += len(lines)
        await self.resolve_courses(lines)
        staged = self.judge(lines, today())
        if not staged:
            return
        conn = await self.db.connection()
        if self.dialect == "postgresql":
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            await driver.copy_records_to_table(sql.STAGE, records=staged, columns=list(sql.STAGE_COLUMNS))
        else:
            await conn.exec_driver_sql(
                f"INSERT INTO {sql.STAGE} VALUES ({', '.join('?' for _ in sql.STAGE_COLUMNS)})", staged
            )

    async def finish(self) -> None:
        """The checks against the database, set-based over the staged rows; then the figures."""
        conn = await self.db.connection()
        scope = self.principal.agency_path + "%"
        await conn.execute(sql.RESOLVE, {"scope": scope})
        for row, id_number in await conn.execute(sql.UNKNOWN):
            self._fail_row(
                row,
                "id_number",
                id_number_error(id_number)
                or f"未找到身份证号码为 {mask_id_number(id_number)} 的执法人员（或不在您的管理范围内）",
            )
        # Rows that passed every check so far but are rejected below: their hours do not count.
        dropped: dict[int, int] = {}
        for row, name, officer_name, tenths, ok in await conn.execute(sql.NAME_DIFFERS):
            if _same_name(name) != _same_name(officer_name):
                self._fail_row(
                    row, "name", f"姓名“{name}”与系统中该身份证号码的人员姓名“{officer_name}”不一致"
                )
                if ok:
                    dropped[row] = tenths or 0
        await self._twins(conn, dropped)
        if self._with_lines:
            await self._against_ledger(conn, dropped)
        count, tenths = (await conn.execute(sql.SUMS)).one()
        self.tenths = int(tenths or 0) - sum(dropped.values())
        await self._sample(conn, set(dropped), int(count or 0))

    async def _twins(self, conn: Any, dropped: dict[int, int]) -> None:
        groups: dict[tuple[Any, ...], list[tuple[int, int]]] = {}
        for row, officer_id, course_id, attended_on, tenths in await conn.execute(sql.TWINS):
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
        found = await conn.execute(sql.earlier_lines(list(self._with_lines)))
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
        rows = await conn.execute(sql.first_good_rows(min(want, good) or 1))
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
        GROUP BY). Only when no row failed; the caller's transaction keeps or drops it all."""
        assert not self.errors
        conn = await self.db.connection()
        if self._generations:
            await conn.execute(
                sql.GENERATIONS_INSERT,
                [{"row": r, "generation": g} for r, g in self._generations.items()],
            )
        by_id, by_name = entered_by(self.principal)
        table = cast(Table, TrainingRecord.__table__)
        stmt = sql.ledger_insert(
            RecordKind.RECORD.value, returning=returning, at_type=table.c.entered_at.type
        )
        params = {"batch_id": self.batch_id, "by_id": by_id, "by_name": by_name, "at": utcnow()}
        result = await conn.execute(stmt, params)
        ids: list[int] = [int(i) for i in result.scalars().all()] if returning else []
        self.written = len(ids) if returning else int(result.rowcount or 0)
        if self.dialect == "postgresql":
            updated = (await conn.execute(sql.TOTALS_UPDATE)).rowcount
            # As many totals updated as lines written: each line had its own officer's total, so
            # there is none to create (the anti-join would cost 0.1 s per 100 000 lines for nothing).
            if updated != self.written:
                await conn.execute(sql.TOTALS_NEW)
        else:
            await conn.execute(sql.TOTALS)
        return ids

    def row_errors(self) -> list[ImportRowError]:
        return imports.row_errors(self.errors)

    @property
    def invalid(self) -> int:
        return len({e[0] for e in self.errors})


def _day(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _same_name(name: str) -> str:
    return "".join(name.split()).replace("·", "").replace("•", "")


__all__ = ["Course", "Ledger"]
