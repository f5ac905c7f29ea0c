"""Bulk officer import (CSV in UTF-8 or GBK, XLSX): preview every bad row, then all or nothing.

The use cases (``officer_import_preview``, ``officer_import_commit``) parse the file
(``app.accounts.import_rules``) and check every row against the database set-based (agencies and
existing ID numbers are looked up in batches), so a file of 100 000 rows costs a few hundred queries,
not one per row. A commit re-validates the same bytes and writes nothing unless every row is good;
the officers and their first postings go in with bulk Core inserts in the caller's transaction, with
one audit event.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Table as SATable
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import rules
from app.accounts.import_rules import (
    COLUMNS,
    MAX_IMPORT_ROWS,
    ImportRecord,
    parse_file,
)
from app.accounts.models import Agency, Officer, PostingHistory
from app.accounts.schemas import ImportPreview, ImportResult, ImportSampleRow
from app.accounts.selectors import agency_policies
from app.audit.models import AuditEvent
from app.audit.services import audit_record
from app.lib.chunks import chunks
from app.lib.clock import today as clock_today
from app.lib.clock import utcnow
from app.lib.enums import EmploymentStatus, Post, StaffType
from app.lib.errors import Conflict, DomainError, Forbidden
from app.lib.imports import encoding_label, row_errors
from app.lib.policy import Policy
from app.lib.security import Principal
from app.lib.structs import project
from app.lib.uploads import clean_filename

SAMPLE_SIZE = 20


class ImportRejected(DomainError):
    """Some rows are bad: nothing is written. ``preview`` lists every one of them."""

    status_code = 422
    title = "导入文件有错误"

    def __init__(self, preview: ImportPreview) -> None:
        n = preview.invalid_rows
        super().__init__(f"文件中有 {n} 行数据有错误，未导入任何人员，请修改后重新上传", field="file")
        self.preview = preview


@dataclass(frozen=True)
class OfficerSheet:
    """An uploaded officer sheet and the limits it is read under."""

    data: bytes
    filename: str
    max_bytes: int | None = None
    max_rows: int = MAX_IMPORT_ROWS


@dataclass
class _Validated:
    preview: ImportPreview
    records: list[ImportRecord] = field(repr=False)


@dataclass(frozen=True)
class _AgencyRow:
    id: int
    name: str
    path: str
    is_active: bool


async def _agencies_by_name(db: AsyncSession, names: list[str]) -> dict[str, _AgencyRow]:
    found: dict[str, _AgencyRow] = {}
    for chunk in chunks(names):
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
    for chunk in chunks(id_numbers):
        found.update((await db.scalars(select(Officer.id_number).where(Officer.id_number.in_(chunk)))).all())
    return found


async def _validate(db: AsyncSession, *, principal: Principal, sheet: OfficerSheet) -> _Validated:
    if not principal.is_admin:
        raise Forbidden("只有管理员可以批量导入执法人员")
    today = clock_today()
    filename = clean_filename(sheet.filename)
    sha256 = hashlib.sha256(sheet.data).hexdigest()
    # Parsing 100 000 rows takes a second or two of CPU: not on the event loop.
    parsed = await asyncio.to_thread(
        parse_file, sheet.data, filename, today=today, max_rows=sheet.max_rows, max_bytes=sheet.max_bytes
    )
    records = parsed.records
    errors = parsed.errors
    order = parsed.column_order
    label = parsed.columns.get

    def fail(record: ImportRecord, key: str, message: str) -> None:
        record.bad = True
        errors.append((record.row, order[key], label(key, COLUMNS[key][0]), message))

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

    good = [r for r in records if not r.bad]
    names_by_id = {a.id: a.name for a in in_scope.values()}
    sample = [_sample(r, names_by_id[r.agency_id], principal, today) for r in good[:SAMPLE_SIZE]]
    preview = ImportPreview(
        filename=filename,
        sha256=sha256,
        file_type=parsed.kind,
        encoding=encoding_label(parsed.encoding),
        total_rows=len(records),
        valid_rows=len(good),
        invalid_rows=len(records) - len(good),
        errors=row_errors(errors),
        sample=sample,
        ignored_columns=parsed.ignored,
    )
    return _Validated(preview=preview, records=records)


def _sample(r: ImportRecord, agency_name: str, principal: Principal, today: dt.date) -> ImportSampleRow:
    return project(
        ImportSampleRow,
        r,
        # Full only to the officer's own agency, as everywhere else (DOMAIN.md).
        id_number=r.id_number if principal.agency_id == r.agency_id else rules.mask_id_number(r.id_number),
        gender=rules.gender_from_id(r.id_number),
        birth_date=rules.birth_date_from_id(r.id_number),
        agency_name=agency_name,
        staff_type_label=StaffType(r.staff_type).label,
        post_label=Post(r.post).label,
        started_on=r.started_on or today,
    )


async def officer_import_preview(
    db: AsyncSession, *, principal: Principal, sheet: OfficerSheet
) -> ImportPreview:
    """Check a file without writing: every bad row with its reason, counts, and the first good rows."""
    return (await _validate(db, principal=principal, sheet=sheet)).preview


async def officer_import_commit(
    db: AsyncSession, *, principal: Principal, sheet: OfficerSheet
) -> ImportResult:
    """Re-check the file and, when every row is good, write all of it (in the caller's transaction,
    which the edge rolls back on any error); else nothing.

    Raises ``ImportRejected`` (with the full preview) when any row is bad — a file imported before
    comes back with every row marked 已登记 — and ``Conflict`` when a concurrent import registered
    one of the ID numbers between the check and the insert.
    """
    try:
        validated = await _validate(db, principal=principal, sheet=sheet)
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
                "filename": preview.filename,
                "sha256": preview.sha256,
                "rows": imported,
                "file_type": preview.file_type,
                "officer_ids": [first_id, last_id],
                "agencies": {str(k): v for k, v in sorted(per_agency.items())},
            },
        )
    except IntegrityError as exc:
        raise Conflict(
            "导入时发现有身份证号码刚刚被登记（可能有人同时导入了相同人员），本次未写入任何数据，请重新上传检查",
            field="file",
        ) from exc
    return ImportResult(
        filename=preview.filename,
        sha256=preview.sha256,
        imported=imported,
        agencies=len(per_agency),
        audit_event_id=event.id,
        preview=preview,
    )


async def _insert(db: AsyncSession, records: list[ImportRecord]) -> tuple[int, int, int]:
    """Bulk Core inserts (multi-row VALUES ... RETURNING on both engines); returns count and id range."""
    officers = cast(SATable, Officer.__table__)
    postings = cast(SATable, PostingHistory.__table__)
    now = utcnow()
    today = clock_today()
    active = EmploymentStatus.ACTIVE.value
    with_returning = insert(officers).returning(officers.c.id, officers.c.id_number)
    total = 0
    first_id = last_id = 0
    for chunk in chunks(records):
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
