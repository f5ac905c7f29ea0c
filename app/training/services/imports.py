"""批量导入签到表: check a sheet without writing (the preview), or write all of its rows or none.

Both run inside the caller's transaction and never commit: the request's edge or the console's
session does. The sheet's work happens under a savepoint, so that whatever the caller does next
a preview leaves nothing behind and a refused commit leaves only its record (a batch with outcome
``rejected``, its first errors, and the audit event), never a ledger line. The same sheet cannot
count twice: a committed batch's SHA-256 is unique (``该文件已导入（批次 N）``), and an edited copy's
rows collide with the live records already there (duplicate rows).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Required, TypedDict, Unpack

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.services import audit_change
from app.lib import tabular
from app.lib.clock import today
from app.lib.errors import Conflict, NotFound
from app.lib.imports import ImportFileError, encoding_label
from app.lib.security import Principal
from app.lib.structs import project
from app.lib.tabular import TableError, read_table
from app.lib.uploads import clean_filename
from app.training import rules
from app.training.access import entered_by
from app.training.models import TrainingImportBatch
from app.training.schemas import ImportPreview
from app.training.selectors.batches import committed_batch
from app.training.selectors.courses import course_get
from app.training.sheets import plain
from app.training.sheets.format import (
    CHUNK_ROWS,
    COLUMNS,
    MAX_IMPORT_ROWS,
    REQUIRED,
    STORED_ERRORS,
    AlreadyImported,
)
from app.training.sheets.ledger import Course, Ledger
from app.training.sheets.rows import RowParser, next_lines

_IMPORT_LOCK = 7_270_002


@dataclass
class ImportResult:
    """A committed sheet (``ok``), or a refused one: then ``batch_id`` is the batch that records the
    refusal, nothing was imported, and ``preview.errors`` lists every bad row."""

    batch_id: int
    imported: int
    preview: ImportPreview

    @property
    def ok(self) -> bool:
        return self.preview.ok


class SheetArgs(TypedDict, total=False):
    """The keyword arguments of both use cases: whose sheet, its bytes and name, and how to read it."""

    principal: Required[Principal]
    data: Required[bytes]
    filename: Required[str]
    year: int | None
    """The year of the sheet's attendance (default: this year)."""
    course_id: int | None
    """The course of every row that names none."""
    max_rows: int
    max_bytes: int | None


@dataclass(frozen=True)
class _Sheet:
    """A sheet to check or import, and the limits it is read under."""

    principal: Principal
    data: bytes
    filename: str
    sha256: str
    year: int
    course_id: int | None
    max_rows: int
    max_bytes: int | None

    @classmethod
    async def of(cls, db: AsyncSession, args: SheetArgs) -> _Sheet:
        """The sheet of an administrator, unless a committed batch already has the same file."""
        principal, data = args["principal"], args["data"]
        if not principal.is_admin:
            raise NotFound("页面不存在")
        sha256 = hashlib.sha256(data).hexdigest()
        done = await committed_batch(db, sha256)
        if done is not None:
            raise AlreadyImported(done)
        return cls(
            principal=principal,
            data=data,
            filename=clean_filename(args["filename"]),
            sha256=sha256,
            year=args.get("year") or today().year,
            course_id=args.get("course_id"),
            max_rows=args.get("max_rows", MAX_IMPORT_ROWS),
            max_bytes=args.get("max_bytes"),
        )


async def _default_course(db: AsyncSession, principal: Principal, course_id: int | None) -> Course | None:
    if course_id is None:
        return None
    try:
        c, _agency = await course_get(db, principal, course_id)
    except NotFound as exc:
        raise ImportFileError("所选课程不存在或不在您的管理范围内", field="course_id") from exc
    return Course.of(c)


async def _run(
    db: AsyncSession, sheet: _Sheet, *, write: bool, batch_id: int | None
) -> tuple[Ledger, ImportPreview]:
    """Read, stage and judge the sheet; with ``write``, append it to the ledger when every row is good."""
    default_course = await _default_course(db, sheet.principal, sheet.course_id)
    try:
        table = await asyncio.to_thread(
            read_table,
            sheet.data,
            sheet.filename,
            required=REQUIRED,
            aliases=COLUMNS,
            max_rows=sheet.max_rows,
            max_bytes=sheet.max_bytes,
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

        ledger = Ledger(
            db=db,
            principal=sheet.principal,
            year=sheet.year,
            labels=label,
            default_course=default_course,
            batch_id=batch_id,
        )
        await ledger.open()
        parser = RowParser(label, ledger.errors, today())
        csv = tabular.plain_csv(table, sheet.data) if plain.applies(ledger) else None
        if csv is not None and await plain.stage_plain(
            ledger, sheet.data, csv, table, parser, sheet.max_rows
        ):
            lines = []
        else:
            lines = await asyncio.to_thread(next_lines, table.rows, CHUNK_ROWS, parser)
        while lines:
            # The next chunk is parsed in a worker thread while this one is checked and staged:
            # the database works (on its own CPU) while Python reads the sheet.
            upcoming = asyncio.ensure_future(asyncio.to_thread(next_lines, table.rows, CHUNK_ROWS, parser))
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
        preview = project(
            ImportPreview,
            sheet,
            file_type=table.kind,
            encoding=encoding_label(table.encoding),
            total_rows=ledger.total,
            valid_rows=ledger.total - ledger.invalid,
            invalid_rows=ledger.invalid,
            hours_total=rules.hours_value(ledger.tenths),
            errors=ledger.row_errors(),
            sample=ledger.sample,
            ignored_columns=table.ignored,
        )
    return ledger, preview


async def training_import_preview(db: AsyncSession, **args: Unpack[SheetArgs]) -> ImportPreview:
    """Check a sheet without writing: every bad row with its reason, counts, and the first good rows."""
    sheet = await _Sheet.of(db, args)
    # Read-only: the scratch tables the checks fill go with the savepoint, whatever the caller does next.
    async with db.begin_nested() as savepoint:
        _ledger, preview = await _run(db, sheet, write=False, batch_id=None)
        await savepoint.rollback()
    return preview


async def training_import_commit(
    db: AsyncSession, *, source: str = "web", **args: Unpack[SheetArgs]
) -> ImportResult:
    """Check the sheet and write every row, or — when any row is bad — nothing but the refusal.

    A refused sheet is recorded as a batch with outcome ``rejected`` (and its first errors) and
    returned as such (``ImportResult.ok`` false): the caller keeps that record, and answers 422.
    ``AlreadyImported`` when a committed batch has the same file; ``Conflict`` when a concurrent
    import wrote one of the same records in between. Never commits: the caller's transaction holds
    the whole sheet, so a process killed at any moment leaves all of it or none.
    """
    sheet = await _Sheet.of(db, args)
    if (await db.connection()).dialect.name == "postgresql":
        # One import at a time: each writes and sums 100 000 lines chunk by chunk, and two at
        # once could lock the same officers' totals in opposite orders. (SQLite has one writer.)
        await db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _IMPORT_LOCK})
    try:
        async with db.begin_nested() as savepoint:
            # The batch row first: a concurrent commit of the same file waits on its unique hash.
            batch = _batch_row(sheet, source)
            db.add(batch)
            await db.flush()
            ledger, preview = await _run(db, sheet, write=True, batch_id=batch.id)
            if not preview.ok:
                # Nothing reached the ledger (it is written only when every row passed): the batch
                # row and the scratch tables go back, and the refusal is recorded instead, below.
                await savepoint.rollback()
    except IntegrityError as exc:
        again = await committed_batch(db, sheet.sha256)
        if again is not None:
            raise AlreadyImported(again) from exc
        raise Conflict(
            "导入时发现有相同的学时记录刚刚被登记（可能有人同时导入了相同的签到表），本次未写入任何数据，请重新上传检查",
            field="file",
        ) from exc
    if not preview.ok:
        rejected_id = await _record_rejection(db, sheet, preview, source)
        return ImportResult(batch_id=rejected_id, imported=0, preview=preview)
    batch.file_type = preview.file_type
    batch.rows_total = preview.total_rows
    batch.rows_imported = ledger.written
    batch.hours_tenths = ledger.tenths
    hours = rules.format_hours(ledger.tenths)
    await _audit_batch(db, sheet, "training.import", batch, year=sheet.year, rows=ledger.written, hours=hours)
    return ImportResult(batch_id=batch.id, imported=ledger.written, preview=preview)


def _batch_row(sheet: _Sheet, source: str, refused: ImportPreview | None = None) -> TrainingImportBatch:
    """The batch that records a sheet: one being committed (its counts are set once it is written),
    or a ``refused`` one with its first errors."""
    by_id, by_name = entered_by(sheet.principal)
    errors = [] if refused is None else [[e.row, e.column, e.message] for e in refused.errors[:STORED_ERRORS]]
    return TrainingImportBatch(
        agency_id=sheet.principal.agency_id or None,
        sha256=sheet.sha256,
        committed_sha256=sheet.sha256 if refused is None else None,
        filename=sheet.filename,
        file_type=refused.file_type if refused else ("xlsx" if sheet.data.startswith(b"PK") else "csv"),
        source=source,
        year=sheet.year,
        outcome="committed" if refused is None else "rejected",
        rows_total=refused.total_rows if refused else 0,
        rows_imported=0,
        rows_rejected=refused.invalid_rows if refused else 0,
        hours_tenths=0,
        errors_json=json.dumps(errors, ensure_ascii=False),
        created_by_id=by_id,
        created_by_name=by_name,
    )


async def _record_rejection(db: AsyncSession, sheet: _Sheet, preview: ImportPreview, source: str) -> int:
    batch = _batch_row(sheet, source, preview)
    db.add(batch)
    await db.flush()
    rows, rejected = preview.total_rows, preview.invalid_rows
    await _audit_batch(db, sheet, "training.import.reject", batch, rows=rows, rejected_rows=rejected)
    return batch.id


async def _audit_batch(
    db: AsyncSession, sheet: _Sheet, action: str, batch: TrainingImportBatch, **figures: Any
) -> None:
    data = {"filename": sheet.filename, "sha256": sheet.sha256, **figures, "source": batch.source}
    await audit_change(db, sheet.principal, action, batch, agency_id=batch.agency_id, data=data)


__all__ = ["ImportResult", "SheetArgs", "training_import_commit", "training_import_preview"]
