"""What a paper is drawn from and made of: the pool a part draws from, the question versions, the
stored draw. Both are read through the application's ``ExamCache``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.exams import rules
from app.exams.cache import ExamCache, Pool, QuestionContent
from app.exams.models import ExamAttempt, ExamBank, ExamQuestion
from app.exams.rules import ExamPart, QuestionType

BANKS_STAMP = select(func.max(ExamBank.imported_at)).scalar_subquery()
"""The banks' last import time: every import that changes a question stamps it."""


async def pool_of(
    db: AsyncSession, *, part: str, field: str, stamp: Any = None, cache: ExamCache | None = None
) -> Pool:
    """Current questions of the banks a part may use: the public banks, or the specialised banks of a field.

    Kept in ``cache`` keyed by the banks' last import time, so the exam-start spike does not reload
    a bank for every candidate.
    """
    if part != ExamPart.SPECIALISED:
        field = ""  # every candidate draws the public part from the same banks
    if stamp is None:
        stamp = await db.scalar(select(BANKS_STAMP))
    key = (part, field, stamp)
    cached = None if cache is None else cache.pool(key)
    if cached is not None:
        return cached
    stmt = (
        select(
            ExamQuestion.id,
            ExamQuestion.qid,
            ExamQuestion.type,
            ExamQuestion.category,
            ExamQuestion.options_json,
            ExamBank.code,
        )
        .join(ExamBank, ExamBank.id == ExamQuestion.bank_id)
        # A draft (草稿, no legal basis yet) is listed for review but never drawn.
        .where(ExamQuestion.is_current.is_(True), ExamQuestion.is_draft.is_(False), ExamBank.part == part)
    )
    if part == ExamPart.SPECIALISED:
        stmt = stmt.where(ExamBank.field == field)
    pool: list[rules.Candidate] = []
    banks: dict[int, str] = {}
    for qid_, qkey, qtype, category, options_json, code in await db.execute(stmt):
        pool.append(rules.Candidate(qid_, (code, qkey), qtype, category, len(json.loads(options_json))))
        banks[qid_] = code
    index = rules.PoolIndex.of(pool)
    if cache is not None:
        cache.keep_pool(key, (index, banks))
    return index, banks


# ---------------------------------------------------------------- question versions (cached)

_VERSIONS = select(
    ExamQuestion.id,
    ExamQuestion.type,
    ExamQuestion.category,
    ExamQuestion.stem,
    ExamQuestion.options_json,
    ExamQuestion.answer_json,
    ExamQuestion.weights_json,
).where(ExamQuestion.id.in_(bindparam("ids", expanding=True)))


async def questions_of(
    db: AsyncSession, ids: Sequence[int], *, cache: ExamCache | None = None
) -> dict[int, QuestionContent]:
    """The question versions of ``ids``: from ``cache``, the missing ones read (and kept there)."""
    cache = ExamCache() if cache is None else cache
    missing = cache.missing(ids)
    if missing:
        loaded = []
        for qid, qtype, category, stem, options_json, answer_json, weights_json in await db.execute(
            _VERSIONS, {"ids": missing}
        ):
            answer = json.loads(answer_json)
            loaded.append(
                QuestionContent(
                    id=qid,
                    type=qtype,
                    category=category,
                    stem=stem,
                    options=tuple(json.loads(options_json))
                    if qtype != QuestionType.JUDGE
                    else rules.JUDGE_OPTIONS,
                    key=rules.key_indexes(qtype, answer if isinstance(answer, bool) else tuple(answer)),
                    weights=None
                    if weights_json is None
                    else tuple(w / 100 for w in json.loads(weights_json)),
                )
            )
        cache.keep_questions(loaded)
    return {i: cache.questions[i] for i in ids}


def cached_questions(ids: Sequence[int], cache: ExamCache) -> dict[int, QuestionContent] | None:
    """The versions from ``cache``, or None when any is not there yet (no database)."""
    return cache.versions(ids)


_PAPER = msgspec.json.Decoder(list[rules.PaperItem])


def paper_of(paper_json: str) -> list[rules.PaperItem]:
    """The stored draw (``[[question_id, order, points, category, type], ...]``) as paper items,
    decoded straight into the named tuples (half the time of ``json.loads`` and a tuple per item)."""
    return _PAPER.decode(paper_json)


def attempt_paper(attempt: ExamAttempt) -> list[rules.PaperItem]:
    return paper_of(attempt.paper_json)
