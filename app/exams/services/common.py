"""Who may see what, and the rows and views every exam use case reads (exams, sessions, parts,
enrolments)."""

from __future__ import annotations

import datetime as dt
import json
from typing import TypeVar, cast

from sqlalchemy import ColumnElement, Select, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency
from app.accounts.selectors import agency_in_line
from app.exams.models import Exam, ExamAttempt, ExamEnrolment, ExamPartRow, ExamSession
from app.exams.rules import BlueprintRule, ExamPart, QuestionCategory, QuestionType, ReviewPolicy
from app.exams.schemas import PartOut, RuleOut, SessionOut
from app.lib.clock import utcnow
from app.lib.errors import Forbidden, NotFound
from app.lib.security import Principal
from app.lib.structs import project

A = TypeVar("A")
B = TypeVar("B")

# ---------------------------------------------------------------- who


def authority_required(principal: Principal, action: str) -> None:
    if not principal.is_authority:
        raise Forbidden(f"只有发证机关管理员可以{action}")


def officer_id_of(principal: Principal) -> int:
    if principal.officer_id is None:
        raise NotFound("您的账号未关联执法人员")
    return principal.officer_id


def visible_owner(principal: Principal) -> ColumnElement[bool]:
    """Exams and sessions run by the principal's agency, one above it, or one below it (``Agency`` joined)."""
    return agency_in_line(principal.agency_path)


def blueprint_of(part: ExamPartRow) -> list[BlueprintRule]:
    return [BlueprintRule(**r) for r in json.loads(part.blueprint_json)]


# ---------------------------------------------------------------- rows and views


def rule_out(r: BlueprintRule) -> RuleOut:
    return project(
        RuleOut,
        r,
        category_label=QuestionCategory(r.category).label,
        type_label=QuestionType(r.type).label,
    )


def part_out(p: ExamPartRow) -> PartOut:
    bp = blueprint_of(p)
    return project(
        PartOut,
        p,
        part_label=ExamPart(p.part).label,
        question_count=sum(r.count for r in bp),
        blueprint=[rule_out(r) for r in bp],
    )


def session_state(s: ExamSession, now: dt.datetime) -> str:
    if now < s.opens_at:
        return "upcoming"
    return "open" if now < s.closes_at else "closed"


_STATE_LABELS = {"upcoming": "未开始", "open": "进行中", "closed": "已结束"}


def session_out(s: ExamSession, exam_title: str, enrolled: int, now: dt.datetime | None = None) -> SessionOut:
    state = session_state(s, now or utcnow())
    return project(
        SessionOut,
        s,
        exam_title=exam_title,
        review_policy_label=ReviewPolicy(s.review_policy).label,
        state=state,
        state_label=_STATE_LABELS[state],
        enrolled=enrolled,
    )


async def _pair_or_404(db: AsyncSession, stmt: Select[A, B], missing: str) -> tuple[A, B]:
    """The one row ``stmt`` selects (a pair: the row and what it belongs to), else 404 ``missing``."""
    row = (await db.execute(stmt)).one_or_none()
    if row is None:
        raise NotFound(missing)
    return row[0], row[1]


async def exam_row(db: AsyncSession, principal: Principal, exam_id: int) -> tuple[Exam, Agency]:
    return await _pair_or_404(
        db,
        select(Exam, Agency)
        .join(Agency, Agency.id == Exam.agency_id)
        .where(Exam.id == exam_id, visible_owner(principal)),
        "考试不存在或不在您的管理范围内",
    )


async def parts_of(db: AsyncSession, exam_id: int) -> list[ExamPartRow]:
    return list(
        (
            await db.scalars(
                select(ExamPartRow).where(ExamPartRow.exam_id == exam_id).order_by(ExamPartRow.position)
            )
        ).all()
    )


async def enrolled_counts(db: AsyncSession, session_ids: list[int]) -> dict[int, int]:
    if not session_ids:
        return {}
    rows = await db.execute(
        select(ExamEnrolment.session_id, func.count())
        .where(ExamEnrolment.session_id.in_(session_ids))
        .group_by(ExamEnrolment.session_id)
    )
    return {k: v for k, v in rows}


async def session_counted(db: AsyncSession, s: ExamSession, exam_title: str) -> SessionOut:
    """``session_out`` of one session with its enrolment count (the staff's session pages)."""
    counts = await enrolled_counts(db, [s.id])
    return session_out(s, exam_title, counts.get(s.id, 0))


async def session_row(db: AsyncSession, principal: Principal, session_id: int) -> tuple[ExamSession, Exam]:
    return await _pair_or_404(
        db,
        select(ExamSession, Exam)
        .join(Exam, Exam.id == ExamSession.exam_id)
        .join(Agency, Agency.id == ExamSession.agency_id)
        .where(ExamSession.id == session_id, visible_owner(principal)),
        "考试场次不存在或不在您的管理范围内",
    )


async def enrolment_of(
    db: AsyncSession, session_id: int, officer_id: int, *, lock: bool = False
) -> ExamEnrolment | None:
    stmt = select(ExamEnrolment).where(
        ExamEnrolment.session_id == session_id, ExamEnrolment.officer_id == officer_id
    )
    if lock:
        stmt = stmt.with_for_update()
    return await db.scalar(stmt)


ATTEMPTS = cast(Table, ExamAttempt.__table__)
"""The attempts table, for the Core statements of the hot paths (the ORM's flush and update paths
cost more than the statements)."""
