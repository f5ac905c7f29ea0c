"""Selectors of annual assessment and exit: read-only queries for the officer's record and the lists.

Scope: an administrator sees the ratings and cases of officers in their agency subtree (a rating
also stays visible to the agency that entered it after the officer moved away); an officer sees
only their own; the legal-affairs office of an issuing authority (its authority administrators)
decides the cases of its tree. Anything out of scope is reported as not found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.accounts.models import Agency, Officer
from app.accounts.selectors import (
    agency_get,
    agency_policies,
    agency_policy,
    agency_subtree_ids,
    officer_get,
)
from app.assessments import rules
from app.assessments.models import AssessmentFlag, AssessmentRating, ExitCase, ExitCaseEvent, YearClosing
from app.assessments.schemas import (
    CaseEventOut,
    CaseOut,
    CaseSummary,
    FlagOut,
    OfficerAssessment,
    RatingOut,
)
from app.lib.errors import Forbidden, NotFound
from app.lib.paging import count_rows, page_of
from app.lib.security import Principal, system_principal
from app.lib.structs import project
from app.training import rules as training_rules


def admin_only(principal: Principal, action: str) -> None:
    if not principal.is_admin:
        raise Forbidden(f"只有管理员可以{action}")


def authority_only(principal: Principal, action: str) -> None:
    if not principal.is_authority:
        raise Forbidden(f"只有发证机关（司法行政部门法制机构）可以{action}")


async def decider_refusal(db: AsyncSession, principal: Principal, case_agency: Agency) -> str | None:
    """Why ``principal`` may not decide (or review) a case of ``case_agency`` (Chinese), or None:
    only the legal-affairs office of the same or a higher level decides (``rules.decider_error``)."""
    office = await db.get(Agency, principal.agency_id) if principal.agency_id else None
    return rules.decider_error(
        is_admin=principal.is_admin,
        office_name=office.name if office else "本账号所在单位",
        office_path=office.path if office else principal.agency_path,
        office_is_legal_affairs=bool(
            office and (office.is_legal_affairs_office or office.is_issuing_authority)
        ),
        case_agency_name=case_agency.name,
        case_agency_path=case_agency.path,
    )


def _label(enum: Any, value: str | None) -> str:
    return enum(value).label if value else ""


def _labels(row: object, **enums: Any) -> dict[str, str]:
    """The ``<field>_label`` of each enum field of ``row`` named in ``enums`` ('' for None)."""
    return {f"{name}_label": _label(enum, getattr(row, name)) for name, enum in enums.items()}


def rating_out(r: AssessmentRating, officer_name: str, agency_name: str) -> RatingOut:
    return project(
        RatingOut,
        r,
        officer_name=officer_name,
        agency_name=agency_name,
        **_labels(r, remedy=rules.Remedy, status=rules.RatingStatus),
    )


_RatingAgency = aliased(Agency)
_OfficerAgency = aliased(Agency)


def _rating_select() -> Any:
    return (
        select(AssessmentRating, Officer.name, _RatingAgency.name)
        .join(Officer, Officer.id == AssessmentRating.officer_id)
        .join(_RatingAgency, _RatingAgency.id == AssessmentRating.agency_id)
        .join(_OfficerAgency, _OfficerAgency.id == Officer.agency_id)
    )


def _rating_scope(principal: Principal) -> ColumnElement[bool]:
    if principal.is_admin:
        return or_(
            _RatingAgency.path.startswith(principal.agency_path),
            _OfficerAgency.path.startswith(principal.agency_path),
        )
    return AssessmentRating.officer_id == (principal.officer_id or -1)


async def grades_in_sight(db: AsyncSession, agencies: list[Agency]) -> list[str]:
    """The grades of the policies over ``agencies`` (a tree), in their lists' order (the ratings
    list's grade filter): one province may hold authorities on different scales."""
    paths = {a.id: a.path for a in agencies}
    out: dict[str, None] = {}
    for policy in (await agency_policies(db, paths)).values():
        out.update(dict.fromkeys(policy.grades))
    return list(out)


async def rating_get(db: AsyncSession, principal: Principal, rating_id: int) -> RatingOut:
    row = (
        await db.execute(_rating_select().where(AssessmentRating.id == rating_id, _rating_scope(principal)))
    ).one_or_none()
    if row is None:
        raise NotFound("考核结果不存在或不在您的管理范围内")
    return rating_out(*row)


@dataclass(frozen=True)
class RatingFilter:
    """The rating list's filter (the API's and the page's query): None or '' is every value."""

    year: int | None = None
    agency_id: int | None = None
    grade: str = ""
    status: rules.RatingStatus | None = None
    """None: every status but superseded."""


async def rating_list(
    db: AsyncSession,
    principal: Principal,
    f: RatingFilter = RatingFilter(),
    *,
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[RatingOut], int]:
    admin_only(principal, "查看考核结果")
    where: list[Any] = [_rating_scope(principal)]
    if f.agency_id is not None:
        agency = await agency_get(db, principal, f.agency_id)
        where.append(_RatingAgency.path.startswith(agency.path))
    if f.year is not None:
        where.append(AssessmentRating.year == f.year)
    if f.grade:
        where.append(AssessmentRating.grade == f.grade)
    if f.status is not None:
        where.append(AssessmentRating.status == f.status.value)
    else:
        where.append(AssessmentRating.status != rules.RatingStatus.SUPERSEDED.value)
    stmt = _rating_select().where(*where)
    total = await count_rows(db, stmt)
    rows = await db.execute(
        page_of(
            stmt.order_by(AssessmentRating.year.desc(), _RatingAgency.path, Officer.id, AssessmentRating.id),
            page=page,
            per_page=per_page,
        )
    )
    return [rating_out(*row) for row in rows], total


# ---------------------------------------------------------------- exit cases: reads


_EVENT_LABELS = {
    "opened": "立案（连续两年考核不合格）",
    "notified": "告知当事人",
    "statement": "当事人陈述申辩",
    "evidence_corrected": "证据（考核结果）更正",
    "evidence_withdrawn": "证据不再支持，案件终结",
    "review_opened": "依职权启动复核（考核结果更正）",
    "returned": "返回执法岗位后立案",
    "moved_off_post": "调离执法岗位",
    "bar_recorded": "重新持证条件",
    "bar_lifted": "解除重新持证限制",
    "decision": "法制机构作出决定",
    "qualification_removed": "取消执法资格",
    "qualification_restored": "恢复执法资格",
    "certificates": "证件处理",
    "certificates_pending": "证件处理（待办）",
    "review_requested": "当事人申请复核",
    "review_decided": "复核决定",
}


async def case_row(db: AsyncSession, principal: Principal, case_id: int) -> tuple[ExitCase, Officer, Agency]:
    row = (
        await db.execute(
            select(ExitCase, Officer, Agency)
            .join(Officer, Officer.id == ExitCase.officer_id)
            .join(Agency, Agency.id == ExitCase.agency_id)
            .where(ExitCase.id == case_id)
        )
    ).one_or_none()
    if row is None:
        raise NotFound("退出案件不存在或不在您的管理范围内")
    case, officer, agency = row
    visible = (
        principal.can_see_agency_path(agency.path)
        if principal.is_admin
        else principal.officer_id is not None and principal.officer_id == case.officer_id
    )
    if not visible:
        raise NotFound("退出案件不存在或不在您的管理范围内")
    return case, officer, agency


async def case_detail(db: AsyncSession, principal: Principal, case_id: int) -> CaseOut:
    case, officer, agency = await case_row(db, principal, case_id)
    first = await rating_get(db, system_principal(), case.first_rating_id)
    second = await rating_get(db, system_principal(), case.second_rating_id)
    authority = await db.get(Agency, case.authority_id) if case.authority_id else None
    events = (
        await db.scalars(
            select(ExitCaseEvent).where(ExitCaseEvent.case_id == case.id).order_by(ExitCaseEvent.id)
        )
    ).all()
    return project(
        CaseOut,
        case,
        officer_name=officer.name,
        agency_name=agency.name,
        authority_name=(authority.authority_name or authority.name) if authority else "",
        first_rating=first,
        second_rating=second,
        **_labels(
            case,
            proposed_outcome=rules.ExitOutcome,
            status=rules.CaseStatus,
            decision=rules.Decision,
            decided_outcome=rules.ExitOutcome,
            review_result=rules.ReviewResult,
        ),
        decider_refusal=await decider_refusal(db, principal, agency) or "",
        timeline=[project(CaseEventOut, e, label=_EVENT_LABELS.get(e.kind, e.kind)) for e in events],
    )


def _summary(case: ExitCase, officer_name: str, agency_name: str) -> CaseSummary:
    return project(
        CaseSummary,
        case,
        officer_name=officer_name,
        agency_name=agency_name,
        has_statement=case.statement_at is not None,
        **_labels(case, proposed_outcome=rules.ExitOutcome, status=rules.CaseStatus, decision=rules.Decision),
    )


@dataclass(frozen=True)
class CaseFilter:
    """The exit case list's filter (the API's and the page's query): None is every value."""

    status: rules.CaseStatus | None = None
    year: int | None = None
    returned: bool | None = None


async def case_list(
    db: AsyncSession,
    principal: Principal,
    f: CaseFilter = CaseFilter(),
    *,
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[CaseSummary], int]:
    stmt: Any = (
        select(ExitCase, Officer.name, Agency.name)
        .join(Officer, Officer.id == ExitCase.officer_id)
        .join(Agency, Agency.id == ExitCase.agency_id)
    )
    if principal.is_admin:
        stmt = stmt.where(Agency.path.startswith(principal.agency_path))
    else:
        stmt = stmt.where(ExitCase.officer_id == (principal.officer_id or -1))
    if f.status is not None:
        stmt = stmt.where(ExitCase.status == f.status.value)
    if f.year is not None:
        stmt = stmt.where(ExitCase.year == f.year)
    if f.returned is not None:
        stmt = stmt.where(ExitCase.returned.is_(f.returned))
    total = await count_rows(db, stmt)
    rows = await db.execute(page_of(stmt.order_by(ExitCase.id.desc()), page=page, per_page=per_page))
    return [_summary(c, o, a) for c, o, a in rows], total


# ---------------------------------------------------------------- an officer's record


async def officer_assessment(db: AsyncSession, principal: Principal, officer_id: int) -> OfficerAssessment:
    officer, agency = await officer_get(db, principal, officer_id)
    policy = await agency_policy(db, agency)
    rows = await db.execute(
        _rating_select()
        .where(AssessmentRating.officer_id == officer.id)
        .order_by(AssessmentRating.year.desc(), AssessmentRating.id.desc())
    )
    ratings = [rating_out(*row) for row in rows]
    cases = await db.execute(
        select(ExitCase, Agency.name)
        .join(Agency, Agency.id == ExitCase.agency_id)
        .where(ExitCase.officer_id == officer.id)
        .order_by(ExitCase.year.desc())
    )
    flags = await db.scalars(
        select(AssessmentFlag)
        .where(AssessmentFlag.officer_id == officer.id)
        .order_by(AssessmentFlag.year.desc())
    )
    return OfficerAssessment(
        officer_id=officer.id,
        officer_name=officer.name,
        agency_name=agency.name,
        ratings=ratings,
        cases=[_summary(c, officer.name, a) for c, a in cases],
        flags=[
            project(
                FlagOut,
                f,
                **_labels(f, consequence=rules.ShortfallConsequence),
                needed_hours=training_rules.hours_value(f.needed_tenths),
            )
            for f in flags
        ],
        grades=list(policy.grades),
    )


# ---------------------------------------------------------------- the year-end close: its record


async def closing_list(
    db: AsyncSession, principal: Principal, *, limit: int = 20
) -> list[tuple[YearClosing, list[Any]]]:
    """Recent runs over the principal's tree or over a tree containing it (the console command runs
    over everything), each with its summary rows cut down to the agencies the principal sees."""
    authority_only(principal, "查看年度结转记录")
    mine = principal.agency_path
    rows = await db.scalars(select(YearClosing).order_by(YearClosing.id.desc()).limit(200))
    visible = set(await db.scalars(agency_subtree_ids(mine)))
    out: list[tuple[YearClosing, list[Any]]] = []
    for c in rows:
        if not (c.scope_path.startswith(mine) or mine.startswith(c.scope_path)):
            continue
        summary = [a for a in json.loads(c.summary_json) if a.get("agency_id") in visible]
        out.append((c, summary))
        if len(out) == limit:
            break
    return out
