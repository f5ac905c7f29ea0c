"""Importing question banks from files, for ``app exams import PATH`` (app/cli/exams.py) and the
authority's upload page.

A file is TOML (``exam_banks/``), Moodle GIFT or a question-bank spreadsheet (XLSX): ``formats``
parses it whole (every error and every unsupported question reported with its position);
a file with any error or any unsupported question loads nothing (unless the caller asks for the
supported questions only), and an accepted file loads idempotently (``services.banks.bank_import``),
in the caller's transaction. Parsing is CPU work: a GIFT file is read in slices that give the
event loop back (``app.lib.steps``), TOML and XLSX files in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from app.exams import formats
from app.exams.formats import BankHints
from app.exams.schemas import ImportSummary
from app.exams.services.banks import bank_import, report_from_parse
from app.lib.security import Principal
from app.lib.steps import finish_yielding, gc_paused

MAX_FILES = 500


def bank_files(path: Path) -> list[Path]:
    """The bank files of a folder (sorted), or the one file given."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in formats.EXTENSIONS)[
            :MAX_FILES
        ]
    return [path]


NOT_IMPORTED_BATCH = "同批上传的其他文件未通过校验，本文件也未导入（一次上传要么全部导入，要么全部不导入）"
NOT_IMPORTED_UNSUPPORTED = (
    "文件中有不支持的题型，整个文件未导入；如只导入支持的题目，请勾选“只导入支持的题型”"
    "（接口参数 import_supported_only=1），不支持的题目将逐条列出并跳过"
)


async def import_files(
    db: AsyncSession,
    *,
    principal: Principal,
    files: Sequence[tuple[str, bytes]],
    code: str | None = None,
    part: str | None = None,
    field: str | None = None,
    category: str | None = None,
    supported_only: bool = False,
    all_or_nothing: bool = False,
) -> ImportSummary:
    """Import each file; ``code``, ``part``, ``field``, ``category`` fill in what a GIFT or XLSX file lacks.

    A file with an error, or with a question of a type the exam does not have, writes nothing —
    unless ``supported_only``: then its supported questions load and the others are listed as
    skipped. ``all_or_nothing`` (an upload): when any file is refused, no file is written at all;
    otherwise (the console's folder import) every acceptable file loads.
    """
    with gc_paused():  # see app.lib.steps.gc_paused: a full collection would hold the loop
        return await _import_files(
            db,
            principal=principal,
            files=files,
            hints=BankHints(code=code, part=part, field=field, category=category),
            supported_only=supported_only,
            all_or_nothing=all_or_nothing,
        )


async def _import_files(
    db: AsyncSession,
    *,
    principal: Principal,
    files: Sequence[tuple[str, bytes]],
    hints: BankHints,
    supported_only: bool,
    all_or_nothing: bool,
) -> ImportSummary:
    parsed = []
    for name, data in files:
        if formats.stepped(name):  # GIFT: on the loop, question by question (no GIL convoy)
            parsed.append(await finish_yielding(formats.parse_steps(data, filename=name, hints=hints)))
        else:  # TOML, XLSX: one library call, in a thread
            parsed.append(await asyncio.to_thread(formats.parse_bytes, data, filename=name, hints=hints))
    reports = [
        report_from_parse(
            p.source, p.errors, p.unsupported, p.duplicates, p.drafts, supported_only=supported_only
        )
        for p in parsed
    ]
    refused = any(not r.ok or p.bank is None for p, r in zip(parsed, reports, strict=True))
    for p, report in zip(parsed, reports, strict=True):
        if p.bank is None:
            continue
        report.bank = p.bank.code
        if report.unsupported:
            report.note = NOT_IMPORTED_UNSUPPORTED
        elif all_or_nothing and refused:
            report.note = NOT_IMPORTED_BATCH
        else:
            await bank_import(db, principal=principal, bank=p.bank, source=p.source, report=report)
    return ImportSummary(ok=bool(reports) and not refused, files=reports)
