"""Importing question banks from files: ``app exams import PATH`` and the authority's upload page.

A file is TOML (``exam_banks/``), Moodle GIFT or a question-bank spreadsheet (XLSX): ``formats``
parses it whole (every error and every unsupported question reported with its position);
a file with any error loads nothing, and a file's supported questions load idempotently
(``services.bank_import``). Parsing is CPU work and runs off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from app.exams import formats
from app.exams import services as svc
from app.exams.formats import ParsedBank
from app.exams.schemas import BankImportReport, ImportSummary
from app.lib.security import Principal, system_principal

MAX_FILES = 500


def parse_bytes(
    data: bytes,
    *,
    filename: str,
    code: str | None = None,
    part: str | None = None,
    field: str | None = None,
    category: str | None = None,
) -> ParsedBank:
    """Parse one uploaded or read file by its name's suffix (TOML, GIFT, XLSX: ``formats``)."""
    return formats.parse_bytes(data, filename=filename, code=code, part=part, field=field, category=category)


def bank_files(path: Path) -> list[Path]:
    """The bank files of a folder (sorted), or the one file given."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in formats.EXTENSIONS)[
            :MAX_FILES
        ]
    return [path]


async def import_parsed(db: AsyncSession, *, principal: Principal, parsed: ParsedBank) -> BankImportReport:
    report = svc.report_from_parse(parsed.source, parsed.errors, parsed.unsupported, parsed.duplicates)
    if parsed.errors or parsed.bank is None:
        return report
    report.bank = parsed.bank.code
    try:
        return await svc.bank_import(
            db, principal=principal, bank=parsed.bank, source=parsed.source, report=report
        )
    except BaseException:
        await db.rollback()
        raise


async def import_files(
    db: AsyncSession,
    *,
    principal: Principal,
    files: Sequence[tuple[str, bytes]],
    code: str | None = None,
    part: str | None = None,
    field: str | None = None,
    category: str | None = None,
) -> ImportSummary:
    """Import each file; ``code``, ``part``, ``field``, ``category`` fill in what a GIFT or XLSX file lacks."""
    reports = []
    for name, data in files:
        parsed = await asyncio.to_thread(
            parse_bytes, data, filename=name, code=code, part=part, field=field, category=category
        )
        reports.append(await import_parsed(db, principal=principal, parsed=parsed))
    return ImportSummary(ok=bool(reports) and all(r.ok for r in reports), files=reports)


async def command_import(
    path: str,
    *,
    database_url: str | None = None,
    code: str | None = None,
    part: str | None = None,
    field: str | None = None,
    category: str | None = None,
) -> ImportSummary:
    """``app exams import PATH``: a file or every bank file of a folder, as the system."""
    from app.db import make_engine, make_sessionmaker
    from app.settings import get_settings

    target = Path(path)
    files = [(p.name, p.read_bytes()) for p in bank_files(target)]
    engine = make_engine(database_url or get_settings().database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            return await import_files(
                db,
                principal=system_principal(),
                files=files,
                code=code,
                part=part,
                field=field,
                category=category,
            )
    finally:
        await engine.dispose()


def summary_lines(summary: ImportSummary) -> list[str]:
    lines = []
    for r in summary.files:
        head = f"{r.source}: " + (f"题库 {r.bank} " if r.bank else "")
        if r.errors:
            lines.append(head + f"有 {len(r.errors)} 处错误，未导入")
            lines.extend(f"  错误 {e.position}: {e.message}" for e in r.errors)
            continue
        lines.append(
            head
            + f"新增 {r.loaded} 题，未变 {r.unchanged} 题，新版本 {r.new_versions} 题，"
            + f"更新说明 {r.updated} 题，停用 {r.retired} 题"
            + (f"，不支持 {len(r.unsupported)} 题（未导入）" if r.unsupported else "")
        )
        lines.extend(f"  不支持 {u.position}: {u.kind} — {u.excerpt}" for u in r.unsupported)
        lines.extend(f"  重复 {d.position}: 与 {d.message} 相同，只导入一次" for d in r.duplicates)
    if not summary.files:
        lines.append("没有找到题库文件")
    return lines


def summary_json(summary: ImportSummary) -> str:
    return msgspec.json.encode(summary).decode()
