"""The candidate's attempt lifecycle: 我的考试, 开始作答, 交卷, 离开页面.

The exam-day paths are kept short on purpose: a paper is served from the attempt row plus the
application's cache of question versions, which never change. Starts, submissions, time-ups and
leaving the page are in the hash-chained audit trail (through the outbox)."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Officer
from app.audit.rules import event_fields
from app.audit.services import audit_change
from app.exams import rules
from app.exams.cache import ExamCache
from app.exams.models import Exam, ExamAttempt, ExamEnrolment, ExamPartRow, ExamSession
from app.exams.rules import AttemptStatus, ClosedBy, ExamPart
from app.exams.schemas import AttemptBrief, AttemptOut, MySession, PartStatus
from app.exams.services.common import ATTEMPTS, blueprint_of, officer_id_of, parts_of, session_out
from app.exams.services.grading import LOCK_OWN_ATTEMPT, attempt_close, close_overdue_of, grade_and_close
from app.exams.services.pools import BANKS_STAMP, attempt_paper, pool_of, questions_of
from app.exams.services.views import Sheet, attempt_out, attempt_view, own_attempt, view_of
from app.exams.writer import Op, sqlite_time, start_op
from app.lib.clock import utcnow
from app.lib.errors import Conflict, NotFound
from app.lib.security import Principal, actor_of


def _start_refusal(
    s: ExamSession, exam: Exam, mine: Sequence[ExamAttempt], now: dt.datetime
) -> rules.StartRefusal | None:
    """Why the officer may not start a part now, given their attempts of it (``mine``); None: they may."""
    return rules.start_refusal(
        now=now,
        opens_at=s.opens_at,
        closes_at=s.closes_at,
        previous=[a.passed for a in mine if a.status == AttemptStatus.CLOSED],
        retakes=exam.retakes,
    )


async def my_sessions(
    db: AsyncSession, principal: Principal, *, now: dt.datetime | None = None, cache: ExamCache | None = None
) -> list[MySession]:
    """我的考试: the sessions the officer is enrolled in, with each part's attempts and whether it can start."""
    officer_id = officer_id_of(principal)
    now = now or utcnow()
    await close_overdue_of(db, officer_id=officer_id, now=now, cache=cache)
    rows = (
        await db.execute(
            select(ExamSession, Exam)
            .join(ExamEnrolment, ExamEnrolment.session_id == ExamSession.id)
            .join(Exam, Exam.id == ExamSession.exam_id)
            .where(ExamEnrolment.officer_id == officer_id)
            .order_by(ExamSession.opens_at.desc())
        )
    ).all()
    attempts = list(
        (
            await db.scalars(
                select(ExamAttempt).where(ExamAttempt.officer_id == officer_id).order_by(ExamAttempt.number)
            )
        ).all()
    )
    out = []
    for s, exam in rows:
        parts = await parts_of(db, exam.id)
        statuses = []
        for p in parts:
            mine = [a for a in attempts if a.session_id == s.id and a.part_id == p.id]
            open_a = next((a for a in mine if a.status == AttemptStatus.OPEN), None)
            refusal = _start_refusal(s, exam, mine, now)
            part = ExamPart(p.part)
            statuses.append(
                PartStatus(
                    part_id=p.id,
                    part=part,
                    part_label=part.label,
                    title=p.title,
                    duration_minutes=p.duration_minutes,
                    question_count=sum(r.count for r in blueprint_of(p)),
                    attempts=[
                        AttemptBrief(
                            id=a.id, number=a.number, status=a.status, score=a.score, passed=a.passed
                        )
                        for a in mine
                    ],
                    can_start=open_a is None and refusal is None,
                    open_attempt_id=open_a.id if open_a else None,
                    refusal="" if refusal is None or open_a else rules.START_REFUSALS[refusal],
                )
            )
        out.append(
            MySession(
                session=session_out(s, exam.title, 0, now),
                pass_mark=exam.pass_mark,
                retakes=exam.retakes,
                parts=statuses,
            )
        )
    return out


async def attempt_start(
    db: AsyncSession,
    *,
    principal: Principal,
    session_id: int,
    part_id: int,
    now: dt.datetime | None = None,
    cache: ExamCache | None = None,
) -> ExamAttempt:
    """开始作答: draw a paper by the part's blueprint; an open attempt of the part is resumed instead."""
    started = await _start(
        db, principal=principal, session_id=session_id, part_id=part_id, now=now, cache=cache
    )
    return started[0]


async def attempt_start_view(
    db: AsyncSession,
    *,
    principal: Principal,
    session_id: int,
    part_id: int,
    now: dt.datetime | None = None,
    cache: ExamCache | None = None,
) -> AttemptOut:
    """开始作答 and the paper in one request: a new attempt is served from what the start
    transaction already holds (no answers yet); a resumed one is read as ``attempt_view`` does."""
    now = now or utcnow()
    attempt, started = await _start(
        db, principal=principal, session_id=session_id, part_id=part_id, now=now, cache=cache
    )
    if started is None:
        return await attempt_view(db, principal, attempt.id, now=now, cache=cache)
    s, exam, part = started
    paper = attempt_paper(attempt)
    content = await questions_of(db, [p.question_id for p in paper], cache=cache)
    return attempt_out(Sheet(attempt, s, exam, part, paper, content, {}), now)


_START_ROW = (
    select(ExamSession, Exam, ExamPartRow, Officer, BANKS_STAMP)
    .join(Exam, Exam.id == ExamSession.exam_id)
    .join(ExamPartRow, ExamPartRow.exam_id == Exam.id)
    .join(
        ExamEnrolment,
        and_(ExamEnrolment.session_id == ExamSession.id, ExamEnrolment.officer_id == bindparam("officer_id")),
    )
    .join(Officer, Officer.id == bindparam("officer_id"))
    .where(ExamSession.id == bindparam("session_id"), ExamPartRow.id == bindparam("part_id"))
)
"""The session, exam, part, enrolment, officer and the banks' import stamp of a start."""

_START_ATTEMPTS = select(ExamAttempt).where(
    ExamAttempt.officer_id == bindparam("officer_id"),
    or_(
        and_(ExamAttempt.session_id == bindparam("session_id"), ExamAttempt.part_id == bindparam("part_id")),
        and_(ExamAttempt.status == AttemptStatus.OPEN.value, ExamAttempt.deadline_at < bindparam("cutoff")),
    ),
)
"""This part's attempts, and any of the officer's attempts past time-up (closed lazily first)."""

_INSERT_ATTEMPT = insert(ATTEMPTS).returning(ATTEMPTS.c.id)
"""The new attempt (Core: the ORM's flush of one row costs more than the statement)."""


async def _start(
    db: AsyncSession,
    *,
    principal: Principal,
    session_id: int,
    part_id: int,
    now: dt.datetime | None,
    cache: ExamCache | None,
) -> tuple[ExamAttempt, tuple[ExamSession, Exam, ExamPartRow] | None]:
    """(the attempt, (session, exam, part) when it was started now / None when resumed)."""
    officer_id = officer_id_of(principal)
    now = now or utcnow()
    ids = {"officer_id": officer_id, "session_id": session_id, "part_id": part_id}
    row = (await db.execute(_START_ROW, ids)).one_or_none()
    attempts = list((await db.scalars(_START_ATTEMPTS, {**ids, "cutoff": now - rules.GRACE})).all())
    if any(a.status == AttemptStatus.OPEN and rules.is_overdue(a.deadline_at, now) for a in attempts):
        await close_overdue_of(db, officer_id=officer_id, now=now, cache=cache)
        return await _start(
            db, principal=principal, session_id=session_id, part_id=part_id, now=now, cache=cache
        )
    if row is None:
        raise NotFound("考试不存在或您未报名该考试")
    s, exam, part, officer, stamp = row
    mine = [a for a in attempts if a.session_id == s.id and a.part_id == part.id]
    open_a = next((a for a in mine if a.status == AttemptStatus.OPEN), None)
    if open_a is not None:
        return open_a, None
    refusal = _start_refusal(s, exam, mine, now)
    if refusal is not None:
        raise Conflict(rules.START_REFUSALS[refusal])
    values = await _drawn(db, s, part, officer, stamp, number=len(mine) + 1, now=now, cache=cache)
    try:
        # In a savepoint: a refused insert must not spoil the request's transaction.
        async with db.begin_nested():
            attempt_id = (await db.execute(_INSERT_ATTEMPT, values)).scalar_one()
    except IntegrityError:
        # A second tab or a double click started the same part at the same moment: resume theirs.
        existing = await db.scalar(
            select(ExamAttempt).where(
                ExamAttempt.officer_id == officer_id,
                ExamAttempt.part_id == part.id,
                ExamAttempt.status == AttemptStatus.OPEN,
            )
        )
        if existing is None:
            raise
        return existing, None
    attempt = ExamAttempt(id=attempt_id, **values)  # as stored; not added to the session
    # Into the audit outbox with the attempt (no wait for the chain's lock): chained within seconds.
    await audit_change(
        db, principal, "exam.attempt.start", attempt, _start_event(attempt, part.part), queued=True
    )
    return attempt, (s, exam, part)


async def first_start(
    read: AsyncSession,
    *,
    principal: Principal,
    session_id: int,
    part_id: int,
    cache: ExamCache | None = None,
) -> Op | None:
    """开始作答 on SQLite, the ordinary case: the officer's first attempt of the part, in a session
    they may start now, nothing of theirs past time-up. The checks and the draw run on ``read`` (a
    read-only session: no write lock); what this returns is the exam writer's item
    (``app.exams.writer``) that inserts the attempt and its outbox event in the writer's next batch
    and answers the new attempt's id: the write lock is held for the insert alone, not for the
    reads, the draw and the hops between them. None for any other case (and the item answers None
    for a start the unique indexes refuse: a double click): the caller hands those to
    ``attempt_start``. Run the item once ``read`` is closed."""
    officer_id = officer_id_of(principal)
    now = utcnow()
    ids = {"officer_id": officer_id, "session_id": session_id, "part_id": part_id}
    row = (await read.execute(_START_ROW, ids)).one_or_none()
    earlier = (await read.scalars(_START_ATTEMPTS.limit(1), {**ids, "cutoff": now - rules.GRACE})).first()
    if row is None or earlier is not None:
        return None
    s, exam, part, officer, stamp = row
    if _start_refusal(s, exam, [], now) is not None:
        return None
    try:
        values = await _drawn(read, s, part, officer, stamp, number=1, now=now, cache=cache)
    except Conflict:
        return None
    actor = actor_of(principal)

    def event(attempt_id: int) -> tuple[Any, ...]:
        data = _start_event(ExamAttempt(**values), part.part)
        fields = event_fields(
            actor, "exam.attempt.start", "exam_attempt", attempt_id, officer.agency_id, data, now
        )
        return (sqlite_time(now), *list(fields.values())[1:])

    return start_op(values, event)


async def _drawn(
    db: AsyncSession,
    s: ExamSession,
    part: ExamPartRow,
    officer: Officer,
    stamp: Any,
    *,
    number: int,
    now: dt.datetime,
    cache: ExamCache | None,
) -> dict[str, Any]:
    """A new attempt's row: the paper drawn by the part's blueprint, its deadline."""
    pool, banks = await pool_of(db, part=part.part, field=officer.field, stamp=stamp, cache=cache)
    seed = secrets.randbits(62)
    try:
        paper = rules.draw_paper(blueprint_of(part), pool, seed=seed, banks_of=banks)
    except rules.DrawError as exc:
        what = "公共法律知识" if part.part == ExamPart.PUBLIC else f"执法领域“{officer.field}”的专门法律知识"
        raise Conflict(f"{what}题库不足，暂时无法组卷（{exc}），请联系考试管理员") from exc
    return {
        "session_id": s.id,
        "part_id": part.id,
        "officer_id": officer.id,
        "agency_id": officer.agency_id,
        "field": officer.field,
        "number": number,
        "seed": seed,
        "paper_json": json.dumps(
            [[p.question_id, list(p.order), p.points, p.category, p.type] for p in paper]
        ),
        "question_count": len(paper),
        "status": AttemptStatus.OPEN.value,
        "started_at": now,
        "deadline_at": rules.attempt_deadline(
            now, duration_minutes=part.duration_minutes, closes_at=s.closes_at
        ),
        "closed_at": None,
        "closed_by": "",
        "score": None,
        "passed": None,
        "result_json": "",
        "leave_count": 0,
    }


def _start_event(attempt: ExamAttempt, part: str) -> dict[str, Any]:
    """What the audit trail says of a start."""
    return {
        "session_id": attempt.session_id,
        "part": part,
        "number": attempt.number,
        "seed": attempt.seed,
        "questions": attempt.question_count,
        "deadline_at": attempt.deadline_at.isoformat(),
    }


async def attempt_submit(
    db: AsyncSession,
    *,
    principal: Principal,
    attempt_id: int,
    now: dt.datetime | None = None,
    with_paper: bool = True,
    cache: ExamCache | None = None,
) -> AttemptOut:
    """交卷: close and grade with every saved answer; a second submit returns the same result.
    ``with_paper``: as ``view_of`` takes it."""
    now = now or utcnow()
    row = (
        await db.execute(LOCK_OWN_ATTEMPT, {"attempt_id": attempt_id, "officer_id": officer_id_of(principal)})
    ).one_or_none()
    if row is None:
        raise NotFound("答卷不存在")
    attempt = row[0]
    if attempt.status == AttemptStatus.OPEN:
        by = ClosedBy.TIMEOUT if rules.is_overdue(attempt.deadline_at, now) else ClosedBy.CANDIDATE
        closed = await grade_and_close(db, row, by=by, actor=actor_of(principal), now=now, cache=cache)
        if closed is not None:
            # The result from what the close holds (no second read of the attempt and its paper).
            _attempt, exam, s, part = row
            sheet = Sheet(attempt, s, exam, part, closed.paper, closed.content, closed.answers)
            return await view_of(db, sheet, now, grant=closed.grant, with_paper=with_paper)
    # A second submit: the first one's result.
    return await attempt_view(db, principal, attempt_id, now=now, with_paper=with_paper, cache=cache)


async def attempt_leave(
    db: AsyncSession,
    *,
    principal: Principal,
    attempt_id: int,
    now: dt.datetime | None = None,
    cache: ExamCache | None = None,
) -> bool:
    """离开考试页面: logged; submits when the session says so. Returns whether it submitted."""
    attempt = await own_attempt(db, principal, attempt_id)
    now = now or utcnow()
    if attempt.status != AttemptStatus.OPEN:
        return False
    s = await db.get(ExamSession, attempt.session_id)
    assert s is not None
    await db.execute(
        update(ExamAttempt)
        .where(ExamAttempt.id == attempt.id)
        .values(leave_count=ExamAttempt.leave_count + 1)
    )
    await audit_change(
        db, principal, "exam.attempt.leave", attempt, {"submit_on_leave": s.submit_on_leave}, queued=True
    )
    if s.submit_on_leave:
        await attempt_close(
            db, attempt_id=attempt.id, by=ClosedBy.LEAVE, actor=actor_of(principal), now=now, cache=cache
        )
        return True
    return False
