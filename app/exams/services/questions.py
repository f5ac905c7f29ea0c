"""A bank's questions for reviewers: the list (drafts marked 草稿) and filling in the legal basis
of a draft, which makes it drawable (audited)."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.services import audit_change
from app.exams.bankfile import text_length_problems
from app.exams.models import ExamBank, ExamQuestion
from app.exams.schemas import QuestionOut, QuestionPage
from app.exams.services.banks import bank_outs
from app.exams.services.common import authority_required
from app.lib.clock import utcnow
from app.lib.errors import Conflict, DomainError, NotFound
from app.lib.security import Principal
from app.lib.structs import project

DRAFT_LABEL = "草稿"
PUBLISHED_LABEL = "已发布"


def question_out(q: ExamQuestion) -> QuestionOut:
    return project(
        QuestionOut,
        q,
        options=json.loads(q.options_json),
        answer=json.loads(q.answer_json),
        status_label=DRAFT_LABEL if q.is_draft else PUBLISHED_LABEL,
    )


async def bank_questions(
    db: AsyncSession, *, code: str, drafts_only: bool = False, page: int = 1, per_page: int = 50
) -> QuestionPage:
    """The current questions of bank ``code`` in id order (``drafts_only``: the 草稿 only)."""
    bank = await db.scalar(select(ExamBank).where(ExamBank.code == code))
    if bank is None:
        raise NotFound(f"题库 {code} 不存在")
    (out,) = await bank_outs(db, [bank])
    where = [ExamQuestion.bank_id == bank.id, ExamQuestion.is_current.is_(True)]
    if drafts_only:
        where.append(ExamQuestion.is_draft.is_(True))
    rows = (
        await db.scalars(
            select(ExamQuestion)
            .where(*where)
            .order_by(ExamQuestion.qid)
            .offset((page - 1) * per_page)
            .limit(per_page)
        )
    ).all()
    return QuestionPage(
        bank=out,
        total=out.drafts if drafts_only else out.current_questions,
        page=page,
        per_page=per_page,
        questions=[question_out(q) for q in rows],
    )


async def question_basis_set(
    db: AsyncSession, *, principal: Principal, question_id: int, basis: str
) -> ExamQuestion:
    """Fill in the legal basis of a draft question (草稿): it becomes drawable. Audited.

    Only a current draft: a published question's basis is corrected in its bank file, reviewed
    like the rest of the bank.
    """
    authority_required(principal, "填写试题依据")
    basis = basis.strip()
    if not basis:
        raise DomainError("请填写依据：试题答案所依据的法律法规名称和条款", field="basis")
    if problems := text_length_problems("", (), basis, ""):
        raise DomainError(problems[0], field="basis")
    question = await db.scalar(select(ExamQuestion).where(ExamQuestion.id == question_id).with_for_update())
    if question is None:
        raise NotFound("试题不存在")
    if not question.is_current:
        raise Conflict("该试题已有新版本或已停用，请在现行版本上填写依据")
    if not question.is_draft:
        raise Conflict("该试题不是草稿：已发布试题的依据请在题库文件中修改后重新导入")
    bank = await db.scalar(select(ExamBank).where(ExamBank.id == question.bank_id))
    assert bank is not None
    question.basis = basis
    question.is_draft = False
    # The pools papers are drawn from are cached by the banks' stamp: a new question to draw.
    bank.imported_at = utcnow()
    await audit_change(
        db,
        principal,
        "exam.question.basis",
        question,
        {"bank": bank.code, "qid": question.qid, "version": question.version, "basis": basis},
        agency_id=principal.agency_id or None,
    )
    await db.flush()
    return question
