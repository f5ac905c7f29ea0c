"""Bulk officer import (CSV in UTF-8 or GBK, XLSX): preview every bad row, then all or nothing.

The use cases (``officer_import_preview``, ``officer_import_commit``) read the file with
``app.lib.tabular``, check every row and report each bad one with its spreadsheet row number, the
column and the reason. Checks against the database are set-based (agencies and existing ID numbers
are looked up in batches), so a file of 100 000 rows costs a few hundred queries, not one per row.
A commit re-validates the same bytes and writes nothing unless every row is good; the officers and
their first postings go in with bulk Core inserts in one transaction, with one audit event.

The HTML pages carry the uploaded file from the preview to the commit on the server (staged under
``VAR_DIR/uploads``, named by its SHA-256): the browser only sends the hash back, never the data.
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Annotated, Any, TypeVar, cast
from urllib.parse import quote

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State, UploadFile
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body, QueryParameter
from litestar.response import Redirect, Response, Template
from sqlalchemy import Table as SATable
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import settings as app_settings
from app.accounts import rules
from app.accounts.models import Agency, Officer, PostingHistory
from app.accounts.services import agency_policies, agency_tree
from app.lib.audit import AuditEvent, audit_record
from app.lib.clock import today as clock_today
from app.lib.clock import utcnow
from app.lib.enums import LABELS, EmploymentStatus, LabeledEnum, Post, StaffType
from app.lib.errors import Conflict, DomainError, Forbidden, size_text
from app.lib.guards import require_admin
from app.lib.policy import DEFAULT_POLICY, Policy
from app.lib.security import Principal
from app.lib.tabular import Row, TableError, read_table
from app.lib.web import principal_of, render

# ================================================================= the file format

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
SAMPLE_SIZE = 20
HTML_ERROR_LIMIT = 5000
IN_CHUNK = 1000  # bound of every IN (...) list and of every bulk insert statement
STAGE_TTL_SECONDS = 24 * 3600

_SCI_NOTATION = re.compile(r"^\d(\.\d+)?[eE]\+?\d+$")
_PHONE = re.compile(r"^[0-9+\-() ]{0,20}$")
_DATE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?$")
_DATE_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

T = TypeVar("T")


# ================================================================= schemas


class ImportRowError(msgspec.Struct, kw_only=True):
    row: int
    """the row number as the spreadsheet shows it (1-based, header included)"""
    column: str
    """the column's header as written in the file"""
    message: str


class ImportSampleRow(msgspec.Struct, kw_only=True):
    row: int
    name: str
    id_number: str
    gender: str
    birth_date: dt.date
    agency_name: str
    staff_type: StaffType
    staff_type_label: str
    post: Post
    post_label: str
    field: str
    area: str
    phone: str
    started_on: dt.date


class ImportPreview(msgspec.Struct, kw_only=True):
    filename: str
    sha256: str
    file_type: str
    encoding: str | None
    total_rows: int
    valid_rows: int
    invalid_rows: int
    errors: list[ImportRowError]
    sample: list[ImportSampleRow]
    ignored_columns: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors and self.total_rows > 0


class ImportReport(ImportPreview, kw_only=True):
    """The JSON answer: the preview, and how many officers were written (0 for a dry run)."""

    dry_run: bool
    imported: int


class ImportResult(msgspec.Struct, kw_only=True):
    filename: str
    sha256: str
    imported: int
    agencies: int
    audit_event_id: int
    preview: ImportPreview


class ImportRejected(DomainError):
    """Some rows are bad: nothing is written. ``preview`` lists every one of them."""

    status_code = 422
    title = "导入文件有错误"

    def __init__(self, preview: ImportPreview) -> None:
        n = preview.invalid_rows
        super().__init__(f"文件中有 {n} 行数据有错误，未导入任何人员，请修改后重新上传", field="file")
        self.preview = preview


class ImportFileError(DomainError):
    """The file as a whole cannot be read (type, encoding, header, size...)."""

    title = "文件无法导入"


# ================================================================= validation


@dataclass(slots=True)
class _Record:
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
class _Parsed:
    """What the file says, checked without the database (runs in a worker thread)."""

    kind: str
    encoding: str | None
    columns: dict[str, str]
    ignored: list[str]
    records: list[_Record]
    errors: list[tuple[int, int, str]]  # (row, column order, message)
    column_order: dict[str, int]


@dataclass
class _Validated:
    preview: ImportPreview
    records: list[_Record] = field(repr=False)


def _choices(enum: type[LabeledEnum]) -> str:
    return "、".join(LABELS[m] for m in enum)


def _enum_value(enum: type[LabeledEnum], raw: str) -> str | None:
    member = enum.from_label_or_value(raw)
    if member is None and enum is Post and raw and not raw.endswith("岗位"):
        member = enum.from_label_or_value(raw + "岗位")  # "执法" for "执法岗位"
    return None if member is None else member.value


def _parse_date(raw: str) -> dt.date | None:
    m = _DATE.match(raw) or _DATE_COMPACT.match(raw)
    if not m:
        return None
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def _parse(data: bytes, filename: str, *, today: dt.date, max_rows: int, max_bytes: int | None) -> _Parsed:
    """Read the file and apply every rule that needs no database. Pure; CPU-bound."""
    try:
        table = read_table(
            data, filename, required=REQUIRED, aliases=COLUMNS, max_rows=max_rows, max_bytes=max_bytes
        )
    except TableError as exc:
        raise ImportFileError(exc.message, field="file") from exc
    order = {k: i for i, k in enumerate(COLUMNS)}
    errors: list[tuple[int, int, str]] = []
    records: list[_Record] = []
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
    return _Parsed(
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
    errors: list[tuple[int, int, str]],
    first_row_of: dict[str, int],
    today: dt.date,
    shared: dict[str, str],
) -> _Record:
    n = row.number
    bad = False

    def fail(key: str, message: str) -> None:
        nonlocal bad
        bad = True
        errors.append((n, order[key], f"{label(key)}\x00{message}"))

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

    staff_raw = row.get("staff_type")
    staff_type = _enum_value(StaffType, staff_raw) if staff_raw else None
    if not staff_raw:
        fail("staff_type", "人员性质不能为空")
    elif staff_type is None:
        fail("staff_type", f"人员性质“{staff_raw}”无效，应为：{_choices(StaffType)}")

    post_raw = row.get("post")
    post = _enum_value(Post, post_raw) if post_raw else None
    if not post_raw:
        fail("post", "岗位不能为空")
    elif post is None:
        fail("post", f"岗位“{post_raw}”无效，应为：{_choices(Post)}")

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
        started_on = _parse_date(raw_start)
        if started_on is None:
            fail("started_on", f"任职起始日期“{raw_start}”无法识别，应为如 2024-03-01 的日期")
        elif started_on > today:
            fail("started_on", "任职起始日期不能晚于今天")

    return _Record(
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


def _chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class _AgencyRow:
    id: int
    name: str
    path: str
    is_active: bool


async def _agencies_by_name(db: AsyncSession, names: list[str]) -> dict[str, _AgencyRow]:
    found: dict[str, _AgencyRow] = {}
    for chunk in _chunks(names):
        rows = await db.execute(
            select(Agency.id, Agency.name, Agency.path, Agency.is_active).where(Agency.name.in_(chunk))
        )
        for r in rows:
            found[r.name] = _AgencyRow(r.id, r.name, r.path, r.is_active)
    return found


async def _policies(db: AsyncSession, agencies: list[_AgencyRow]) -> dict[int, Policy]:
    return await agency_policies(db, {a.id: a.path for a in agencies})


async def _existing_id_numbers(db: AsyncSession, id_numbers: list[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(id_numbers):
        found.update((await db.scalars(select(Officer.id_number).where(Officer.id_number.in_(chunk)))).all())
    return found


async def _validate(
    db: AsyncSession,
    *,
    principal: Principal,
    data: bytes,
    filename: str,
    max_rows: int,
    max_bytes: int | None,
) -> _Validated:
    if not principal.is_admin:
        raise Forbidden("只有管理员可以批量导入执法人员")
    today = clock_today()
    sha256 = hashlib.sha256(data).hexdigest()
    # Parsing 100 000 rows takes a second or two of CPU: not on the event loop.
    parsed = await asyncio.to_thread(
        _parse, data, filename, today=today, max_rows=max_rows, max_bytes=max_bytes
    )
    records = parsed.records
    errors = parsed.errors
    order = parsed.column_order
    label = parsed.columns.get

    def fail(record: _Record, key: str, message: str) -> None:
        record.bad = True
        errors.append((record.row, order[key], f"{label(key, COLUMNS[key][0])}\x00{message}"))

    names = sorted({r.agency_name for r in records if r.agency_name})
    agencies = await _agencies_by_name(db, names)
    in_scope = {
        name: a for name, a in agencies.items() if principal.can_see_agency_path(a.path) and a.is_active
    }
    policies = await _policies(db, list(in_scope.values()))
    existing = await _existing_id_numbers(db, sorted({r.id_number for r in records if r.id_number}))

    for record in records:
        if record.id_number and record.id_number in existing:
            fail(record, "id_number", "该身份证号码已登记（系统中已有此人），不能重复导入")
        if not record.agency_name:
            continue
        agency = in_scope.get(record.agency_name)
        if agency is None:
            known = agencies.get(record.agency_name)
            if known is not None and not known.is_active and principal.can_see_agency_path(known.path):
                fail(record, "agency", f"单位“{record.agency_name}”已停用")
            else:
                # Out of scope and unknown read the same: a sibling's existence is not revealed.
                fail(
                    record,
                    "agency",
                    f"单位“{record.agency_name}”不存在或不在您的管理范围内（须与系统中的单位全称一致）",
                )
            continue
        record.agency_id = agency.id
        policy = policies[agency.id]
        if record.field and record.field not in policy.enforcement_fields:
            fail(
                record,
                "field",
                f"执法类别“{record.field}”不在本地区的执法类别目录中，应为：{'、'.join(policy.enforcement_fields)}",
            )

    errors.sort(key=lambda e: (e[0], e[1]))
    row_errors = []
    for row, _order, text in errors:
        column, message = text.split("\x00", 1)
        row_errors.append(ImportRowError(row=row, column=column, message=message))
    good = [r for r in records if not r.bad]
    names_by_id = {a.id: a.name for a in in_scope.values()}
    sample = [_sample(r, names_by_id[r.agency_id], principal, today) for r in good[:SAMPLE_SIZE]]
    preview = ImportPreview(
        filename=filename,
        sha256=sha256,
        file_type=parsed.kind,
        encoding=_encoding_label(parsed.encoding),
        total_rows=len(records),
        valid_rows=len(good),
        invalid_rows=len(records) - len(good),
        errors=row_errors,
        sample=sample,
        ignored_columns=parsed.ignored,
    )
    return _Validated(preview=preview, records=records)


def _encoding_label(encoding: str | None) -> str | None:
    return {"utf-8-sig": "UTF-8", "gb18030": "GBK/GB18030", "utf-16": "UTF-16"}.get(encoding or "", encoding)


def _sample(r: _Record, agency_name: str, principal: Principal, today: dt.date) -> ImportSampleRow:
    staff_type, post = StaffType(r.staff_type), Post(r.post)
    return ImportSampleRow(
        row=r.row,
        name=r.name,
        # Full only to the officer's own agency, as everywhere else (DOMAIN.md).
        id_number=r.id_number if principal.agency_id == r.agency_id else rules.mask_id_number(r.id_number),
        gender=rules.gender_from_id(r.id_number),
        birth_date=rules.birth_date_from_id(r.id_number),
        agency_name=agency_name,
        staff_type=staff_type,
        staff_type_label=staff_type.label,
        post=post,
        post_label=post.label,
        field=r.field,
        area=r.area,
        phone=r.phone,
        started_on=r.started_on or today,
    )


def _clean_filename(filename: str) -> str:
    name = PurePath((filename or "").replace("\\", "/")).name
    name = "".join(ch for ch in name if ch >= " " and ch != "\x7f").strip()
    return name[:200] or "未命名文件"


# ================================================================= use cases


async def officer_import_preview(
    db: AsyncSession,
    *,
    principal: Principal,
    data: bytes,
    filename: str,
    max_rows: int = MAX_IMPORT_ROWS,
    max_bytes: int | None = None,
) -> ImportPreview:
    """Check a file without writing: every bad row with its reason, counts, and the first good rows."""
    try:
        validated = await _validate(
            db,
            principal=principal,
            data=data,
            filename=_clean_filename(filename),
            max_rows=max_rows,
            max_bytes=max_bytes,
        )
    finally:
        await db.rollback()  # read-only: end the transaction (and any SQLite lock) now
    return validated.preview


async def officer_import_commit(
    db: AsyncSession,
    *,
    principal: Principal,
    data: bytes,
    filename: str,
    max_rows: int = MAX_IMPORT_ROWS,
    max_bytes: int | None = None,
) -> ImportResult:
    """Re-check the file and, when every row is good, write all of it in one transaction; else nothing.

    Raises ``ImportRejected`` (with the full preview) when any row is bad — a file imported before
    comes back with every row marked 已登记 — and ``Conflict`` when a concurrent import registered
    one of the ID numbers between the check and the insert.
    """
    filename = _clean_filename(filename)
    try:
        validated = await _validate(
            db, principal=principal, data=data, filename=filename, max_rows=max_rows, max_bytes=max_bytes
        )
        preview = validated.preview
        if not preview.ok:
            raise ImportRejected(preview)
        records = validated.records
        imported, first_id, last_id = await _insert(db, records)
        per_agency: dict[int, int] = {}
        for r in records:
            per_agency[r.agency_id] = per_agency.get(r.agency_id, 0) + 1
        event = await audit_record(
            db,
            actor=principal.actor,
            action="officer.import",
            entity_type="officer_import",
            entity_id=preview.sha256,
            agency_id=principal.agency_id,
            data={
                "filename": filename,
                "sha256": preview.sha256,
                "rows": imported,
                "file_type": preview.file_type,
                "officer_ids": [first_id, last_id],
                "agencies": {str(k): v for k, v in sorted(per_agency.items())},
            },
        )
        await db.commit()
    except IntegrityError as exc:
        await db.rollback()
        raise Conflict(
            "导入时发现有身份证号码刚刚被登记（可能有人同时导入了相同人员），本次未写入任何数据，请重新上传检查",
            field="file",
        ) from exc
    except BaseException:
        await db.rollback()
        raise
    return ImportResult(
        filename=filename,
        sha256=preview.sha256,
        imported=imported,
        agencies=len(per_agency),
        audit_event_id=event.id,
        preview=preview,
    )


async def _insert(db: AsyncSession, records: list[_Record]) -> tuple[int, int, int]:
    """Bulk Core inserts (multi-row VALUES ... RETURNING on both engines); returns count and id range."""
    officers = cast(SATable, Officer.__table__)
    postings = cast(SATable, PostingHistory.__table__)
    now = utcnow()
    today = clock_today()
    active = EmploymentStatus.ACTIVE.value
    with_returning = insert(officers).returning(officers.c.id, officers.c.id_number)
    total = 0
    first_id = last_id = 0
    for chunk in _chunks(records):
        rows = [
            {
                "agency_id": r.agency_id,
                "name": r.name,
                "id_number": r.id_number,
                "gender": rules.gender_from_id(r.id_number),
                "birth_date": rules.birth_date_from_id(r.id_number),
                "staff_type": r.staff_type,
                "post": r.post,
                "field": r.field,
                "area": r.area,
                "employment_status": active,
                "phone": r.phone,
                "photo_path": None,
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
            for r in chunk
        ]
        # RETURNING the ID number with the id: the pairing does not depend on the order rows come back.
        ids = {idn: oid for oid, idn in (await db.execute(with_returning, rows))}
        if len(ids) != len(chunk):
            raise RuntimeError("bulk insert returned fewer ids than rows")
        await db.execute(
            insert(postings),
            [
                {
                    "officer_id": ids[r.id_number],
                    "agency_id": r.agency_id,
                    "post": r.post,
                    "field": r.field,
                    "area": r.area,
                    "started_on": r.started_on or today,
                    "ended_on": None,
                    "end_reason": "",
                }
                for r in chunk
            ],
        )
        total += len(chunk)
        low, high = min(ids.values()), max(ids.values())
        first_id = low if not first_id else min(first_id, low)
        last_id = max(last_id, high)
    return total, first_id, last_id


async def officer_import_done(
    db: AsyncSession, *, principal: Principal, sha256: str
) -> tuple[dt.datetime, int] | None:
    """When and how many rows a file with this hash was imported within the principal's agency, if it was."""
    row = (
        await db.execute(
            select(AuditEvent.occurred_at, AuditEvent.data)
            .where(
                AuditEvent.action == "officer.import",
                AuditEvent.entity_type == "officer_import",
                AuditEvent.entity_id == sha256,
                AuditEvent.agency_id == principal.agency_id,
            )
            .order_by(AuditEvent.id.desc())
            .limit(1)
        )
    ).one_or_none()
    if row is None:
        return None
    try:
        rows = int(json.loads(row.data).get("rows", 0))
    except (ValueError, AttributeError):
        rows = 0
    return row.occurred_at, rows


# ================================================================= staging (preview → commit)


def _stage_dir(principal: Principal) -> Path:
    # Read at call time so that tests (and operators) can point VAR_DIR elsewhere.
    return Path(app_settings.VAR_DIR) / "uploads" / "officer-import" / str(principal.account_id)


def _stage_write(directory: Path, sha256: str, data: bytes, filename: str) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    _stage_purge(directory.parent)
    target = directory / sha256
    tmp = directory / f".{sha256}.{os.getpid()}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, target)
    (directory / f"{sha256}.json").write_text(json.dumps({"filename": filename}, ensure_ascii=False))


def _stage_purge(base: Path) -> None:
    """Drop files staged more than a day ago, whoever staged them (previews never confirmed)."""
    cutoff = time.time() - STAGE_TTL_SECONDS
    for old in base.glob("*/*"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass


def _stage_read(directory: Path, sha256: str) -> tuple[bytes, str] | None:
    target = directory / sha256
    try:
        data = target.read_bytes()
        meta = json.loads((directory / f"{sha256}.json").read_text())
    except (OSError, ValueError):
        return None
    # The name is the content's hash: a file changed on disk is treated as gone.
    if hashlib.sha256(data).hexdigest() != sha256:
        return None
    return data, str(meta.get("filename") or "未命名文件")


def _stage_remove(directory: Path, sha256: str) -> None:
    for path in (directory / sha256, directory / f"{sha256}.json"):
        with contextlib.suppress(OSError):
            path.unlink()


async def stage_upload(principal: Principal, sha256: str, data: bytes, filename: str) -> None:
    await asyncio.to_thread(_stage_write, _stage_dir(principal), sha256, data, filename)


async def staged_upload(principal: Principal, sha256: str) -> tuple[bytes, str] | None:
    if not _SHA256.match(sha256):
        return None
    return await asyncio.to_thread(_stage_read, _stage_dir(principal), sha256)


async def unstage_upload(principal: Principal, sha256: str) -> None:
    if _SHA256.match(sha256):
        await asyncio.to_thread(_stage_remove, _stage_dir(principal), sha256)


# ================================================================= HTTP

Req = Request[Any, Any, Any]


@dataclass
class ImportUpload:
    """multipart/form-data with the file in the field ``file``."""

    file: UploadFile


async def _read_upload(upload: Any) -> tuple[bytes, str] | None:
    if not isinstance(upload, UploadFile):
        return None
    data = await upload.read()
    if not data and not upload.filename:
        return None
    return data, _clean_filename(upload.filename)


class OfficerImportApi(Controller):
    path = "/api/officers/import"
    tags = ["执法人员"]
    guards = [require_admin]

    @post(
        "/",
        summary="批量导入执法人员（CSV / XLSX）",
        description=(
            "上传 multipart/form-data，文件放在字段 file 中。dry_run=true（默认）只校验不写入；"
            "dry_run=false 在全部行都正确时一次性导入（全部成功或全部不写入）。"
            "有错误行时返回 422，errors 中列出每个错误的行号、列名和原因；"
            "文件本身无法读取（类型、编码、表头、行数）时返回 400；超过上传大小限制时返回 413。"
        ),
        status_code=200,
        responses={
            422: ResponseSpec(
                data_container=ImportReport,
                description="文件中有错误行，未写入任何数据",
                examples=[
                    Example(
                        summary="错误行",
                        value={
                            "errors": [{"row": 3, "column": "身份证号码", "message": "身份证号码校验位错误"}]
                        },
                    )
                ],
            ),
        },
    )
    async def import_officers(
        self,
        request: Req,
        db: AsyncSession,
        state: State,
        data: Annotated[ImportUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
        dry_run: Annotated[
            bool, QueryParameter(description="true：只校验不写入；false：校验通过后导入")
        ] = True,
    ) -> Response[ImportReport]:
        upload = await _read_upload(data.file)
        if upload is None:
            raise ImportFileError("请选择要上传的文件", field="file")
        content, filename = upload
        p = principal_of(request)
        limit = state.settings.max_upload_bytes
        if dry_run:
            preview = await officer_import_preview(
                db, principal=p, data=content, filename=filename, max_bytes=limit
            )
            return _report(preview, dry_run=True, imported=0)
        try:
            result = await officer_import_commit(
                db, principal=p, data=content, filename=filename, max_bytes=limit
            )
        except ImportRejected as exc:
            return _report(exc.preview, dry_run=False, imported=0)
        return _report(result.preview, dry_run=False, imported=result.imported)


def _report(preview: ImportPreview, *, dry_run: bool, imported: int) -> Response[ImportReport]:
    report = ImportReport(
        **{k: getattr(preview, k) for k in preview.__struct_fields__}, dry_run=dry_run, imported=imported
    )
    return Response(report, status_code=200 if preview.ok else 422)


Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
_TEMPLATE_DISPOSITION = "attachment; filename=\"officers-template.csv\"; filename*=UTF-8''" + quote(
    "执法人员导入模板.csv"
)
MultipartForm = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]


class OfficerImportPages(Controller):
    path = "/officers/import"
    include_in_schema = False
    guards = [require_admin]

    async def _page(
        self, request: Req, db: AsyncSession, *, status: int = 200, error: str = "", msg: str = ""
    ) -> Template:
        p = principal_of(request)
        agencies = await agency_tree(db, p)
        own = next((a for a in agencies if a.id == p.agency_id), None)
        policies = await _policies(db, [_AgencyRow(own.id, own.name, own.path, own.is_active)]) if own else {}
        policy = policies.get(p.agency_id, DEFAULT_POLICY)
        return render(
            "accounts/import.html",
            request,
            status_code=status,
            agencies=[a for a in agencies if a.is_active],
            fields=policy.enforcement_fields,
            headers=TEMPLATE_HEADERS,
            max_rows=MAX_IMPORT_ROWS,
            max_size=size_text(request.app.state.settings.max_upload_bytes),
            error=error,
            msg=msg,
        )

    @get("/")
    async def form(
        self, request: Req, db: AsyncSession, imported: Annotated[int | None, QueryParameter(ge=0)] = None
    ) -> Template:
        msg = f"导入成功：已登记 {imported} 名执法人员。" if imported is not None else ""
        return await self._page(request, db, msg=msg)

    @get("/template.csv")
    async def template(self) -> Response[bytes]:
        # With a BOM, so that Excel opens the UTF-8 file with the right characters.
        body = ("\ufeff" + ",".join(TEMPLATE_HEADERS) + "\r\n").encode("utf-8")
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": _TEMPLATE_DISPOSITION,
                "Cache-Control": "no-store",
            },
        )

    @post("/")
    async def preview(self, request: Req, db: AsyncSession, state: State, data: MultipartForm) -> Template:
        upload = await _read_upload(data.get("file"))
        if upload is None:
            return await self._page(request, db, status=400, error="请选择要上传的文件（CSV 或 Excel .xlsx）")
        content, filename = upload
        p = principal_of(request)
        try:
            preview = await officer_import_preview(
                db, principal=p, data=content, filename=filename, max_bytes=state.settings.max_upload_bytes
            )
        except DomainError as exc:
            return await self._page(request, db, status=exc.status_code, error=exc.message)
        if preview.ok:
            await stage_upload(p, preview.sha256, content, filename)
        return render(
            "accounts/import_preview.html",
            request,
            status_code=200 if preview.ok else 422,
            preview=preview,
            errors=preview.errors[:HTML_ERROR_LIMIT],
            hidden_errors=max(0, len(preview.errors) - HTML_ERROR_LIMIT),
        )

    @post("/commit")
    async def commit(self, request: Req, db: AsyncSession, state: State, data: Form) -> Any:
        p = principal_of(request)
        sha256 = str(data.get("sha256", "")).strip().lower()
        staged = await staged_upload(p, sha256)
        if staged is None:
            done = (
                await officer_import_done(db, principal=p, sha256=sha256) if _SHA256.match(sha256) else None
            )
            if done is not None:
                at, rows = done
                when = at.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")
                return await self._page(
                    request, db, status=409, error=f"该文件已于 {when} 导入（{rows} 人），不会重复导入。"
                )
            return await self._page(
                request, db, status=400, error="待导入的文件已失效或不存在（超过24小时或已处理），请重新上传"
            )
        content, filename = staged
        try:
            result = await officer_import_commit(
                db, principal=p, data=content, filename=filename, max_bytes=state.settings.max_upload_bytes
            )
        except ImportRejected as exc:
            await unstage_upload(p, sha256)
            preview = exc.preview
            return render(
                "accounts/import_preview.html",
                request,
                status_code=422,
                preview=preview,
                errors=preview.errors[:HTML_ERROR_LIMIT],
                hidden_errors=max(0, len(preview.errors) - HTML_ERROR_LIMIT),
            )
        except DomainError as exc:
            return await self._page(request, db, status=exc.status_code, error=exc.message)
        await unstage_upload(p, sha256)
        return Redirect(f"/officers/import?imported={result.imported}", status_code=303)


IMPORT_ROUTES: list[Any] = [OfficerImportApi, OfficerImportPages]

__all__ = [
    "COLUMNS",
    "IMPORT_ROUTES",
    "ImportPreview",
    "ImportRejected",
    "ImportReport",
    "ImportResult",
    "ImportRowError",
    "officer_import_commit",
    "officer_import_done",
    "officer_import_preview",
]
