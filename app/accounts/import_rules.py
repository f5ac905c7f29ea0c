"""The officer import's file format and every check that needs no database (pure, CPU-bound).

``parse`` reads a CSV (UTF-8 or GBK) or XLSX file with ``app.lib.tabular`` and checks each row:
every bad one is reported with its spreadsheet row number, the column and the reason.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from app.accounts import rules
from app.lib.cells import parse_date
from app.lib.enums import LABELS, LabeledEnum, Post, StaffType
from app.lib.imports import ImportFileError, RowFault
from app.lib.tabular import Row, TableError, read_table

COLUMNS: dict[str, list[str]] = {
    "name": ["姓名"],
    "id_number": ["身份证号码", "身份证号", "公民身份号码", "身份证"],
    "agency": ["单位", "所在单位", "单位名称", "工作单位"],
    "staff_type": ["人员性质", "人员类别", "编制性质"],
    "post": ["岗位", "岗位类别"],
    "field": ["执法类别", "执法领域"],
    "area": ["执法区域"],
    "phone": ["联系电话", "手机号码", "手机", "电话"],
    "started_on": ["任职起始日期", "任职日期"],
}
"""canonical key → accepted headers; the first one is the template's and the one named in messages."""


REQUIRED = ["name", "id_number", "agency", "staff_type", "post", "field"]


TEMPLATE_HEADERS = [names[0] for names in COLUMNS.values()]


MAX_IMPORT_ROWS = 100_000


_SCI_NOTATION = re.compile(r"^\d(\.\d+)?[eE]\+?\d+$")


_PHONE = re.compile(r"^[0-9+\-() ]{0,20}$")


@dataclass(slots=True)
class ImportRecord:
    row: int
    name: str
    id_number: str  # normalised; "" when invalid
    agency_name: str
    staff_type: str
    post: str
    field: str
    area: str
    phone: str
    started_on: dt.date | None
    bad: bool = False
    agency_id: int = 0


@dataclass
class ParsedFile:
    """What the file says, checked without the database (runs in a worker thread)."""

    kind: str
    encoding: str | None
    columns: dict[str, str]
    ignored: list[str]
    records: list[ImportRecord]
    errors: list[RowFault]
    column_order: dict[str, int]


def _choices(enum: type[LabeledEnum]) -> str:
    return "、".join(LABELS[m] for m in enum)


def _enum_value(enum: type[LabeledEnum], raw: str) -> str | None:
    member = enum.from_label_or_value(raw)
    if member is None and enum is Post and raw and not raw.endswith("岗位"):
        member = enum.from_label_or_value(raw + "岗位")  # "执法" for "执法岗位"
    return None if member is None else member.value


def _enum_cell(enum: type[LabeledEnum], raw: str, what: str) -> tuple[str | None, str]:
    """A required choice column: (the member's value, "") or (None, why the cell is refused)."""
    if not raw:
        return None, f"{what}不能为空"
    value = _enum_value(enum, raw)
    if value is None:
        return None, f"{what}“{raw}”无效，应为：{_choices(enum)}"
    return value, ""


def parse_file(
    data: bytes, filename: str, *, today: dt.date, max_rows: int, max_bytes: int | None
) -> ParsedFile:
    """Read the file and apply every rule that needs no database. Pure; CPU-bound."""
    try:
        table = read_table(
            data, filename, required=REQUIRED, aliases=COLUMNS, max_rows=max_rows, max_bytes=max_bytes
        )
    except TableError as exc:
        raise ImportFileError(exc.message, field="file") from exc
    order = {k: i for i, k in enumerate(COLUMNS)}
    errors: list[RowFault] = []
    records: list[ImportRecord] = []
    first_row_of: dict[str, int] = {}
    # The same few labels repeat on every row: keep one string object each (memory on big files).
    shared: dict[str, str] = {}
    try:
        with table:
            for row in table:
                record = _check_row(row, table.label, order, errors, first_row_of, today, shared)
                records.append(record)
    except TableError as exc:
        raise ImportFileError(exc.message, field="file") from exc
    if not records:
        raise ImportFileError(f"文件只有表头（第{table.header_row}行），没有数据行", field="file")
    return ParsedFile(
        kind=table.kind,
        encoding=table.encoding,
        columns=table.columns,
        ignored=table.ignored,
        records=records,
        errors=errors,
        column_order=order,
    )


def _check_row(
    row: Row,
    label: Any,
    order: dict[str, int],
    errors: list[RowFault],
    first_row_of: dict[str, int],
    today: dt.date,
    shared: dict[str, str],
) -> ImportRecord:
    n = row.number
    bad = False

    def fail(key: str, message: str) -> None:
        nonlocal bad
        bad = True
        errors.append((n, order[key], label(key), message))

    name = row.get("name")
    if msg := rules.name_error(name):
        fail("name", msg)

    raw_id = row.get("id_number").lstrip("'")
    id_number = ""
    if "id_number" in row.lossy or _SCI_NOTATION.match(raw_id):
        fail(
            "id_number",
            "身份证号码在 Excel 中被存成了数字，末几位已丢失：请把该列设置为“文本”格式后重新录入",
        )
    elif msg := rules.id_number_error(raw_id, today=today):
        fail("id_number", msg)
    else:
        id_number = rules.normalize_id_number(raw_id)
        first = first_row_of.setdefault(id_number, n)
        if first != n:
            fail("id_number", f"身份证号码与第{first}行重复（第{first}行和第{n}行是同一人，只能保留一行）")

    agency_name = row.get("agency")
    if not agency_name:
        fail("agency", "单位不能为空")

    staff_type, msg = _enum_cell(StaffType, row.get("staff_type"), "人员性质")
    if msg:
        fail("staff_type", msg)

    post, msg = _enum_cell(Post, row.get("post"), "岗位")
    if msg:
        fail("post", msg)

    field_ = row.get("field")
    if not field_:
        fail("field", "执法类别不能为空")

    area = row.get("area")
    if len(area) > 100:
        fail("area", "执法区域不能超过100个字")

    phone = row.get("phone")
    if not _PHONE.match(phone):
        fail("phone", "联系电话格式不正确：只能包含数字、+、-、括号，最多20位")

    started_on: dt.date | None = None
    if raw_start := row.get("started_on"):
        started_on = parse_date(raw_start)
        if started_on is None:
            fail("started_on", f"任职起始日期“{raw_start}”无法识别，应为如 2024-03-01 的日期")
        elif started_on > today:
            fail("started_on", "任职起始日期不能晚于今天")

    return ImportRecord(
        row=n,
        name=name.strip(),
        id_number=id_number,
        agency_name=shared.setdefault(agency_name, agency_name),
        staff_type=staff_type or "",
        post=post or "",
        field=shared.setdefault(field_, field_),
        area=shared.setdefault(area, area) if len(area) <= 20 else area,
        phone=phone,
        started_on=started_on,
        bad=bad,
    )
