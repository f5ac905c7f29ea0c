"""Use cases of annual assessment and exit. One transaction each: load, apply rules, write, audit.

Scope: an administrator sees the ratings and cases of officers in their agency subtree (a rating
also stays visible to the agency that entered it after the officer moved away); an officer sees
only their own; the legal-affairs office of an issuing authority (its authority administrators)
decides the cases of its tree. Anything out of scope is reported as not found.

The year-end close (``close_year``) is set-based: one query finds every officer of a province with
two consecutive confirmed 不合格 ratings, one insert opens their cases (the unique key (officer,
year) makes a second run open nothing), one query over the yearly training totals finds the closed
year's shortfalls, one insert flags them.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.orm.exc import StaleDataError

from app.accounts.models import Agency, Officer
from app.accounts.rules import path_ids
from app.accounts.services import agency_get, agency_policies, agency_policy, officer_get
from app.assessments import rules
from app.assessments.models import AssessmentFlag, AssessmentRating, ExitCase, ExitCaseEvent, YearClosing
from app.assessments.rules import (
    UNQUALIFIED,
    CaseStatus,
    Decision,
    ExitOutcome,
    RatingStatus,
    Remedy,
    ReviewResult,
    ShortfallConsequence,
)
from app.assessments.schemas import (
    AgencyClose,
    CaseEventOut,
    CaseOut,
    CaseSummary,
    CloseYearOut,
    CorrectionIn,
    DecisionIn,
    FlagOut,
    OfficerAssessment,
    RatingIn,
    RatingOut,
    ReviewDecisionIn,
    ReviewRequestIn,
    StatementIn,
)
from app.certificates.services import certificates_withdraw_for_officer
from app.db import insert_many
from app.exams.models import ExamQualification
from app.lib.audit import audit_record
from app.lib.clock import today, utcnow
from app.lib.enums import EmploymentStatus
from app.lib.errors import Conflict, DomainError, FieldError, Forbidden, NotFound, StaleForm
from app.lib.policy import Policy
from app.lib.security import Principal
from app.training import rules as training_rules
from app.training.models import TrainingYearTotal
from app.training.services import (
    _compliance_statement,
    actor_of,
    entered_by,
    gc_paused,
    key_order_scan,
    system_principal,
    value_by_agency,
)

__all__ = ["system_principal"]

Progress = Callable[[str, int, int], None]
"""(step description, done, total): the console command draws a progress bar from it."""


def _require_admin(principal: Principal, action: str) -> None:
    if not principal.is_admin:
        raise Forbidden(f"只有管理员可以{action}")


def _require_authority(principal: Principal, action: str) -> None:
    if not principal.is_authority:
        raise Forbidden(f"只有发证机关（司法行政部门法制机构）可以{action}")


# ---------------------------------------------------------------- ratings: reads


def rating_out(r: AssessmentRating, officer_name: str, agency_name: str) -> RatingOut:
    status = RatingStatus(r.status)
    remedy = Remedy(r.remedy) if r.remedy else None
    return RatingOut(
        id=r.id,
        officer_id=r.officer_id,
        officer_name=officer_name,
        agency_id=r.agency_id,
        agency_name=agency_name,
        year=r.year,
        grade=r.grade,
        daily_score=r.daily_score,
        legal_test_score=r.legal_test_score,
        standard_test_score=r.standard_test_score,
        case_review_score=r.case_review_score,
        comment=r.comment,
        excellent_barred=r.excellent_barred,
        remedy=remedy,
        remedy_label=remedy.label if remedy else "",
        status=status,
        status_label=status.label,
        corrects_id=r.corrects_id,
        reason=r.reason,
        entered_by_name=r.entered_by_name,
        entered_at=r.entered_at,
        confirmed_by_name=r.confirmed_by_name,
        confirmed_at=r.confirmed_at,
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


async def rating_get(db: AsyncSession, principal: Principal, rating_id: int) -> RatingOut:
    row = (
        await db.execute(_rating_select().where(AssessmentRating.id == rating_id, _rating_scope(principal)))
    ).one_or_none()
    if row is None:
        raise NotFound("考核结果不存在或不在您的管理范围内")
    return rating_out(*row)


async def _rating_row(db: AsyncSession, principal: Principal, rating_id: int) -> AssessmentRating:
    await rating_get(db, principal, rating_id)
    r = await db.get(AssessmentRating, rating_id)
    assert r is not None
    return r


async def rating_list(
    db: AsyncSession,
    principal: Principal,
    *,
    year: int | None = None,
    agency_id: int | None = None,
    grade: str = "",
    status: RatingStatus | None = None,
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[RatingOut], int]:
    _require_admin(principal, "查看考核结果")
    where: list[Any] = [_rating_scope(principal)]
    if agency_id is not None:
        agency = await agency_get(db, principal, agency_id)
        where.append(_RatingAgency.path.startswith(agency.path))
    if year is not None:
        where.append(AssessmentRating.year == year)
    if grade:
        where.append(AssessmentRating.grade == grade)
    if status is not None:
        where.append(AssessmentRating.status == status.value)
    else:
        where.append(AssessmentRating.status != RatingStatus.SUPERSEDED.value)
    stmt = _rating_select().where(*where)
    total = int(await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = await db.execute(
        stmt.order_by(AssessmentRating.year.desc(), _RatingAgency.path, Officer.id, AssessmentRating.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return [rating_out(*row) for row in rows], total


# ---------------------------------------------------------------- ratings: writes


def _check_rating(
    policy: Policy, *, year: int | None, grade: str, scores: dict[str, int | None], on: dt.date
) -> list[FieldError]:
    errors: list[FieldError] = []
    if year is not None and (msg := rules.year_error(year, on)):
        errors.append(FieldError("year", msg))
    if msg := rules.grade_error(grade, policy.grades):
        errors.append(FieldError("grade", msg))
    for field, label in SCORE_LABELS.items():
        if msg := rules.score_error(scores.get(field), label):
            errors.append(FieldError(field, msg))
    return errors


SCORE_LABELS = {
    "daily_score": "平时考核",
    "legal_test_score": "法律知识测试",
    "standard_test_score": "执法规范测试",
    "case_review_score": "案卷评查",
}


def _scores(data: RatingIn | CorrectionIn) -> dict[str, int | None]:
    return {k: getattr(data, k) for k in SCORE_LABELS}


def _apply(r: AssessmentRating, data: RatingIn | CorrectionIn) -> None:
    c = rules.consequences_of(data.grade, data.remedy)
    r.grade = data.grade
    for k, v in _scores(data).items():
        setattr(r, k, v)
    r.comment = data.comment.strip()
    r.excellent_barred = c.excellent_barred
    r.remedy = Remedy(c.remedy).value if c.remedy else None


def _rating_data(r: AssessmentRating) -> dict[str, Any]:
    return {
        "officer_id": r.officer_id,
        "year": r.year,
        "grade": r.grade,
        "scores": {k: getattr(r, k) for k in SCORE_LABELS},
        "remedy": r.remedy,
        "excellent_barred": r.excellent_barred,
        "status": r.status,
    }


def _confirm(r: AssessmentRating, principal: Principal) -> None:
    r.status = RatingStatus.CONFIRMED.value
    r.confirmed_at = utcnow()
    r.confirmed_by_name = entered_by(principal)[1]


async def rating_save(db: AsyncSession, *, principal: Principal, data: RatingIn) -> AssessmentRating:
    """登记考核结果: a new draft (or confirmed) rating, or an edit of the officer's draft of that year."""
    _require_admin(principal, "登记考核结果")
    officer, agency = await officer_get(db, principal, data.officer_id)
    policy = await agency_policy(db, agency)
    errors = _check_rating(policy, year=data.year, grade=data.grade, scores=_scores(data), on=today())
    if errors:
        raise DomainError(errors[0].message, errors=errors)
    existing = await db.scalar(
        select(AssessmentRating).where(
            AssessmentRating.officer_id == officer.id,
            AssessmentRating.year == data.year,
            AssessmentRating.status != RatingStatus.SUPERSEDED.value,
        )
    )
    if existing is not None and existing.status == RatingStatus.CONFIRMED.value:
        raise Conflict(
            f"{officer.name} 的 {data.year} 年度考核结果已确认锁定（编号 {existing.id}），如需修改请办理更正",
            field="grade",
        )
    by_id, by_name = entered_by(principal)
    r = existing or AssessmentRating(
        officer_id=officer.id,
        agency_id=officer.agency_id,
        year=data.year,
        entered_by_id=by_id,
        entered_by_name=by_name,
        status=RatingStatus.DRAFT.value,
        reason="",
    )
    _apply(r, data)
    if data.confirm:
        _confirm(r, principal)
    if existing is None:
        db.add(r)
    await db.flush()
    await audit_record(
        db,
        actor=actor_of(principal),
        action="assessment.rating_" + ("updated" if existing else "created"),
        entity_type="assessment_rating",
        entity_id=r.id,
        agency_id=r.agency_id,
        data=_rating_data(r),
    )
    await db.commit()
    return r


async def rating_confirm(db: AsyncSession, *, principal: Principal, rating_id: int) -> AssessmentRating:
    """确认考核结果: the draft becomes the locked rating of the year."""
    _require_admin(principal, "确认考核结果")
    r = await _rating_row(db, principal, rating_id)
    if r.status != RatingStatus.DRAFT.value:
        raise Conflict("只有草稿可以确认；已确认的考核结果如需修改请办理更正")
    _confirm(r, principal)
    await audit_record(
        db,
        actor=actor_of(principal),
        action="assessment.rating_confirmed",
        entity_type="assessment_rating",
        entity_id=r.id,
        agency_id=r.agency_id,
        data=_rating_data(r),
    )
    await db.commit()
    return r


async def rating_confirm_all(
    db: AsyncSession, *, principal: Principal, year: int, agency_id: int | None = None
) -> int:
    """确认全部草稿: every draft of ``year`` in the tree at once (one UPDATE), audited as one event."""
    _require_admin(principal, "确认考核结果")
    agency = await agency_get(db, principal, agency_id or principal.agency_id)
    in_tree = select(Agency.id).where(Agency.path.startswith(agency.path))
    result = await db.execute(
        update(AssessmentRating)
        .where(
            AssessmentRating.year == year,
            AssessmentRating.status == RatingStatus.DRAFT.value,
            AssessmentRating.agency_id.in_(in_tree),
        )
        .values(
            status=RatingStatus.CONFIRMED.value,
            confirmed_at=utcnow(),
            confirmed_by_name=entered_by(principal)[1],
        )
        .execution_options(synchronize_session=False)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    await audit_record(
        db,
        actor=actor_of(principal),
        action="assessment.ratings_confirmed",
        entity_type="agency",
        entity_id=agency.id,
        agency_id=agency.id,
        data={"year": year, "confirmed": count},
    )
    await db.commit()
    return count


async def rating_correct(
    db: AsyncSession, *, principal: Principal, rating_id: int, data: CorrectionIn
) -> AssessmentRating:
    """更正考核结果: a new confirmed rating with a reason replaces the locked one, which stays on record."""
    _require_admin(principal, "更正考核结果")
    old = await _rating_row(db, principal, rating_id)
    if msg := rules.correction_error(RatingStatus(old.status), reason=data.reason):
        raise DomainError(msg, field="reason")
    agency = await db.get(Agency, old.agency_id)
    assert agency is not None
    policy = await agency_policy(db, agency)
    errors = _check_rating(policy, year=None, grade=data.grade, scores=_scores(data), on=today())
    if errors:
        raise DomainError(errors[0].message, errors=errors)
    old.status = RatingStatus.SUPERSEDED.value
    try:
        await db.flush()  # free the (officer, year) slot of the live rating before the new one takes it
    except StaleDataError as exc:
        raise StaleForm("该考核结果刚被他人更正，请刷新后重试") from exc
    by_id, by_name = entered_by(principal)
    new = AssessmentRating(
        officer_id=old.officer_id,
        agency_id=old.agency_id,
        year=old.year,
        corrects_id=old.id,
        reason=data.reason.strip(),
        entered_by_id=by_id,
        entered_by_name=by_name,
    )
    _apply(new, data)
    _confirm(new, principal)
    db.add(new)
    await db.flush()
    # A case that rests on the corrected rating now rests on the correction; its timeline says so.
    cases = (
        await db.scalars(
            select(ExitCase).where(
                or_(ExitCase.first_rating_id == old.id, ExitCase.second_rating_id == old.id)
            )
        )
    ).all()
    for case in cases:
        if case.first_rating_id == old.id:
            case.first_rating_id = new.id
        else:
            case.second_rating_id = new.id
        db.add(
            ExitCaseEvent(
                case_id=case.id,
                kind="evidence_corrected",
                actor_name=by_name,
                note=f"{old.year} 年度考核结果由“{old.grade}”更正为“{new.grade}”：{new.reason}",
            )
        )
    await audit_record(
        db,
        actor=actor_of(principal),
        action="assessment.rating_corrected",
        entity_type="assessment_rating",
        entity_id=new.id,
        agency_id=new.agency_id,
        data={**_rating_data(new), "corrects_id": old.id, "old_grade": old.grade, "reason": new.reason},
    )
    await db.commit()
    return new


# ---------------------------------------------------------------- exit cases: reads


_EVENT_LABELS = {
    "opened": "立案（连续两年考核不合格）",
    "notified": "告知当事人",
    "statement": "当事人陈述申辩",
    "evidence_corrected": "证据（考核结果）更正",
    "decision": "法制机构作出决定",
    "qualification_removed": "取消执法资格",
    "qualification_restored": "恢复执法资格",
    "certificates": "证件处理",
    "certificates_pending": "证件处理（待办）",
    "review_requested": "当事人申请复核",
    "review_decided": "复核决定",
}


def _label(enum: Any, value: str | None) -> str:
    return enum(value).label if value else ""


async def _case_row(db: AsyncSession, principal: Principal, case_id: int) -> tuple[ExitCase, Officer, Agency]:
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
    case, officer, agency = await _case_row(db, principal, case_id)
    first = await rating_get(db, system_principal(), case.first_rating_id)
    second = await rating_get(db, system_principal(), case.second_rating_id)
    authority = await db.get(Agency, case.authority_id) if case.authority_id else None
    events = (
        await db.scalars(
            select(ExitCaseEvent).where(ExitCaseEvent.case_id == case.id).order_by(ExitCaseEvent.id)
        )
    ).all()
    return CaseOut(
        id=case.id,
        officer_id=officer.id,
        officer_name=officer.name,
        agency_id=agency.id,
        agency_name=agency.name,
        authority_name=(authority.authority_name or authority.name) if authority else "",
        year=case.year,
        first_rating=first,
        second_rating=second,
        proposed_outcome=ExitOutcome(case.proposed_outcome),
        proposed_outcome_label=_label(ExitOutcome, case.proposed_outcome),
        status=CaseStatus(case.status),
        status_label=_label(CaseStatus, case.status),
        notified_on=case.notified_on,
        statement_deadline=case.statement_deadline,
        statement=case.statement,
        statement_at=case.statement_at,
        decision=Decision(case.decision) if case.decision else None,
        decision_label=_label(Decision, case.decision),
        decided_outcome=ExitOutcome(case.decided_outcome) if case.decided_outcome else None,
        decided_outcome_label=_label(ExitOutcome, case.decided_outcome),
        decision_reason=case.decision_reason,
        decided_by_name=case.decided_by_name,
        decided_on=case.decided_on,
        review_deadline=case.review_deadline,
        review_request=case.review_request,
        review_requested_at=case.review_requested_at,
        review_result=ReviewResult(case.review_result) if case.review_result else None,
        review_result_label=_label(ReviewResult, case.review_result),
        review_reason=case.review_reason,
        timeline=[
            CaseEventOut(
                kind=e.kind,
                label=_EVENT_LABELS.get(e.kind, e.kind),
                actor_name=e.actor_name,
                note=e.note,
                occurred_at=e.occurred_at,
            )
            for e in events
        ],
    )


def _summary(case: ExitCase, officer_name: str, agency_name: str) -> CaseSummary:
    return CaseSummary(
        id=case.id,
        officer_id=case.officer_id,
        officer_name=officer_name,
        agency_name=agency_name,
        year=case.year,
        proposed_outcome_label=_label(ExitOutcome, case.proposed_outcome),
        status=CaseStatus(case.status),
        status_label=_label(CaseStatus, case.status),
        statement_deadline=case.statement_deadline,
        has_statement=case.statement_at is not None,
        decision_label=_label(Decision, case.decision),
    )


async def case_list(
    db: AsyncSession,
    principal: Principal,
    *,
    status: CaseStatus | None = None,
    year: int | None = None,
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
    if status is not None:
        stmt = stmt.where(ExitCase.status == status.value)
    if year is not None:
        stmt = stmt.where(ExitCase.year == year)
    total = int(await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = await db.execute(stmt.order_by(ExitCase.id.desc()).offset((page - 1) * per_page).limit(per_page))
    return [_summary(c, o, a) for c, o, a in rows], total


# ---------------------------------------------------------------- exit cases: due process


def _event(case: ExitCase, kind: str, actor_name: str, note: str = "") -> ExitCaseEvent:
    return ExitCaseEvent(case_id=case.id, kind=kind, actor_name=actor_name, note=note)


async def _audit_case(
    db: AsyncSession, principal: Principal, case: ExitCase, action: str, data: dict[str, Any]
) -> None:
    await audit_record(
        db,
        actor=actor_of(principal),
        action=f"assessment.case_{action}",
        entity_type="exit_case",
        entity_id=case.id,
        agency_id=case.agency_id,
        data={"officer_id": case.officer_id, "year": case.year, **data},
    )


async def _commit(db: AsyncSession) -> None:
    try:
        await db.commit()
    except StaleDataError as exc:
        await db.rollback()
        raise StaleForm("案件刚被他人处理，请刷新后重试") from exc


async def case_statement(
    db: AsyncSession, *, principal: Principal, case_id: int, data: StatementIn
) -> ExitCase:
    """陈述申辩: the officer's own statement and defence, within the deadline."""
    case, _officer, _agency = await _case_row(db, principal, case_id)
    if principal.officer_id != case.officer_id:
        raise Forbidden("陈述申辩只能由当事人本人提交")
    on = today()
    if msg := rules.statement_error(
        CaseStatus(case.status), deadline=case.statement_deadline, today=on, text=data.statement
    ):
        raise DomainError(msg, field="statement")
    case.statement = data.statement.strip()
    case.statement_at = utcnow()
    db.add(_event(case, "statement", entered_by(principal)[1], case.statement))
    await _case_flush(db)
    await _audit_case(db, principal, case, "statement", {"statement": case.statement})
    await _commit(db)
    return case


async def _case_flush(db: AsyncSession) -> None:
    try:
        await db.flush()
    except StaleDataError as exc:
        await db.rollback()
        raise StaleForm("案件刚被他人处理，请刷新后重试") from exc


async def _withdraw_certificates(
    db: AsyncSession, *, case: ExitCase, action: str, ground: str, principal: Principal, on: dt.date
) -> list[str]:
    """The one place where the exit procedure reaches the certificates domain: 吊销 or 注销 every valid
    or suspended card of the officer in the decision's transaction (the bar recorded on revocation)."""
    cards = await certificates_withdraw_for_officer(
        db,
        officer_id=case.officer_id,
        action=action,
        ground=ground,
        evidence=f"退出案件 {case.id}",
        actor=principal,
        on=on,
    )
    verb = "吊销" if action == "revoke" else "注销"
    if not cards:
        return [f"当事人没有有效或暂扣的证件，无需{verb}"]
    return [f"{verb}证件 {card.number}（{ground}）" for card in cards]


async def case_decide(db: AsyncSession, *, principal: Principal, case_id: int, data: DecisionIn) -> ExitCase:
    """法制机构决定: confirm, change or drop, with reasons; a confirmed removal takes effect at once."""
    _require_authority(principal, "作出退出决定")
    case, officer, agency = await _case_row(db, principal, case_id)
    on = today()
    proposed = ExitOutcome(case.proposed_outcome)
    if msg := rules.decision_error(
        CaseStatus(case.status),
        decision=data.decision,
        outcome=data.outcome,
        proposed=proposed,
        reason=data.reason,
        deadline=case.statement_deadline,
        has_statement=case.statement_at is not None,
        today=on,
    ):
        raise DomainError(
            msg, field="reason" if "理由" in msg else ("outcome" if "变更" in msg else "decision")
        )
    policy = await agency_policy(db, agency)
    outcome = rules.decided_outcome(data.decision, proposed, data.outcome)
    actor_name = entered_by(principal)[1]
    case.status = CaseStatus.DECIDED.value
    case.decision = data.decision.value
    case.decided_outcome = outcome.value if outcome else None
    case.decision_reason = data.reason.strip()
    case.decided_by_name = actor_name
    case.decided_on = on
    case.review_deadline = rules.review_deadline(on, policy.review_request_days)
    note = f"{data.decision.label}：{case.decision_reason}"
    if outcome is not None:
        note += f"（处理结果：{outcome.label}）"
    db.add(_event(case, "decision", actor_name, note))
    effect: dict[str, Any] = {}
    if rules.removes_qualification(outcome):
        removed = await db.execute(
            update(ExamQualification)
            .where(ExamQualification.officer_id == officer.id, ExamQualification.status == "valid")
            .values(status="removed", removed_on=on, removed_reason=_removal_reason(case))
            .execution_options(synchronize_session=False)
        )
        count = int(getattr(removed, "rowcount", 0) or 0)
        effect["qualifications_removed"] = count
        db.add(
            _event(
                case,
                "qualification_removed",
                actor_name,
                f"取消执法资格（{count} 项考试合格记录标记为已取消）",
            )
        )
    action = rules.certificate_action(outcome, on_removal=policy.exit_certificate_action)
    if action is not None:
        ground = (
            f"连续两年（{case.year - 1}、{case.year} 年度）考核不合格，{outcome.label if outcome else ''}"
        )
        notes = await _withdraw_certificates(
            db, case=case, action=action, ground=ground, principal=principal, on=on
        )
        effect["certificates"] = notes
        for n in notes:
            db.add(
                _event(case, "certificates_pending" if n.startswith("待") else "certificates", actor_name, n)
            )
    await _case_flush(db)
    await _audit_case(
        db,
        principal,
        case,
        "decided",
        {
            "decision": case.decision,
            "outcome": case.decided_outcome,
            "reason": case.decision_reason,
            **effect,
        },
    )
    await _commit(db)
    return case


def _removal_reason(case: ExitCase) -> str:
    return f"退出案件 {case.id}：连续两年（{case.year - 1}、{case.year} 年度）考核不合格，取消执法资格"


async def case_request_review(
    db: AsyncSession, *, principal: Principal, case_id: int, data: ReviewRequestIn
) -> ExitCase:
    """申请复核: the officer asks the authority to review its decision, within the policy's days."""
    case, _officer, _agency = await _case_row(db, principal, case_id)
    if principal.officer_id != case.officer_id:
        raise Forbidden("复核申请只能由当事人本人提交")
    if msg := rules.review_request_error(
        CaseStatus(case.status), deadline=case.review_deadline, today=today(), text=data.request
    ):
        raise DomainError(msg, field="request")
    case.status = CaseStatus.REVIEW_REQUESTED.value
    case.review_request = data.request.strip()
    case.review_requested_at = utcnow()
    db.add(_event(case, "review_requested", entered_by(principal)[1], case.review_request))
    await _case_flush(db)
    await _audit_case(db, principal, case, "review_requested", {"request": case.review_request})
    await _commit(db)
    return case


async def case_review_decide(
    db: AsyncSession, *, principal: Principal, case_id: int, data: ReviewDecisionIn
) -> ExitCase:
    """复核决定: uphold or overturn. Overturning restores the qualification this case removed; a card
    already revoked stays revoked (a final status) and the officer applies again."""
    _require_authority(principal, "作出复核决定")
    case, officer, _agency = await _case_row(db, principal, case_id)
    if msg := rules.review_decision_error(CaseStatus(case.status), reason=data.reason):
        raise DomainError(msg, field="reason")
    actor_name = entered_by(principal)[1]
    case.status = CaseStatus.CLOSED.value
    case.review_result = data.result.value
    case.review_reason = data.reason.strip()
    db.add(_event(case, "review_decided", actor_name, f"{data.result.label}：{case.review_reason}"))
    restored = 0
    if data.result is ReviewResult.OVERTURNED and rules.removes_qualification(
        ExitOutcome(case.decided_outcome) if case.decided_outcome else None
    ):
        result = await db.execute(
            update(ExamQualification)
            .where(
                ExamQualification.officer_id == officer.id,
                ExamQualification.status == "removed",
                ExamQualification.removed_reason == _removal_reason(case),
            )
            .values(status="valid", removed_on=None, removed_reason="")
            .execution_options(synchronize_session=False)
        )
        restored = int(getattr(result, "rowcount", 0) or 0)
        db.add(_event(case, "qualification_restored", actor_name, f"恢复执法资格（{restored} 项）"))
    await _case_flush(db)
    await _audit_case(
        db,
        principal,
        case,
        "review_decided",
        {"result": case.review_result, "reason": case.review_reason, "restored": restored},
    )
    await _commit(db)
    return case


# ---------------------------------------------------------------- the year-end close


def _insert(db: AsyncSession, model: Any) -> Any:
    """INSERT … ON CONFLICT DO NOTHING is dialect-specific in SQLAlchemy: both engines have it."""
    dialect = db.bind.dialect.name if db.bind is not None else "sqlite"
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(model)


async def _authorities(db: AsyncSession, scope_path: str) -> set[int]:
    """Issuing authorities in the tree and above it."""
    rows = await db.scalars(
        select(Agency.id).where(
            Agency.is_issuing_authority.is_(True),
            or_(Agency.path.startswith(scope_path), Agency.id.in_(path_ids(scope_path) or [-1])),
        )
    )
    return set(rows)


def _nearest(path: str, authorities: set[int]) -> int | None:
    return next((i for i in reversed(path_ids(path)) if i in authorities), None)


def close_candidates(year: int) -> Any:
    """THE query: officers in post with confirmed 不合格 ratings in ``year - 1`` and ``year`` (both
    read from the partial index over confirmed ratings), and whether a case exists.

    It is driven by the index (a few officers in a hundred at most), never by the officers: the
    caller keeps those in post in its tree, whose agencies it has loaded anyway. A scope subquery
    or a filter on the officers here leads SQLite to walk every officer instead (25x slower)."""
    first, second = aliased(AssessmentRating), aliased(AssessmentRating)
    return (
        select(
            second.officer_id, Officer.agency_id, first.id, second.id, ExitCase.id, Officer.employment_status
        )
        .join(
            first,
            and_(
                first.officer_id == second.officer_id,
                first.year == year - 1,
                first.grade == UNQUALIFIED,
                first.status == RatingStatus.CONFIRMED.value,
            ),
        )
        .join(Officer, Officer.id == second.officer_id)
        .outerjoin(ExitCase, and_(ExitCase.officer_id == second.officer_id, ExitCase.year == year))
        .where(
            second.year == year,
            second.grade == UNQUALIFIED,
            second.status == RatingStatus.CONFIRMED.value,
        )
    )


async def _shortfalls(
    db: AsyncSession, scope_path: str, year: int, policies: dict[int, Policy]
) -> list[tuple[int, int, int, str]]:
    """(officer, agency, tenths needed, consequence) of every officer in post short of the closed
    year's hours and not flagged for it yet.

    The training compliance query, narrowed in SQL: officers already flagged are left out through
    the flags' unique key (so a second run reads next to nothing), and, unless some policy sets a
    minimum per category (then anyone may be short), so are those with at least the largest yearly
    requirement of the tree. The training rules then decide each remaining officer exactly.
    """
    rule_of = {aid: training_rules.TrainingRule.from_policy(p) for aid, p in policies.items()}
    with_joined = any(r.prorate_joiners for r in rule_of.values())
    conn = await db.connection()
    scan = await key_order_scan(db, len(policies))
    t, f = TrainingYearTotal, AssessmentFlag
    stmt = (
        _compliance_statement(scope_path, year, with_joined=with_joined, scan=scan)
        .outerjoin(f, and_(f.year == year, f.kind == "training_shortfall", f.officer_id == Officer.id))
        .where(f.officer_id.is_(None))
    )
    if rule_of and not any(r.category_minimums for r in rule_of.values()):
        most = max(r.hours_required for r in rule_of.values())
        hours = (
            func.coalesce(t.general_law, 0) + func.coalesce(t.special_law, 0) + func.coalesce(t.new_law, 0)
        )
        stmt = stmt.where(hours < most)
    result = await conn.execute(stmt)
    as_of = dt.date(year + 1, 1, 1)
    requirements: dict[tuple[int, int], tuple[training_rules.Requirement | None, int]] = {}
    out: list[tuple[int, int, int, str]] = []
    evaluate = training_rules.evaluate
    for row in result.all():
        officer_id, agency_of, g, s, n = row[0], row[1], row[2] or 0, row[3] or 0, row[4] or 0
        joined: dt.date | None = row[5] if with_joined else None
        month = 0 if joined is None or joined.year < year else (13 if joined.year > year else joined.month)
        cached = requirements.get((agency_of, month))
        if cached is None:
            req = training_rules.requirement_for(rule_of[agency_of], year, joined)
            cached = (req, req.total if req is not None else 0)
            requirements[(agency_of, month)] = cached
        requirement, expected = cached
        if requirement is None:
            continue
        needed, _by, _state = evaluate(requirement, expected, (g, s, n), as_of=as_of)
        if needed:
            out.append((officer_id, agency_of, needed, policies[agency_of].training_shortfall_consequence))
    return out


def _flat_requirements(policies: dict[int, Policy]) -> bool:
    """Whether every policy of the tree asks a plain yearly total (no minimum per category, no
    prorating of joiners): then an officer is short exactly when the net hours are below it, and
    the database can judge and flag the whole tree in one statement (``_flag_in_sql``)."""
    return not any(p.training_prorate_joiners for p in policies.values()) and not any(
        training_rules.TrainingRule.from_policy(p).category_minimums for p in policies.values()
    )


async def _flag_in_sql(
    db: AsyncSession, scope_path: str, year: int, policies: dict[int, Policy]
) -> Counter[int]:
    """The training shortfall of a closed year, judged and flagged by ONE INSERT … SELECT over the
    compliance query (plain yearly totals only, see ``_flat_requirements``): the 100,000 short
    officers of a province never travel to Python and back. Returns the flags added per agency.

    Same outcome as ``_shortfalls`` + ``_insert_flags`` (``rules.evaluate`` with no minimums:
    needed = requirement − net hours when below it); a test runs both on one tree."""
    t, f = TrainingYearTotal, AssessmentFlag
    required = value_by_agency(
        {a: training_rules.TrainingRule.from_policy(p).hours_required for a, p in policies.items()}
    )
    consequence = value_by_agency({a: p.training_shortfall_consequence for a, p in policies.items()})
    hours = func.coalesce(t.general_law, 0) + func.coalesce(t.special_law, 0) + func.coalesce(t.new_law, 0)
    chosen = (
        _compliance_statement(
            scope_path, year, with_joined=False, scan=await key_order_scan(db, len(policies))
        )
        .with_only_columns(
            Officer.id,
            Officer.agency_id,
            literal(year),
            literal("training_shortfall"),
            consequence,
            required - hours,
            literal(utcnow(), type_=f.__table__.c.created_at.type),
            maintain_column_froms=True,
        )
        .outerjoin(f, and_(f.officer_id == Officer.id, f.year == year, f.kind == "training_shortfall"))
        .where(f.officer_id.is_(None), hours < required)
        .order_by(Officer.id)
    )
    columns = ["officer_id", "agency_id", "year", "kind", "consequence", "needed_tenths", "created_at"]
    stmt = _insert(db, AssessmentFlag).from_select(columns, chosen)
    if (await db.connection()).dialect.name == "sqlite":  # one writer, but an earlier reader may race it
        # (and SQLite has no INSERT in a WITH)
        stmt = stmt.on_conflict_do_nothing(index_elements=["officer_id", "year", "kind"])
        result = await db.execute(stmt.returning(AssessmentFlag.agency_id))
        return Counter(int(a) for (a,) in result.all())
    # PostgreSQL counts them per agency itself: 100 rows come back instead of 100,000.
    added = stmt.returning(AssessmentFlag.agency_id).cte("added")
    per_agency = select(added.c.agency_id, func.count()).group_by(added.c.agency_id)
    return Counter({int(a): int(n) for a, n in (await db.execute(per_agency)).all()})


_CLOSE_LOCK = 7_270_006  # pg_advisory_xact_lock key of the year-end close


async def _insert_flags(db: AsyncSession, year: int, short: list[tuple[int, int, int, str]]) -> None:
    """Tens of thousands of flags by one COPY on PostgreSQL, one executemany of plain tuples on
    SQLite: the ORM's per-row work would cost more than the whole close."""
    conn = await db.connection()
    created = AssessmentFlag.__table__.c.created_at.type
    now = utcnow()
    if conn.dialect.name == "postgresql":
        # COPY, twice as fast as INSERT … SELECT FROM unnest(arrays) ON CONFLICT here (0.4 s against
        # 0.8 s for 94k flags). It cannot skip duplicates: the close's advisory lock makes the
        # anti-join that chose these officers exact.
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.copy_records_to_table(
            "assessment_flags",
            columns=("officer_id", "agency_id", "year", "kind", "consequence", "needed_tenths", "created_at"),
            records=[(o, a, year, "training_shortfall", c, n, now) for o, a, n, c in short],
        )
        return
    bind = created.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    stamp = bind(now) if bind else now
    await conn.exec_driver_sql(
        "INSERT INTO assessment_flags (officer_id, agency_id, year, kind, consequence, needed_tenths, created_at) "
        "VALUES (?, ?, ?, 'training_shortfall', ?, ?, ?) "
        "ON CONFLICT (officer_id, year, kind) DO NOTHING",
        [(o, a, year, c, n, stamp) for o, a, n, c in short],
    )


async def close_year(
    db: AsyncSession, *, principal: Principal, year: int, progress: Progress | None = None
) -> CloseYearOut:
    """年度考核结转: open an exit case for every officer of the tree unqualified in ``year - 1`` and
    ``year``, flag the closed year's training shortfalls, and record the run with a summary per
    agency. Idempotent: what a previous run opened or flagged is neither opened nor flagged again.
    """
    _require_authority(principal, "进行年度结转")
    if year > today().year:
        raise DomainError(f"{year} 年度尚未开始，不能结转", field="year")
    if (await db.connection()).dialect.name == "postgresql":
        # One close at a time: a second run waits and then finds what the first opened and flagged
        # (SQLite has one writer anyway, and its flags skip duplicates on the unique key).
        await db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CLOSE_LOCK})
        # The flags' sort of 100 000 officers then stays in memory: for this transaction only.
        await db.execute(text("SET LOCAL work_mem = '64MB'"))
    started = time.perf_counter()
    step = progress or (lambda _s, _d, _t: None)
    scope_path = principal.agency_path
    scope_agency = await db.get(Agency, principal.agency_id) if principal.agency_id else None
    tree = {
        a.id: a for a in (await db.scalars(select(Agency).where(Agency.path.startswith(scope_path)))).all()
    }
    policies = await agency_policies(db, {a.id: a.path for a in tree.values()})
    authorities = await _authorities(db, scope_path)
    on = today()
    actor_name = entered_by(principal)[1]

    step("查找连续两年考核不合格的人员", 0, 4)
    with gc_paused():
        active = EmploymentStatus.ACTIVE.value
        rows = [
            r for r in (await db.execute(close_candidates(year))).all() if r[1] in tree and r[5] == active
        ]
    existing = sum(1 for r in rows if r[4] is not None)
    new_cases = [
        {
            "officer_id": officer_id,
            "agency_id": agency_id,
            "authority_id": _nearest(tree[agency_id].path, authorities),
            "year": year,
            "first_rating_id": first_id,
            "second_rating_id": second_id,
            "proposed_outcome": policies[agency_id].two_year_unqualified_outcome,
            "status": CaseStatus.OPEN.value,
            "notified_on": on,
            "statement_deadline": rules.statement_deadline(on, policies[agency_id].statement_days),
            "statement": "",
            "decision_reason": "",
            "decided_by_name": "",
            "review_request": "",
            "review_reason": "",
            "opened_at": utcnow(),
            "version": 1,
        }
        for officer_id, agency_id, first_id, second_id, case_id, _status in rows
        if case_id is None
    ]
    step("开立退出案件", 1, 4)
    opened: list[tuple[int, int, int, dt.date, str]] = []
    if new_cases:
        new_cases.sort(key=lambda c: c["officer_id"])  # the unique key (officer, year) is appended to
        found = await insert_many(
            db,
            ExitCase.__table__,
            new_cases,
            skip_conflicts_on=("officer_id", "year"),
            returning=("id", "officer_id", "agency_id", "statement_deadline", "proposed_outcome"),
        )
        opened = [tuple(r) for r in found]
        events: list[dict[str, Any]] = []
        now = utcnow()
        for case_id, _officer_id, _agency_id, deadline, outcome in opened:
            events.append(
                {
                    "case_id": case_id,
                    "kind": "opened",
                    "actor_name": actor_name,
                    "note": f"{year - 1}、{year} 连续两个年度考核不合格；拟处理意见：{ExitOutcome(outcome).label}",
                    "occurred_at": now,
                }
            )
            events.append(
                {
                    "case_id": case_id,
                    "kind": "notified",
                    "actor_name": actor_name,
                    "note": f"已告知当事人拟处理意见及其陈述申辩的权利；陈述申辩期限至 {deadline.isoformat()}",
                    "occurred_at": now,
                }
            )
        await insert_many(db, ExitCaseEvent.__table__, events)

    step("核查年度培训学时", 2, 4)
    flags_by_agency: Counter[int] = Counter()
    if _flat_requirements(policies):
        step("标记培训学时不足", 3, 4)
        flags_by_agency = await _flag_in_sql(db, scope_path, year, policies)
    else:
        with gc_paused():
            short = await _shortfalls(db, scope_path, year, policies)
        step("标记培训学时不足", 3, 4)
        if short:
            short.sort()  # officer order: the flags' only index is appended to, not split all over
            await _insert_flags(db, year, short)
            flags_by_agency = Counter(agency_id for _o, agency_id, _n, _c in short)

    cases_by_agency = Counter(r[2] for r in opened)
    agencies = [
        AgencyClose(
            agency_id=aid,
            agency_name=tree[aid].name if aid in tree else str(aid),
            cases_opened=cases_by_agency.get(aid, 0),
            shortfall_flags=flags_by_agency.get(aid, 0),
        )
        for aid in sorted(
            set(cases_by_agency) | set(flags_by_agency), key=lambda i: tree[i].path if i in tree else ""
        )
    ]
    case_ids = sorted(r[0] for r in opened)
    closing = YearClosing(
        year=year,
        scope_agency_id=scope_agency.id if scope_agency else None,
        scope_path=scope_path,
        run_by_name=actor_name,
        cases_opened=len(opened),
        flags_added=sum(flags_by_agency.values()),
        summary_json=json.dumps(
            [
                {
                    "agency_id": a.agency_id,
                    "agency_name": a.agency_name,
                    "cases": a.cases_opened,
                    "flags": a.shortfall_flags,
                }
                for a in agencies
            ],
            ensure_ascii=False,
        ),
    )
    db.add(closing)
    await db.flush()
    await audit_record(
        db,
        actor=actor_of(principal),
        action="assessment.year_closed",
        entity_type="assessment_year_closing",
        entity_id=closing.id,
        agency_id=scope_agency.id if scope_agency else None,
        data={
            "year": year,
            "cases_opened": len(opened),
            "case_ids": case_ids,
            "cases_existing": existing,
            "flags_added": sum(flags_by_agency.values()),
        },
    )
    await db.commit()
    step("完成", 4, 4)
    return CloseYearOut(
        closing_id=closing.id,
        year=year,
        scope=scope_agency.name if scope_agency else "全部单位",
        officers_checked=len(rows),
        cases_opened=len(opened),
        cases_existing=existing,
        flags_added=sum(flags_by_agency.values()),
        case_ids=case_ids,
        agencies=agencies,
        seconds=round(time.perf_counter() - started, 3),
    )


async def closing_list(
    db: AsyncSession, principal: Principal, *, limit: int = 20
) -> list[tuple[YearClosing, list[Any]]]:
    """Recent runs over the principal's tree or over a tree containing it (the console command runs
    over everything), each with its summary rows cut down to the agencies the principal sees."""
    _require_authority(principal, "查看年度结转记录")
    mine = principal.agency_path
    rows = await db.scalars(select(YearClosing).order_by(YearClosing.id.desc()).limit(200))
    visible = set(await db.scalars(select(Agency.id).where(Agency.path.startswith(mine))))
    out: list[tuple[YearClosing, list[Any]]] = []
    for c in rows:
        if not (c.scope_path.startswith(mine) or mine.startswith(c.scope_path)):
            continue
        summary = [a for a in json.loads(c.summary_json) if a.get("agency_id") in visible]
        out.append((c, summary))
        if len(out) == limit:
            break
    return out


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
            FlagOut(
                year=f.year,
                consequence=f.consequence,
                consequence_label=ShortfallConsequence(f.consequence).label,
                needed_hours=training_rules.hours_value(f.needed_tenths),
            )
            for f in flags
        ],
        grades=list(policy.grades),
    )


# ---------------------------------------------------------------- the console command


async def command_close_year(*, year: int, progress: bool, database_url: str | None = None) -> CloseYearOut:
    """``app assessments close-year YEAR``: the whole tree, recorded as the system, with a progress bar."""
    from app.db import make_engine, make_sessionmaker
    from app.settings import get_settings

    engine = make_engine(database_url or get_settings().database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            if not progress:
                return await close_year(session, principal=system_principal(), year=year)
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            with bar:
                task = bar.add_task(f"{year} 年度结转", total=4)

                def update(description: str, done: int, total: int) -> None:
                    bar.update(
                        task, description=f"{year} 年度结转：{description}", completed=done, total=total
                    )

                return await close_year(session, principal=system_principal(), year=year, progress=update)
    finally:
        await engine.dispose()


def close_year_lines(out: CloseYearOut) -> list[str]:
    """The console summary, per agency."""
    lines = [
        f"{out.year} 年度结转（{out.scope}）：新开立退出案件 {out.cases_opened} 件"
        f"（此前已开立 {out.cases_existing} 件），培训学时不足标记 {out.flags_added} 人，用时 {out.seconds:.2f} 秒",
    ]
    for a in out.agencies:
        lines.append(f"  {a.agency_name}：退出案件 {a.cases_opened}，学时不足 {a.shortfall_flags}")
    return lines
