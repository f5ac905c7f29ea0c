"""Importing question banks from files, for ``app exams import PATH`` (app/cli/exams.py) and the
authority's upload page.

A file is TOML (``exam_banks/``), Moodle GIFT or a question-bank spreadsheet (XLSX): ``formats``
parses it whole (every error and every unsupported question reported with its position);
a file with any error loads nothing, and a file's supported questions load idempotently
(``services.banks.bank_import``), in the caller's transaction. Parsing is CPU work and runs off
the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from app.exams import formats
from app.exams.formats import ParsedBank
from app.exams.schemas import BankImportReport, ImportSummary
from app.exams.services.banks import bank_import, report_from_parse
from app.lib.security import Principal

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
    report = report_from_parse(parsed.source, parsed.errors, parsed.unsupported, parsed.duplicates)
    if parsed.errors or parsed.bank is None:
        return report
    report.bank = parsed.bank.code
    return await bank_import(db, principal=principal, bank=parsed.bank, source=parsed.source, report=report)


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
