"""The candidate's view of an attempt: the paper (never its keys while open), the saved answers,
the server's deadline; once closed, the result and the review the session's policy allows."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any, NamedTuple, cast

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import DriverPool, SqliteReader
from app.exams import rules
from app.exams.cache import ExamCache, QuestionContent
from app.exams.models import Exam, ExamAttempt, ExamPartRow, ExamQualification, ExamQuestion, ExamSession
from app.exams.rules import AttemptStatus, ClosedBy, ExamPart, QuestionCategory, QuestionType, ReviewPolicy
from app.exams.schemas import (
    AnswerOut,
    AttemptOut,
    CategoryOut,
    PaperQuestion,
    QualificationOut,
    ResultOut,
    ReviewItem,
)
from app.exams.services.common import officer_id_of, session_state
from app.exams.services.grading import attempt_close, attempt_with_exam, latest_answers
from app.exams.services.pools import attempt_paper, questions_of
from app.exams.statements import POSTGRES_RESULT_ATTEMPT, SQLITE_RESULT_ATTEMPT
from app.exams.writer import time_of
from app.lib.actor import SYSTEM
from app.lib.clock import utcnow
from app.lib.errors import NotFound, possible_id
from app.lib.security import Principal


class Sheet(NamedTuple):
    """An attempt as the candidate's view shows it: the attempt with its session, exam and part, the
    paper drawn, the question versions it names, the saved answers (position → (choice, seq))."""

    attempt: ExamAttempt
    s: ExamSession
    exam: Exam
    part: ExamPartRow
    paper: list[rules.PaperItem]
    content: dict[int, QuestionContent]
    answers: dict[int, tuple[tuple[int, ...], int]]


def _theirs(attempt: ExamAttempt | None, principal: Principal) -> ExamAttempt:
    """The attempt if it is the principal's own; anyone else's, or none: 404."""
    officer_id = officer_id_of(principal)
    if attempt is None or attempt.officer_id != officer_id:
        raise NotFound("答卷不存在")
    return attempt


# The review's and the result's reads, built once. The attempt's own reads (``own_attempt``,
# ``_own_attempt_with_exam``) and the start's are built per call on purpose: prebuilt with bind
# parameters they cost less per request alone, yet made exam day's start minute at 10,000 several
# times slower in every one of five runs (bench/README.md, stop 28); why is not yet known.
_REVIEW_META = select(ExamQuestion.id, ExamQuestion.basis, ExamQuestion.explanation).where(
    ExamQuestion.id.in_(bindparam("ids", expanding=True))
)
_QUALIFICATION_OF_ATTEMPT = select(ExamQualification).where(
    ExamQualification.attempt_id == bindparam("attempt_id")
)
_QUALIFICATION_OF_SESSION = (
    select(ExamQualification)
    .join(ExamAttempt, ExamAttempt.id == ExamQualification.attempt_id)
    .where(
        ExamAttempt.session_id == bindparam("session_id"),
        ExamAttempt.officer_id == bindparam("officer_id"),
    )
)


async def own_attempt(db: AsyncSession, principal: Principal, attempt_id: int) -> ExamAttempt:
    attempt = await db.scalar(
        select(ExamAttempt).where(ExamAttempt.id == attempt_id).execution_options(populate_existing=True)
    )
    return _theirs(attempt, principal)


async def _own_attempt_with_exam(
    db: AsyncSession, principal: Principal, attempt_id: int
) -> tuple[ExamAttempt, ExamSession, Exam, ExamPartRow]:
    """``own_attempt`` with its session, exam and part, in one statement (every exam page reads them)."""
    row = (await db.execute(attempt_with_exam(attempt_id))).one_or_none()
    attempt = _theirs(None if row is None else row[0], principal)
    assert row is not None
    return attempt, row[2], row[1], row[3]


async def attempt_view(
    db: AsyncSession,
    principal: Principal,
    attempt_id: int,
    *,
    now: dt.datetime | None = None,
    with_paper: bool = True,
    cache: ExamCache | None = None,
    paper_if_shown: bool = False,
    reader: SqliteReader | None = None,
    driver: DriverPool | None = None,
) -> AttemptOut:
    """The paper (never its keys while open), the saved answers and the server's deadline; the result
    once closed, with the correct answers only when the session's review policy allows.
    ``with_paper``: as ``view_of`` takes it. ``paper_if_shown`` (the exam page): a closed attempt
    whose review is not shown comes without its paper and answers, which its result page does not
    show (reading and building 100 questions was half the cost of the page in the submit burst).
    ``reader`` / ``driver`` (SQLite's reader or PostgreSQL's pool, with ``paper_if_shown``): such a
    result page is read straight on the driver when it needs nothing more (``closed_result_on_driver``)."""
    now = now or utcnow()
    if paper_if_shown and (reader is not None or driver is not None):
        closed = await closed_result_on_driver(principal, attempt_id, now, reader=reader, driver=driver)
        if closed is not None:
            return closed
    attempt, s, exam, part = await _own_attempt_with_exam(db, principal, attempt_id)
    if attempt.status == AttemptStatus.OPEN and rules.is_overdue(attempt.deadline_at, now):
        await attempt_close(
            db, attempt_id=attempt.id, by=ClosedBy.TIMEOUT, actor=SYSTEM, now=now, cache=cache
        )
        attempt = await own_attempt(db, principal, attempt_id)
    if paper_if_shown and attempt.status != AttemptStatus.OPEN and not _review_shown(s, now):
        with_paper = False
    paper = attempt_paper(attempt)
    content = await questions_of(db, [p.question_id for p in paper], cache=cache) if with_paper else {}
    answers = await latest_answers(db, attempt.id) if with_paper else {}
    return await view_of(
        db, Sheet(attempt, s, exam, part, paper, content, answers), now, with_paper=with_paper
    )


async def view_of(
    db: AsyncSession,
    sheet: Sheet,
    now: dt.datetime,
    *,
    grant: ExamQualification | None = None,
    with_paper: bool = True,
) -> AttemptOut:
    """The candidate's view; once closed, with the result and (when the session's policy allows
    it) the review. ``grant``: the qualification the close just granted, if it did.
    ``with_paper`` False, for a client that asked for no representation back (``Prefer:
    return=minimal``, the exam page's submit, which then loads the result page): the attempt and
    its result without the questions, the saved answers and the review (46 KB less at 100
    questions, and no read of the review's legal bases)."""
    attempt, s, exam, _part, paper, content, answers = sheet
    out = attempt_out(sheet, now, with_paper=with_paper)
    if attempt.status != AttemptStatus.CLOSED:
        return out
    out.result = await _result_out(db, attempt, exam, grant=grant)
    if _review_shown(s, now):
        if with_paper:
            out.review = await _review(db, attempt, paper, content, answers)
    else:
        out.review_note = _REVIEW_NOTES.get(s.review_policy, "")
    return out


async def closed_result_on_driver(
    principal: Principal,
    attempt_id: int,
    now: dt.datetime,
    *,
    reader: SqliteReader | None = None,
    driver: DriverPool | None = None,
) -> AttemptOut | None:
    """The result page's view of the principal's closed attempt in one statement straight on the
    driver (SQLite's in-place ``reader`` or PostgreSQL's ``driver`` pool), without an ORM session:
    at 10,000 candidates, the page after each submit was the largest handler of the submit burst.
    Only when the page needs nothing more: not passed (a pass names its qualification) and no
    review shown (the review reads the banks). Else None, and so for an attempt that is not a
    closed one of the principal's: ``attempt_view``'s own path answers (the review, the
    qualification, the 404). Both read what is committed: a submit is acknowledged after its commit."""
    officer_id = principal.officer_id
    if officer_id is None or not possible_id(attempt_id):
        return None
    if reader is not None:
        row = reader.fetchrow(SQLITE_RESULT_ATTEMPT, (attempt_id,))
        when: Callable[[Any], dt.datetime] = time_of  # SQLite's text, as the column holds it
    elif driver is not None:
        row = await driver.fetchrow(POSTGRES_RESULT_ATTEMPT, attempt_id)
        when = _as_is
    else:
        return None
    if row is None or row[0] != officer_id:
        return None
    (
        _officer, session_id, number, question_count, started_at, deadline_at, closed_at, closed_by,
        score, passed, result_json, exam_title, pass_mark, session_title, submit_on_leave,
        review_policy, opens_at, closes_at, part,
    ) = row  # fmt: skip
    attempt = ExamAttempt(
        id=attempt_id,
        officer_id=officer_id,
        session_id=session_id,
        number=number,
        status=AttemptStatus.CLOSED.value,
        question_count=question_count,
        started_at=when(started_at),
        deadline_at=when(deadline_at),
        closed_at=when(closed_at),
        closed_by=closed_by,
        score=score,
        passed=None if passed is None else bool(passed),
        result_json=result_json,
    )
    s = ExamSession(
        id=session_id,
        title=session_title,
        submit_on_leave=bool(submit_on_leave),
        review_policy=review_policy,
        opens_at=when(opens_at),
        closes_at=when(closes_at),
    )
    sheet = Sheet(attempt, s, Exam(title=exam_title, pass_mark=pass_mark), ExamPartRow(part=part), [], {}, {})
    return closed_view_without_review(sheet, now, with_paper=False)


def _as_is(value: Any) -> dt.datetime:
    return cast(dt.datetime, value)


def _review_shown(s: ExamSession, now: dt.datetime) -> bool:
    closed = session_state(s, now) == "closed"
    return rules.review_allowed(s.review_policy, attempt_closed=True, session_closed=closed)


_REVIEW_NOTES = {
    ReviewPolicy.NEVER.value: "本场考试不公布答案。",
    ReviewPolicy.AFTER_CLOSE.value: "考试场次结束后可查看正确答案。",
}


def closed_view_without_review(
    sheet: Sheet,
    now: dt.datetime,
    *,
    with_paper: bool = True,
) -> AttemptOut | None:
    """``view_of`` a closed attempt when it needs no database (not passed, no review shown);
    else None. ``with_paper``: as ``view_of`` takes it."""
    attempt, s, exam = sheet.attempt, sheet.s, sheet.exam
    if attempt.passed or _review_shown(s, now):
        return None
    out = attempt_out(sheet, now, with_paper=with_paper)
    out.result = result_of(attempt, exam, None)
    out.review_note = _REVIEW_NOTES.get(s.review_policy, "")
    return out


_TYPES = {t.value: t for t in QuestionType}
_CATEGORIES = {c.value: c for c in QuestionCategory}
_LABELS = {m: m.label for m in (*QuestionType, *QuestionCategory)}


def attempt_out(
    sheet: Sheet,
    now: dt.datetime,
    *,
    with_paper: bool = True,
) -> AttemptOut:
    """The candidate's view of an attempt (no keys): questions, saved answers, the server's clock."""
    attempt, s, exam, part, paper, content, answers = sheet
    questions = []
    for position, item in enumerate(paper if with_paper else ()):
        q = content[item.question_id]
        qtype = _TYPES[item.type]
        questions.append(
            PaperQuestion(
                position=position,
                type=qtype,
                type_label=_LABELS[qtype],
                category_label=_LABELS[_CATEGORIES[item.category]],
                points=item.points,
                stem=q.stem,
                options=[q.options[i] for i in item.order],
            )
        )
    return AttemptOut(
        id=attempt.id,
        session_id=s.id,
        session_title=s.title,
        exam_title=exam.title,
        part=ExamPart(part.part),
        part_label=ExamPart(part.part).label,
        number=attempt.number,
        status=attempt.status,
        started_at=attempt.started_at,
        deadline_at=attempt.deadline_at,
        server_now=now,
        seconds_left=rules.seconds_left(attempt.deadline_at, now)
        if attempt.status == AttemptStatus.OPEN
        else 0,
        submit_on_leave=s.submit_on_leave,
        question_count=attempt.question_count,
        questions=questions,
        answers=[AnswerOut(position=p, choice=list(c), seq=seq) for p, (c, seq) in sorted(answers.items())]
        if with_paper
        else [],
        max_seq=max((seq for _c, seq in answers.values()), default=0),
    )


async def _review(
    db: AsyncSession,
    attempt: ExamAttempt,
    paper: list[rules.PaperItem],
    content: dict[int, QuestionContent],
    answers: dict[int, tuple[tuple[int, ...], int]],
) -> list[ReviewItem]:
    meta = dict(
        (row[0], (row[1], row[2]))
        for row in await db.execute(_REVIEW_META, {"ids": [p.question_id for p in paper]})
    )
    fractions = json.loads(attempt.result_json).get("fractions", [])
    items = []
    for position, item in enumerate(paper):
        q = content[item.question_id]
        correct = sorted(i for i, bank_index in enumerate(item.order) if bank_index in q.key)
        basis, explanation = meta.get(item.question_id, ("", ""))
        items.append(
            ReviewItem(
                position=position,
                correct=correct,
                chosen=list(answers.get(position, ((), 0))[0]),
                earned=round(item.points * (fractions[position] if position < len(fractions) else 0.0), 2),
                basis=basis,
                explanation=explanation,
            )
        )
    return items


async def _result_out(
    db: AsyncSession, attempt: ExamAttempt, exam: Exam, *, grant: ExamQualification | None = None
) -> ResultOut:
    """``grant``: the qualification the close just granted, if it did (no query for it then)."""
    # Only a passed part can be named by a qualification.
    qual = grant
    if qual is None and attempt.passed:
        qual = await db.scalar(_QUALIFICATION_OF_ATTEMPT, {"attempt_id": attempt.id})
    if qual is None and attempt.passed:
        # The grant names the attempt that completed the exam; show it on every passed part.
        qual = await db.scalar(
            _QUALIFICATION_OF_SESSION, {"session_id": attempt.session_id, "officer_id": attempt.officer_id}
        )
    return result_of(attempt, exam, qual)


def result_of(attempt: ExamAttempt, exam: Exam, qual: ExamQualification | None) -> ResultOut:
    assert attempt.closed_at is not None and attempt.score is not None
    result = json.loads(attempt.result_json)
    return ResultOut(
        score=attempt.score,
        passed=bool(attempt.passed),
        pass_mark=exam.pass_mark,
        closed_at=attempt.closed_at,
        closed_by=attempt.closed_by,
        closed_by_label=ClosedBy(attempt.closed_by).label,
        categories=[
            CategoryOut(
                category=QuestionCategory(c["category"]),
                label=QuestionCategory(c["category"]).label,
                earned=c["earned"],
                possible=c["possible"],
                correct=c["correct"],
                questions=c["questions"],
            )
            for c in result.get("categories", [])
        ],
        qualification=None
        if qual is None
        else QualificationOut(field=qual.field, passed_on=qual.passed_on, valid_until=qual.valid_until),
    )
