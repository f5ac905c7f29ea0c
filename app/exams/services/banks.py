"""Question banks: the idempotent import of a parsed bank file (题库导入) and the bank list."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.services import audit_record
from app.exams.bankfile import Bank
from app.exams.models import ExamBank, ExamQuestion
from app.exams.rules import ExamPart
from app.exams.schemas import BankImportReport, BankOut, Position, UnsupportedOut
from app.exams.services.common import authority_required
from app.lib.clock import utcnow
from app.lib.security import Principal, actor_of


def _question_values(q: Any) -> dict[str, Any]:
    answer = q.answer if isinstance(q.answer, bool) else list(q.answer)
    weights = getattr(q, "weights", None)
    return {
        "type": q.type,
        "category": q.category,
        "difficulty": q.difficulty,
        "stem": q.stem,
        "options_json": json.dumps(list(q.options), ensure_ascii=False),
        "answer_json": json.dumps(answer),
        "weights_json": None if weights is None else json.dumps(list(weights)),
        "basis": q.basis,
        "explanation": q.explanation,
    }


_METADATA = ("category", "difficulty", "basis", "explanation")


async def bank_import(
    db: AsyncSession,
    *,
    principal: Principal,
    bank: Bank,
    source: str,
    report: BankImportReport | None = None,
) -> BankImportReport:
    """Load a parsed bank idempotently: new questions, new versions of changed ones, retire removed ones.

    An unchanged bank changes nothing (not even the audit trail).
    """
    authority_required(principal, "导入题库")
    report = report or BankImportReport(source=source, bank=bank.code)
    report.bank = bank.code
    row = await db.scalar(select(ExamBank).where(ExamBank.code == bank.code))
    changed = False
    if row is None:
        row = ExamBank(
            code=bank.code,
            title=bank.title,
            part=bank.part,
            field=bank.field,
            description=bank.description,
            source=source,
        )
        db.add(row)
        await db.flush()
        changed = True
    else:
        for attr in ("title", "part", "field", "description"):
            if getattr(row, attr) != getattr(bank, attr):
                setattr(row, attr, getattr(bank, attr))
                changed = True
    existing = list((await db.scalars(select(ExamQuestion).where(ExamQuestion.bank_id == row.id))).all())
    by_key = {(q.qid, q.version): q for q in existing}
    current = {q.qid: q for q in existing if q.is_current}
    in_file: set[str] = set()
    inserts: list[ExamQuestion] = []
    promote: list[ExamQuestion] = []
    for q in bank.questions:
        in_file.add(q.id)
        version = q.version
        values = _question_values(q)
        found = by_key.get((q.id, version))
        if found is not None and found.is_current:
            diff = {k: values[k] for k in _METADATA if getattr(found, k) != values[k]}
            if diff:
                for k, v in diff.items():
                    setattr(found, k, v)
                report.updated += 1
            else:
                report.unchanged += 1
            continue
        old = current.get(q.id)
        if old is not None:
            old.is_current = False
        if found is not None:  # back to a version seen before
            promote.append(found)
            for k in _METADATA:
                setattr(found, k, values[k])
        else:
            inserts.append(ExamQuestion(bank_id=row.id, qid=q.id, version=version, is_current=True, **values))
        if old is not None:
            report.new_versions += 1
        else:
            report.loaded += 1
    for qid, cur in current.items():
        if qid not in in_file:
            cur.is_current = False
            report.retired += 1
    # Demote first: the partial unique index allows one current version per question id.
    await db.flush()
    for again in promote:
        again.is_current = True
    await db.flush()
    db.add_all(inserts)
    await db.flush()
    if changed or report.loaded or report.new_versions or report.updated or report.retired:
        row.imported_at = utcnow()
        row.source = source
        await audit_record(
            db,
            actor=actor_of(principal),
            action="exam.bank.import",
            entity_type="exam_bank",
            entity_id=row.id,
            agency_id=principal.agency_id or None,
            data={
                "code": bank.code,
                "source": source,
                "loaded": report.loaded,
                "new_versions": report.new_versions,
                "updated": report.updated,
                "retired": report.retired,
                "unchanged": report.unchanged,
            },
        )
    return report


def report_from_parse(
    source: str, errors: Sequence[Any], unsupported: Sequence[Any], duplicates: Sequence[Any] = ()
) -> BankImportReport:
    return BankImportReport(
        source=source,
        bank=None,
        errors=[Position(position=str(e.position), message=str(e.message)) for e in errors],
        unsupported=[
            UnsupportedOut(position=str(u.position), kind=str(u.kind), excerpt=str(u.excerpt))
            for u in unsupported
        ],
        duplicates=[
            Position(position=str(d.position), message=f"{d.first_position}（{d.question_id}）")
            for d in duplicates
        ],
    )


async def bank_list(db: AsyncSession) -> list[BankOut]:
    banks = list((await db.scalars(select(ExamBank).order_by(ExamBank.part, ExamBank.code))).all())
    counts = await db.execute(
        select(ExamQuestion.bank_id, ExamQuestion.category, ExamQuestion.type, func.count())
        .where(ExamQuestion.is_current.is_(True))
        .group_by(ExamQuestion.bank_id, ExamQuestion.category, ExamQuestion.type)
    )
    by_bank: dict[int, dict[str, int]] = {}
    for bank_id, category, qtype, n in counts:
        by_bank.setdefault(bank_id, {})[f"{category}/{qtype}"] = n
    versions = dict(
        (await db.execute(select(ExamQuestion.bank_id, func.count()).group_by(ExamQuestion.bank_id))).all()
    )
    return [
        BankOut(
            id=b.id,
            code=b.code,
            title=b.title,
            part=ExamPart(b.part),
            part_label=ExamPart(b.part).label,
            field=b.field,
            description=b.description,
            source=b.source,
            imported_at=b.imported_at,
            current_questions=sum(by_bank.get(b.id, {}).values()),
            versions=versions.get(b.id, 0),
            by_category_type=by_bank.get(b.id, {}),
        )
        for b in banks
    ]
