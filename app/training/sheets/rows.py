"""Sheet rows into lines: the checks that need no database. Pure; runs off the event loop."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from app.accounts.rules import id_number_error
from app.lib.cells import parse_date
from app.lib.imports import ImportFileError, RowFault
from app.lib.tabular import Row, TableError
from app.training import rules
from app.training.sheets.format import ORDER

_SCI_NOTATION = re.compile(r"^\d(\.\d+)?[eE]\+?\d+$")


@dataclass(slots=True)
class Line:
    row: int
    id_number: str
    name: str
    course_id: int | None
    course_title: str
    attended_on: dt.date | None
    tenths: int | None
    bad: bool = False
    raw_date: str = ""


"""(row, column order, column label, message)"""


_ID_SHAPE = re.compile(r"^\d{17}[\dX]$")
_EXCEL_NUMBER = "身份证号码在 Excel 中被存成了数字，末几位已丢失：请把该列设置为“文本”格式后重新录入"


class RowParser:
    """Turns sheet rows into lines, checking what needs no database. Pure; runs off the event loop.

    Dates, hours and course titles repeat on almost every row of a sheet, so each distinct text is
    parsed once. An ID number of the right shape is looked up as it is; the full check (check
    digit, birth date) runs only for one that matches no officer, to say why.
    """

    def __init__(self, label: Callable[[str], str], errors: list[RowFault], today_: dt.date) -> None:
        self.label = label
        self.errors = errors
        self.today = today_
        self._titles: dict[str, str] = {}
        self._dates: dict[str, dt.date | None] = {}
        self._hours: dict[str, int | str] = {}

    def parse(self, row: Row) -> Line:
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
                attended_on = self._dates[raw_date] = parse_date(raw_date)
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

        return Line(
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


def next_lines(rows: Iterator[Row], size: int, parser: RowParser) -> list[Line]:
    out: list[Line] = []
    parse = parser.parse
    try:
        for row in rows:
            out.append(parse(row))
            if len(out) >= size:
                break
    except TableError as exc:
        raise ImportFileError(exc.message, field="file") from exc
    return out


__all__ = ["Line", "RowParser", "next_lines"]
