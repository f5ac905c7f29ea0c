"""Question banks: the idempotent import of a parsed bank file (题库导入) and the bank list.

A bank of tens of thousands of questions must not hold the event loop (a 40,000-question GIFT
import once answered /health after 2.7 s): hashing and serialising the file's questions and
comparing them with the stored ones (:func:`_plan`, pure) gives the loop back every ``SLICE``
questions, and the writes go in chunks of ``CHUNK`` rows as executemany statements, the loop free
between them (bench/bank_import_stall.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.services import audit_change
from app.exams.bankfile import Bank, BankHeader, Question, is_draft
from app.exams.models import ExamBank, ExamQuestion
from app.exams.rules import ExamPart
from app.exams.schemas import BankImportReport, BankOut, DraftOut, Position, UnsupportedOut
from app.exams.services.common import authority_required
from app.lib.clock import utcnow
from app.lib.security import Principal
from app.lib.steps import SLICE, Steps, finish_yielding
from app.lib.structs import project

CHUNK: Final = 200
"""Rows per statement while writing a bank: each chunk holds the loop for a few milliseconds."""

_METADATA: Final = ("category", "difficulty", "basis", "explanation", "title", "is_draft")
"""What a file may correct in place without making a new version."""
_STORED: Final = (
    ExamQuestion.id,
    ExamQuestion.qid,
    ExamQuestion.version,
    ExamQuestion.is_current,
    *(getattr(ExamQuestion, k) for k in _METADATA),
)


def _question_values(q: Question) -> dict[str, Any]:
    answer = q.answer if isinstance(q.answer, bool) else list(q.answer)
    return {
        "type": q.type,
        "category": q.category,
        "difficulty": q.difficulty,
        "stem": q.stem,
        "options_json": json.dumps(list(q.options), ensure_ascii=False),
        "answer_json": json.dumps(answer),
        "weights_json": None if q.weights is None else json.dumps(list(q.weights)),
        "basis": q.basis,
        "explanation": q.explanation,
        "title": q.title,
        "is_draft": q.is_draft,
    }


@dataclass
class _Plan:
    """What an import writes, worked out off the loop: rows to demote, promote, correct, insert."""

    demote: list[int] = field(default_factory=list)
    promote: list[dict[str, Any]] = field(default_factory=list)
    corrections: list[dict[str, Any]] = field(default_factory=list)
    inserts: list[dict[str, Any]] = field(default_factory=list)
    kept_basis: set[str] = field(default_factory=set)
    """Question ids the file gives no basis for, whose stored basis (filled in by staff) is kept."""
    loaded: int = 0
    new_versions: int = 0
    updated: int = 0
    retired: int = 0
    unchanged: int = 0


def _plan(bank: Bank, bank_id: int, stored: Sequence[Any]) -> Steps[_Plan]:
    """Compare the file's questions with the stored rows (pure; in slices, ``app.lib.steps``)."""
    plan = _Plan()
    by_key: dict[tuple[str, str], Any] = {}
    current: dict[str, Any] = {}
    for index, r in enumerate(stored):
        if index % (SLICE * 10) == 0:
            yield
        by_key[(r.qid, r.version)] = r
        if r.is_current:
            current[r.qid] = r
    in_file: set[str] = set()
    for index, q in enumerate(bank.questions):
        if index % SLICE == SLICE - 1:
            yield
        in_file.add(q.id)
        version = q.version
        values = _question_values(q)
        found = by_key.get((q.id, version))
        if found is not None and values["is_draft"] and not is_draft(found.basis):
            # The file has no basis (GIFT without "// 依据："), staff filled one in: keep theirs.
            values.update(basis=found.basis, is_draft=False)
            plan.kept_basis.add(q.id)
        metadata = {k: values[k] for k in _METADATA}
        if found is not None and found.is_current:
            if any(getattr(found, k) != v for k, v in metadata.items()):
                plan.corrections.append({"id": found.id, **metadata})
                plan.updated += 1
            else:
                plan.unchanged += 1
            continue
        old = current.get(q.id)
        if old is not None:
            plan.demote.append(old.id)
        if found is not None:  # back to a version seen before
            plan.promote.append({"id": found.id, "is_current": True, **metadata})
        else:
            plan.inserts.append(
                {"bank_id": bank_id, "qid": q.id, "version": version, "is_current": True, **values}
            )
        if old is not None:
            plan.new_versions += 1
        else:
            plan.loaded += 1
    for qid, cur in current.items():
        if qid not in in_file:
            plan.demote.append(cur.id)
            plan.retired += 1
    return plan


def _chunks(rows: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(rows), CHUNK):
        yield rows[start : start + CHUNK]


async def _write(plan: _Plan, db: AsyncSession) -> None:
    """The plan's statements, ``CHUNK`` rows each, yielding the loop between them."""
    # Demote first: the partial unique index allows one current version per question id.
    for ids in _chunks(plan.demote):
        await db.execute(
            update(ExamQuestion).where(ExamQuestion.id.in_(ids)).values(is_current=False),
            execution_options={"synchronize_session": False},
        )
        await asyncio.sleep(0)
    for rows in (plan.promote, plan.corrections):
        for chunk in _chunks(rows):
            await db.execute(update(ExamQuestion), list(chunk))  # by primary key, executemany
            await asyncio.sleep(0)
    created = utcnow()
    for chunk in _chunks(plan.inserts):
        await db.execute(insert(ExamQuestion), [{**row, "created_at": created} for row in chunk])
        await asyncio.sleep(0)


async def bank_import(
    db: AsyncSession,
    *,
    principal: Principal,
    bank: Bank,
    source: str,
    report: BankImportReport | None = None,
) -> BankImportReport:
    """Load a parsed bank idempotently: new questions, new versions of changed ones, retire removed ones.

    An unchanged bank changes nothing (not even the audit trail). A question the file gives no basis
    is a draft (草稿), unless staff already filled in the basis of that very version: that stays.
    """
    authority_required(principal, "导入题库")
    report = report or BankImportReport(source=source, bank=bank.code)
    report.bank = bank.code
    row = await db.scalar(select(ExamBank).where(ExamBank.code == bank.code))
    changed = False
    header = {name: getattr(bank, name) for name in BankHeader._fields}
    if row is None:
        row = ExamBank(**header, source=source)
        db.add(row)
        await db.flush()
        changed = True
    else:
        for name, value in header.items():
            if getattr(row, name) != value:
                setattr(row, name, value)
                changed = True
    stored: list[Any] = []
    result = await db.stream(select(*_STORED).where(ExamQuestion.bank_id == row.id))
    async for part in result.partitions(CHUNK):
        stored.extend(part)
    plan = await finish_yielding(_plan(bank, row.id, stored))
    await _write(plan, db)
    report.loaded, report.new_versions = plan.loaded, plan.new_versions
    report.updated, report.retired, report.unchanged = plan.updated, plan.retired, plan.unchanged
    report.drafts = [d for d in report.drafts if d.question_id not in plan.kept_basis]
    report.imported = True
    if changed or report.loaded or report.new_versions or report.updated or report.retired:
        row.imported_at = utcnow()
        row.source = source
        await audit_change(
            db,
            principal,
            "exam.bank.import",
            row,
            {
                "code": bank.code,
                "source": source,
                "loaded": report.loaded,
                "new_versions": report.new_versions,
                "updated": report.updated,
                "retired": report.retired,
                "unchanged": report.unchanged,
                "drafts": len(report.drafts),
            },
            agency_id=principal.agency_id or None,
        )
    return report


def report_from_parse(
    source: str,
    errors: Sequence[Any],
    unsupported: Sequence[Any],
    duplicates: Sequence[Any] = (),
    drafts: Sequence[Any] = (),
    *,
    supported_only: bool = False,
) -> BankImportReport:
    """The report of a parsed file before anything is written. ``supported_only``: the uploader
    asked to import only the supported questions, so the unsupported ones are ``skipped``, not
    refusals."""
    listed = [
        UnsupportedOut(position=str(u.position), kind=str(u.kind), excerpt=str(u.excerpt))
        for u in unsupported
    ]
    return BankImportReport(
        source=source,
        bank=None,
        errors=[Position(position=str(e.position), message=str(e.message)) for e in errors],
        unsupported=[] if supported_only else listed,
        skipped=listed if supported_only else [],
        duplicates=[
            Position(position=str(d.position), message=f"{d.first_position}（{d.question_id}）")
            for d in duplicates
        ],
        drafts=[project(DraftOut, d) for d in drafts],
    )


async def bank_list(db: AsyncSession) -> list[BankOut]:
    banks = list((await db.scalars(select(ExamBank).order_by(ExamBank.part, ExamBank.code))).all())
    return await bank_outs(db, banks)


async def bank_outs(db: AsyncSession, banks: Sequence[ExamBank]) -> list[BankOut]:
    """The banks with their counts: drawable questions by category and type, drafts, versions."""
    ids = [b.id for b in banks]
    counts = await db.execute(
        select(
            ExamQuestion.bank_id,
            ExamQuestion.category,
            ExamQuestion.type,
            ExamQuestion.is_draft,
            func.count(),
        )
        .where(ExamQuestion.is_current.is_(True), ExamQuestion.bank_id.in_(ids))
        .group_by(ExamQuestion.bank_id, ExamQuestion.category, ExamQuestion.type, ExamQuestion.is_draft)
    )
    by_bank: dict[int, dict[str, int]] = {}
    drafts: dict[int, int] = {}
    for bank_id, category, qtype, draft, n in counts:
        if draft:
            drafts[bank_id] = drafts.get(bank_id, 0) + n
        else:
            by_bank.setdefault(bank_id, {})[f"{category}/{qtype}"] = n
    versions = dict(
        (
            await db.execute(
                select(ExamQuestion.bank_id, func.count())
                .where(ExamQuestion.bank_id.in_(ids))
                .group_by(ExamQuestion.bank_id)
            )
        ).all()
    )
    return [
        project(
            BankOut,
            b,
            part_label=ExamPart(b.part).label,
            current_questions=sum(by_bank.get(b.id, {}).values()) + drafts.get(b.id, 0),
            versions=versions.get(b.id, 0),
            by_category_type=by_bank.get(b.id, {}),
            drafts=drafts.get(b.id, 0),
        )
        for b in banks
    ]
