"""自动保存: the candidate's answers, appended with the browser's sequence number (the highest counts).

Saves are recorded in the append-only ``exam_answers`` table (every save, with its sequence number
and time); on PostgreSQL a save is one statement (``app.exams.statements.SAVE_ANSWERS``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import literal, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.services import audit_enqueue
from app.exams import rules
from app.exams.cache import ExamCache
from app.exams.models import ExamAnswer, ExamAttempt
from app.exams.rules import AttemptStatus, ClosedBy
from app.exams.schemas import AnswerIn, SaveOut
from app.exams.services.common import officer_id_of
from app.exams.services.grading import attempt_close
from app.exams.statements import SAVE_ANSWERS
from app.lib.actor import SYSTEM
from app.lib.clock import utcnow
from app.lib.errors import Conflict, DomainError, NotFound
from app.lib.security import Principal, actor_of


class TimeUp(Conflict):
    """A save refused because the attempt is closed or past its time-up (409). What the refusal
    wrote (the time-up close) stands: the route marks it ``keep_refusal`` for the edge to commit."""


def _clash(position: int) -> Conflict:
    return Conflict(
        f"第 {position + 1} 题：该保存序号已存有不同的答案，本次保存未被接受；请刷新页面后再作答",
        field="answers",
    )


async def answers_save(
    db: AsyncSession,
    *,
    principal: Principal,
    attempt_id: int,
    answers: Sequence[AnswerIn],
    now: dt.datetime | None = None,
    cache: ExamCache | None = None,
) -> SaveOut:
    """自动保存: append each answer with the browser's sequence number; the highest one counts.

    Only what the attempt accepts is stored: the candidate's own, still open, within its deadline
    and grace, at a position of the paper. A repeated save is a no-op. What was stored goes to the
    audit trail (through the outbox) in the same transaction. A save to a closed attempt, or
    past time-up, is refused with ``TimeUp`` and stores nothing; past time-up the attempt is
    closed (graded) too, which the caller commits although it answers 409.
    """
    officer_id = officer_id_of(principal)
    now = now or utcnow()
    limit = now - rules.GRACE
    for a in answers:
        if not rules.valid_choice(a.choice):
            raise DomainError(f"第 {a.position + 1} 题的答案无效", field="answers")
    choices = [rules.choice_text(a.choice) for a in answers]
    actor = actor_of(principal)
    if db.bind is not None and db.bind.dialect.name == "postgresql":
        attempt_row = (
            await db.execute(
                SAVE_ANSWERS,
                {
                    "attempt_id": attempt_id,
                    "officer_id": officer_id,
                    "now": now,
                    "limit": limit,
                    "positions": [a.position for a in answers],
                    "seqs": [a.seq for a in answers],
                    "choices": choices,
                    "actor_id": actor.account_id,
                    "actor_name": actor.name,
                },
            )
        ).one_or_none()
        if attempt_row is None:
            raise NotFound("答卷不存在")
        status, deadline, count, saved, clash = attempt_row
        saved = list(saved)
        if clash is not None and status == AttemptStatus.OPEN and deadline >= limit:
            raise _clash(clash)
    else:
        # The SQLite twin of the statement's ``clash``: a stored (position, seq) with another answer.
        stored_choices = {
            (position, seq): choice
            for position, seq, choice in (
                await db.execute(
                    select(ExamAnswer.position, ExamAnswer.seq, ExamAnswer.choice)
                    .join(ExamAttempt, ExamAttempt.id == ExamAnswer.attempt_id)
                    .where(
                        ExamAnswer.attempt_id == attempt_id,
                        ExamAttempt.officer_id == officer_id,
                        ExamAttempt.status == AttemptStatus.OPEN,
                        ExamAnswer.position.in_({a.position for a in answers}),
                    )
                )
            ).all()
        }
        for a, choice in zip(answers, choices, strict=True):
            if stored_choices.get((a.position, a.seq), choice) != choice:
                raise _clash(a.position)
        stored: list[list[Any]] = []
        for a, choice in zip(answers, choices, strict=True):
            src = select(
                ExamAttempt.id,
                literal(a.position),
                literal(a.seq),
                literal(choice),
                literal(now, type_=ExamAnswer.__table__.c.saved_at.type),
            ).where(
                ExamAttempt.id == attempt_id,
                ExamAttempt.officer_id == officer_id,
                ExamAttempt.status == AttemptStatus.OPEN,
                ExamAttempt.deadline_at >= limit,
                ExamAttempt.question_count > a.position,
            )
            stmt = (
                sqlite.insert(ExamAnswer)
                .from_select(["attempt_id", "position", "seq", "choice", "saved_at"], src)
                .on_conflict_do_nothing(index_elements=["attempt_id", "position", "seq"])
                .returning(ExamAnswer.position)
            )
            if (await db.execute(stmt)).scalar_one_or_none() is not None:
                stored.append([a.position, a.seq, choice])
        attempt_row = (
            await db.execute(
                select(
                    ExamAttempt.status,
                    ExamAttempt.deadline_at,
                    ExamAttempt.question_count,
                    ExamAttempt.agency_id,
                ).where(ExamAttempt.id == attempt_id, ExamAttempt.officer_id == officer_id)
            )
        ).one_or_none()
        if attempt_row is None:
            raise NotFound("答卷不存在")
        status, deadline, count, agency_id = attempt_row
        saved = [p for p, _s, _c in stored]
        if stored:
            await audit_enqueue(
                db,
                actor=actor,
                action="exam.answers.save",
                entity_type="exam_attempt",
                entity_id=attempt_id,
                agency_id=agency_id,
                data={"answers": sorted(stored)},
                occurred_at=now,
            )
    if len(saved) < len(answers):
        missing = [a for a in answers if a.position not in saved]
        if status != AttemptStatus.OPEN or deadline < limit:
            if status == AttemptStatus.OPEN:
                await attempt_close(
                    db,
                    attempt_id=attempt_id,
                    by=ClosedBy.TIMEOUT,
                    actor=SYSTEM,
                    now=now,
                    cache=cache,
                    wait=False,  # this transaction holds the share lock of the save
                )
            raise TimeUp("考试时间已到或已交卷，答案未能保存", field="answers")
        bad = [a for a in missing if a.position >= count]
        if bad:
            raise DomainError(f"第 {bad[0].position + 1} 题不在本试卷中", field="answers")
        # The rest were repeats of a save already stored (same position and seq).
        saved.extend(a.position for a in missing)
    return SaveOut(
        saved=sorted(set(saved)),
        server_now=now,
        deadline_at=deadline,
        seconds_left=rules.seconds_left(deadline, now),
    )
