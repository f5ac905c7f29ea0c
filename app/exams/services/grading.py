"""Grading and closing an attempt (交卷, time-up), the qualification it may grant, and the sweep of
attempts nobody came back to."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from app.accounts.models import Agency, Officer
from app.accounts.selectors import agency_policies
from app.audit.services import audit_change
from app.db import SqliteReader
from app.exams import rules
from app.exams.cache import ExamCache, QuestionContent
from app.exams.models import Exam, ExamAnswer, ExamAttempt, ExamPartRow, ExamQualification, ExamSession
from app.exams.rules import AttemptStatus, ClosedBy, ExamPart
from app.exams.services.common import ATTEMPTS, enrolment_of, parts_of
from app.exams.services.pools import attempt_paper, questions_of
from app.exams.writer import sqlite_time
from app.lib.actor import SYSTEM, Actor
from app.lib.clock import beijing_date, utcnow
from app.lib.errors import NotFound

_ANSWERS = (
    select(ExamAnswer.position, ExamAnswer.choice, ExamAnswer.seq)
    .where(ExamAnswer.attempt_id == bindparam("attempt_id"))
    .order_by(ExamAnswer.position, ExamAnswer.seq)
)


async def latest_answers(db: AsyncSession, attempt_id: int) -> dict[int, tuple[tuple[int, ...], int]]:
    """position → (displayed choice, seq) of the highest seq saved."""
    return latest_of(await db.execute(_ANSWERS, {"attempt_id": attempt_id}))


def latest_of(rows: Any) -> dict[int, tuple[tuple[int, ...], int]]:
    """(position, choice, seq) rows ordered by position and seq → position → (choice, seq) of the last."""
    out: dict[int, tuple[tuple[int, ...], int]] = {}
    for position, choice, seq in rows:
        out[position] = (rules.parse_choice(choice), seq)  # ordered by seq: the last one wins
    return out


async def attempt_close(
    db: AsyncSession,
    *,
    attempt_id: int,
    by: ClosedBy,
    actor: Actor,
    now: dt.datetime | None = None,
    cache: ExamCache | None = None,
    wait: bool = True,
) -> bool:
    """Grade and close an open attempt with what was saved; grant the qualification when every
    required part is passed. Returns False when it was already closed (someone else won), or,
    with ``wait=False``, when another transaction holds the attempt.

    The attempt stays locked until the caller's transaction ends (the request's edge, or the
    sweep's transaction per attempt)."""
    now = now or utcnow()
    lock = LOCK_ATTEMPT if wait else LOCK_ATTEMPT_IF_FREE
    row = (await db.execute(lock, {"attempt_id": attempt_id})).one_or_none()
    if row is None:
        if not wait:
            return False
        raise NotFound("答卷不存在")
    return await grade_and_close(db, row, by=by, actor=actor, now=now, cache=cache) is not None


def attempt_with_exam(attempt_id: Any) -> Select[ExamAttempt, Exam, ExamSession, ExamPartRow]:
    """An attempt with its exam, session and part (the exam pages and the submit read them), for an
    id or a bind parameter. The exam pages build it per call (``views``): prebuilt, it made exam
    day's start minute slower (bench/README.md, stop 28)."""
    return (
        select(ExamAttempt, Exam, ExamSession, ExamPartRow)
        .join(ExamSession, ExamSession.id == ExamAttempt.session_id)
        .join(Exam, Exam.id == ExamSession.exam_id)
        .join(ExamPartRow, ExamPartRow.id == ExamAttempt.part_id)
        .where(ExamAttempt.id == attempt_id)
        .execution_options(populate_existing=True)
    )


# The attempt, locked (waits for in-flight saves, which hold a share lock on it), with its exam,
# session and part. Lock order everywhere: the attempt, then (only when it passed) the officer's
# enrolment. Built once: a statement's construction costs more than its execution.
LOCK_ATTEMPT = attempt_with_exam(bindparam("attempt_id")).with_for_update(of=ExamAttempt)
LOCK_OWN_ATTEMPT = LOCK_ATTEMPT.where(ExamAttempt.officer_id == bindparam("officer_id"))
LOCK_ATTEMPT_IF_FREE = LOCK_ATTEMPT.with_for_update(of=ExamAttempt, skip_locked=True)
"""``LOCK_ATTEMPT``, or no row when another transaction holds or awaits the attempt (it closes it):
for a transaction that already holds the attempt's share lock (a save), which would deadlock
upgrading it while another waits."""


_CLOSE = (
    update(ATTEMPTS)
    .where(ATTEMPTS.c.id == bindparam("attempt_id"), ATTEMPTS.c.status == AttemptStatus.OPEN.value)
    .values(
        {
            c: bindparam(f"new_{c}")
            for c in ("status", "closed_at", "closed_by", "score", "passed", "result_json")
        }
    )
)
"""The close (a Core statement: the ORM's update path synchronises the session, which costs more
than the statement)."""


@dataclass
class Closed:
    paper: list[rules.PaperItem]
    content: dict[int, QuestionContent]
    answers: dict[int, tuple[tuple[int, ...], int]]
    grant: ExamQualification | None


def grade_attempt(
    paper: list[rules.PaperItem],
    content: dict[int, QuestionContent],
    answers: dict[int, tuple[tuple[int, ...], int]],
    *,
    scoring: str,
    pass_mark: float,
) -> tuple[rules.Grade, dict[str, Any]]:
    """The grade of a paper with these answers, and the ``result_json`` it is stored as."""
    fractions = []
    for position, item in enumerate(paper):
        chosen_display = answers.get(position, ((), 0))[0]
        if not chosen_display:  # unanswered (most of a paper until late): nothing earned
            fractions.append(0.0)
            continue
        q = content[item.question_id]
        if not rules.valid_choice(chosen_display, qtype=item.type, option_count=len(item.order)):
            fractions.append(0.0)
            continue
        chosen = rules.to_bank_indexes(chosen_display, item.order)
        fractions.append(rules.item_fraction(item.type, q.key, chosen, scoring=scoring, weights=q.weights))
    g = rules.grade(paper, fractions, pass_mark=pass_mark)
    result = {
        "fractions": [round(f, 4) for f in g.fractions],
        "categories": [
            {
                "category": c.category,
                "earned": c.earned,
                "possible": c.possible,
                "correct": c.correct,
                "questions": c.questions,
            }
            for c in g.categories
        ],
        "answered": len([p for p, (c, _s) in answers.items() if c]),
    }
    return g, result


def close_event_data(by: ClosedBy, g: rules.Grade, result: dict[str, Any]) -> dict[str, Any]:
    """What the audit trail says of a close."""
    return {"by": by.value, "score": g.score, "passed": g.passed, "answered": result["answered"]}


async def grade_and_close(
    db: AsyncSession,
    row: Any,
    *,
    by: ClosedBy,
    actor: Actor,
    now: dt.datetime,
    cache: ExamCache | None = None,
) -> Closed | None:
    """Grade the locked attempt of ``row`` (from ``LOCK_ATTEMPT``) and close it; None when it was
    already closed (someone else won). The attempt object is given its closed state."""
    attempt, exam = row[0], row[1]
    if attempt.status != AttemptStatus.OPEN:
        return None
    paper = attempt_paper(attempt)
    content = await questions_of(db, [p.question_id for p in paper], cache=cache)
    answers = await latest_answers(db, attempt.id)
    g, result = grade_attempt(
        paper, content, answers, scoring=exam.multiple_scoring, pass_mark=exam.pass_mark
    )
    closed_state = {
        "status": AttemptStatus.CLOSED.value,
        "closed_at": now,
        "closed_by": by.value,
        "score": g.score,
        "passed": g.passed,
        "result_json": json.dumps(result),
    }
    done = await db.execute(
        _CLOSE, {"attempt_id": attempt.id, **{f"new_{k}": v for k, v in closed_state.items()}}
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return None
    grant = None
    if g.passed:
        # The enrolment's lock serialises the parts' qualification check: two parts passed at
        # the same moment grant once (the second sees the first committed).
        await enrolment_of(db, attempt.session_id, attempt.officer_id, lock=True)
        grant = await _grant_if_qualified(db, attempt=attempt, exam=exam, now=now)
    # Into the audit outbox, committed with the grade; chained within seconds (no database-wide
    # lock held by the submit burst).
    await audit_change(db, actor, "exam.attempt.close", attempt, close_event_data(by, g, result), queued=True)
    if grant is not None:
        await audit_change(
            db,
            actor,
            "exam.qualification.grant",
            grant,
            {
                "officer_id": grant.officer_id,
                "session_id": attempt.session_id,
                "field": grant.field,
                "passed_on": grant.passed_on.isoformat(),
                "valid_until": grant.valid_until.isoformat(),
                "score": grant.score,
            },
            agency_id=attempt.agency_id,
            queued=True,
        )
    for key, value in closed_state.items():  # as stored, without marking the object changed
        set_committed_value(attempt, key, value)
    return Closed(paper, content, answers, grant)


async def _grant_if_qualified(
    db: AsyncSession, *, attempt: ExamAttempt, exam: Exam, now: dt.datetime
) -> ExamQualification | None:
    parts = await parts_of(db, exam.id)
    rows = (
        await db.execute(
            select(ExamAttempt.id, ExamAttempt.part_id, ExamAttempt.passed, ExamAttempt.score).where(
                ExamAttempt.session_id == attempt.session_id, ExamAttempt.officer_id == attempt.officer_id
            )
        )
    ).all()
    best: dict[int, float] = {}
    results: dict[str, bool | None] = {}
    part_of = {p.id: p.part for p in parts}
    for _aid, part_id, passed, score in rows:
        if passed:
            results[part_of[part_id]] = True
            best[part_id] = max(best.get(part_id, 0.0), score or 0.0)
    if not rules.qualified(results, [p.part for p in parts]):
        return None
    ids = [r[0] for r in rows]
    if await db.scalar(select(ExamQualification.id).where(ExamQualification.attempt_id.in_(ids))):
        return None
    officer, agency = (
        await db.execute(
            select(Officer, Agency)
            .join(Agency, Agency.id == Officer.agency_id)
            .where(Officer.id == attempt.officer_id)
        )
    ).one()
    policy = (await agency_policies(db, {agency.id: agency.path}))[agency.id]
    passed_on = beijing_date(now)
    has_special = any(p.part == ExamPart.SPECIALISED for p in parts)
    grant = ExamQualification(
        officer_id=officer.id,
        field=attempt.field if has_special else "",
        passed_on=passed_on,
        valid_until=rules.valid_until(passed_on, policy.exam_result_valid_years),
        score=round(min(best.values())),
        source="exam",
        attempt_id=attempt.id,
        status="valid",
    )
    db.add(grant)
    await db.flush()
    return grant


def _overdue(officer_id: Any, before: Any) -> Select[int]:
    """The officer's open attempts whose time-up and grace ended before ``before``."""
    return select(ExamAttempt.id).where(
        ExamAttempt.officer_id == officer_id,
        ExamAttempt.status == AttemptStatus.OPEN,
        ExamAttempt.deadline_at < before,
    )


def _overdue_of(officer_id: int, now: dt.datetime) -> Select[int]:
    """This officer's open attempts past their time-up and grace."""
    return _overdue(officer_id, now - rules.GRACE)


_HAS_OVERDUE_SQLITE, _HAS_OVERDUE_VALUES = SqliteReader.statement(
    _overdue(bindparam("officer_id"), bindparam("before")).limit(1)
)


async def has_overdue(
    db: AsyncSession, *, officer_id: int, now: dt.datetime, reader: SqliteReader | None = None
) -> bool:
    """Whether an access now would close one of this officer's attempts (a selector). ``reader``:
    SQLite's in-place reader (every candidate page asks this, before its session is chosen)."""
    if reader is not None:
        values = {**_HAS_OVERDUE_VALUES, "officer_id": officer_id, "before": sqlite_time(now - rules.GRACE)}
        return reader.fetchrow(_HAS_OVERDUE_SQLITE, values) is not None
    return (await db.scalar(_overdue_of(officer_id, now).limit(1))) is not None


async def close_overdue_of(
    db: AsyncSession, *, officer_id: int, now: dt.datetime, cache: ExamCache | None = None
) -> None:
    """Lazily close this officer's attempts past time-up (on any access)."""
    ids = list((await db.scalars(_overdue_of(officer_id, now))).all())
    for attempt_id in ids:
        await attempt_close(
            db, attempt_id=attempt_id, by=ClosedBy.TIMEOUT, actor=SYSTEM, now=now, cache=cache
        )


async def attempts_overdue(db: AsyncSession, *, now: dt.datetime, limit: int = 500) -> list[int]:
    """The open attempts past their deadline and grace, the longest overdue first (a selector)."""
    return list(
        (
            await db.scalars(
                select(ExamAttempt.id)
                .where(ExamAttempt.status == AttemptStatus.OPEN, ExamAttempt.deadline_at < now - rules.GRACE)
                .order_by(ExamAttempt.deadline_at)
                .limit(limit)
            )
        ).all()
    )


async def attempts_sweep(
    db: AsyncSession, *, now: dt.datetime | None = None, limit: int = 500, cache: ExamCache | None = None
) -> int:
    """Close every open attempt past its deadline and grace (the candidate may never come back), in
    the caller's transaction. The server's sweeper (``app.exams.tasks``) closes each in a
    transaction of its own instead, so that no candidate's submit waits for a whole batch."""
    now = now or utcnow()
    closed = 0
    for attempt_id in await attempts_overdue(db, now=now, limit=limit):
        if await attempt_close(
            db, attempt_id=attempt_id, by=ClosedBy.TIMEOUT, actor=SYSTEM, now=now, cache=cache
        ):
            closed += 1
    return closed
