"""The figures behind the indicator dashboard (``app.rosters.indicators``): per agency of a tree,
the counts its indicators divide, and their roll-up to the tree and its direct children."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Officer
from app.accounts.selectors import agency_subtree_ids
from app.certificates.rules import CertificateKind
from app.exams.models import ExamAttempt, ExamPartRow, ExamSession
from app.lib.enums import EmploymentStatus, Post
from app.rosters.rules import CertFilter
from app.rosters.services.scope import Scope
from app.rosters.services.statements import (
    cert_condition,
    exam_valid,
    exit_open,
    in_scope,
    no_jit,
    rating_condition,
    training_met,
)
from app.training.models import TrainingYearTotal

_T = TrainingYearTotal


@dataclass(frozen=True)
class Figures:
    """Counts of one agency (or a subtree summed up)."""

    active: int = 0
    eligible: int = 0
    """In post and of a staff type that may hold a certificate: the base of 持证率."""
    exam_valid: int = 0
    certified: int = 0
    """Eligible, exam passed and in force, and a valid enforcement certificate: 持证 (seed 003 indicator 68)."""
    training_met: int = 0
    enforcement: int = 0
    legal_review: int = 0
    unqualified: int = 0
    """Rated a failing grade of the policy (不合格, 不称职) for the year (confirmed)."""
    exit_open: int = 0
    exam_sat: int = 0
    """Candidates (officer and exam session) with a result in the year: the base of the pass rate."""
    exam_passed: int = 0
    """Of those, candidates who passed every part of the exam in that session."""

    def __add__(self, other: Figures) -> Figures:
        return Figures(*(getattr(self, k) + getattr(other, k) for k in self.__dataclass_fields__))


async def indicator_figures(db: AsyncSession, scope: Scope) -> dict[int, Figures]:
    """Per agency of the subtree, the counts the dashboard divides (one grouped query)."""
    active = Officer.employment_status == EmploymentStatus.ACTIVE.value
    excluded = {t.value for t in scope.policy.excluded_staff_types}
    eligible = and_(active, Officer.staff_type.not_in(excluded)) if excluded else active

    def n(cond: ColumnElement[bool]) -> Any:
        return func.sum(case((cond, 1), else_=0))

    stmt = (
        select(
            Officer.agency_id,
            n(active),
            n(eligible),
            n(and_(eligible, exam_valid(scope.as_of))),
            n(
                and_(
                    eligible,
                    exam_valid(scope.as_of),
                    cert_condition(scope, CertFilter.VALID, CertificateKind.ENFORCEMENT),
                )
            ),
            n(and_(active, training_met(scope))),
            n(and_(active, Officer.post == Post.ENFORCEMENT.value)),
            n(and_(active, Officer.post == Post.LEGAL_REVIEW.value)),
            n(rating_condition(scope.failing_grades, scope.year)),
            n(exit_open()),
        )
        .outerjoin(_T, and_(_T.year == scope.year, _T.officer_id == Officer.id))
        .where(in_scope(scope))
        .group_by(Officer.agency_id)
    )
    await no_jit(db)
    out = {r[0]: Figures(*(int(v or 0) for v in r[1:])) for r in (await db.execute(stmt)).all()}
    for agency_id, sat, passed in (await db.execute(exam_pass_statement(scope))).all():
        fig = out.get(agency_id, Figures())
        out[agency_id] = replace(fig, exam_sat=int(sat or 0), exam_passed=int(passed or 0))
    return out


def exam_pass_statement(scope: Scope) -> Select[Any]:
    """考试通过率 of the year, per agency (the officer's agency when the attempt started): the
    candidates — an officer in an exam session — with a result closed in the year, and those of
    them who passed every part of the exam in that session (a passed retake counts)."""
    a = ExamAttempt
    start = dt.datetime(scope.year, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(scope.year + 1, 1, 1, tzinfo=dt.UTC)
    per_part = (
        select(
            a.session_id,
            a.officer_id,
            a.part_id,
            func.min(a.agency_id).label("agency_id"),
            func.max(case((a.passed.is_(True), 1), else_=0)).label("ok"),
        )
        .where(
            a.status == "closed",
            a.closed_at >= start,
            a.closed_at < end,
            a.agency_id.in_(agency_subtree_ids(scope.path)),
        )
        .group_by(a.session_id, a.officer_id, a.part_id)
        .subquery("per_part")
    )
    parts = (
        select(ExamPartRow.exam_id, func.count().label("n")).group_by(ExamPartRow.exam_id).subquery("parts")
    )
    candidate = (
        select(
            per_part.c.session_id,
            func.min(per_part.c.agency_id).label("agency_id"),
            func.sum(per_part.c.ok).label("passed_parts"),
        )
        .group_by(per_part.c.session_id, per_part.c.officer_id)
        .subquery("candidate")
    )
    return (
        select(
            candidate.c.agency_id,
            func.count(),
            func.sum(case((candidate.c.passed_parts >= parts.c.n, 1), else_=0)),
        )
        .join(ExamSession, ExamSession.id == candidate.c.session_id)
        .join(parts, parts.c.exam_id == ExamSession.exam_id)
        .group_by(candidate.c.agency_id)
    )


def roll_up(scope: Scope, per_agency: dict[int, Figures]) -> tuple[Figures, list[tuple[int, Figures]]]:
    """The subtree's total, and one total per direct child of the scope agency (own rows apart)."""
    depth = scope.agencies.get(scope.agency_id, ("", scope.path, 0))[2]
    child_of: dict[int, int] = {}
    for agency_id, (_name, path, _d) in scope.agencies.items():
        ids = [int(x) for x in path.strip("/").split("/") if x]
        # The id one level below the scope agency on this agency's path (itself for the scope agency).
        child_of[agency_id] = ids[depth + 1] if len(ids) > depth + 1 else scope.agency_id
    total = Figures()
    children: dict[int, Figures] = {}
    for agency_id, figures in per_agency.items():
        total = total + figures
        c = child_of.get(agency_id, scope.agency_id)
        children[c] = children.get(c, Figures()) + figures
    order = {aid: i for i, aid in enumerate(scope.agencies)}
    return total, sorted(children.items(), key=lambda kv: order.get(kv[0], 0))
