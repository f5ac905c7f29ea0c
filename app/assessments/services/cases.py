"""Exit cases (退出案件) and their due process: the officer's statement (陈述申辩), the authority's
decision with its effects on the qualification and the cards, the review request and its decision.

A case is opened by the year-end close (``closing.close_year``). Each step is guarded by the case's
status (``rules``) and by who may take it; a case changed by someone else meanwhile is refused as
stale (its version column). Nothing here commits: the caller's edge ends the transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from app.accounts.models import Agency, Officer
from app.accounts.selectors import agency_policy
from app.accounts.services.postings import flush_versioned, rotate_posting
from app.assessments import rules
from app.assessments.models import AssessmentRating, ExitCase, ExitCaseEvent
from app.assessments.rules import CaseStatus, ExitOutcome, ReviewResult
from app.assessments.schemas import DecisionIn, ReviewDecisionIn, ReviewRequestIn, StatementIn
from app.assessments.selectors import case_row, decider_refusal
from app.audit.services import audit_change
from app.certificates.rules import CancelReason
from app.certificates.services import certificates_withdraw_for_officer, exit_bar_lift, exit_bar_record
from app.exams.models import ExamQualification
from app.lib.clock import today, utcnow
from app.lib.enums import EmploymentStatus
from app.lib.errors import DomainError, Forbidden, StaleForm
from app.lib.policy import Policy
from app.lib.security import Principal
from app.training.access import entered_by


def _event(case: ExitCase, kind: str, actor_name: str, note: str = "") -> ExitCaseEvent:
    return ExitCaseEvent(case_id=case.id, kind=kind, actor_name=actor_name, note=note)


async def _own_case(db: AsyncSession, principal: Principal, case_id: int, step: str) -> ExitCase:
    """The case, for a step only the officer it concerns takes (陈述申辩, 复核申请)."""
    case, _officer, _agency = await case_row(db, principal, case_id)
    if principal.officer_id != case.officer_id:
        raise Forbidden(f"{step}只能由当事人本人提交")
    return case


async def _office_case(
    db: AsyncSession, principal: Principal, case_id: int
) -> tuple[ExitCase, Officer, Agency]:
    """The case with its officer and agency, for a step only the legal-affairs office of the same or
    a higher level takes (决定, 复核决定): anyone else is refused with the reason."""
    case, officer, agency = await case_row(db, principal, case_id)
    if msg := await decider_refusal(db, principal, agency):
        raise Forbidden(msg)
    return case, officer, agency


async def case_statement(
    db: AsyncSession, *, principal: Principal, case_id: int, data: StatementIn
) -> ExitCase:
    """陈述申辩: the officer's own statement and defence, within the deadline."""
    case = await _own_case(db, principal, case_id, "陈述申辩")
    on = today()
    if msg := rules.statement_error(
        CaseStatus(case.status), deadline=case.statement_deadline, today=on, text=data.statement
    ):
        raise DomainError(msg, field="statement")
    case.statement = data.statement.strip()
    case.statement_at = utcnow()
    db.add(_event(case, "statement", entered_by(principal)[1], case.statement))
    await _case_written(db, principal, case, "statement", {"statement": case.statement})
    return case


async def _case_written(
    db: AsyncSession, principal: Principal, case: ExitCase, action: str, data: dict[str, Any]
) -> None:
    """The end of a step: the case's changes written now, then audited (``assessment.case_<action>``).
    A case someone else changed meanwhile (its version) is stale; the failed flush is rolled back by
    the caller's edge with the rest of the request."""
    try:
        await db.flush()
    except StaleDataError as exc:
        raise StaleForm("案件刚被他人处理，请刷新后重试") from exc
    case_data = {"officer_id": case.officer_id, "year": case.year, **data}
    await audit_change(db, principal, f"assessment.case_{action}", case, case_data)


@dataclass(frozen=True)
class _Decided:
    """A decided exit taking effect: what each of its steps reads."""

    case: ExitCase
    officer: Officer
    outcome: ExitOutcome
    policy: Policy
    principal: Principal
    on: dt.date
    actor_name: str


async def _withdraw_certificates(db: AsyncSession, d: _Decided) -> list[str]:
    """Where the exit procedure reaches the certificates' cards: 吊销 or 注销 every valid or suspended
    card of the policy's kinds in the decision's transaction (the bar recorded on revocation); a
    card cancelled for 调离 names 'left the post' as its ground, otherwise 'qualification removed'.
    Each note goes on the case's timeline."""
    case = d.case
    action = rules.certificate_action(d.outcome, on_removal=d.policy.exit_certificate_action)
    assert action is not None  # an exit that takes effect always reaches the cards
    ground = f"连续两年（{case.year - 1}、{case.year} 年度）考核不合格，{d.outcome.label}"
    left_post = d.outcome is ExitOutcome.MOVE_OFF_POST
    cards = await certificates_withdraw_for_officer(
        db,
        officer_id=case.officer_id,
        action=action,
        kinds=d.policy.exit_certificate_kinds,
        ground=ground,
        evidence=f"退出案件 {case.id}",
        actor=d.principal,
        on=d.on,
        cancel_reason=CancelReason.LEFT_POST if left_post else CancelReason.QUALIFICATION_REMOVED,
    )
    verb = "吊销" if action == "revoke" else "注销"
    notes = [f"{verb}证件 {card.number}（{ground}）" for card in cards]
    notes = notes or [f"当事人没有有效或暂扣的证件，无需{verb}"]
    for n in notes:
        kind = "certificates_pending" if n.startswith("待") else "certificates"
        db.add(_event(case, kind, d.actor_name, n))
    return notes


async def case_decide(db: AsyncSession, *, principal: Principal, case_id: int, data: DecisionIn) -> ExitCase:
    """法制机构决定: confirm, change or drop, with reasons; a decided exit takes effect at once.

    Only the legal-affairs office of the same or a higher level decides (403 with the reason), and
    only on evidence that still holds: two ratings that both fail under the policy today."""
    case, officer, agency = await _office_case(db, principal, case_id)
    on = today()
    proposed = ExitOutcome(case.proposed_outcome)
    policy = await agency_policy(db, agency)
    if msg := rules.decision_error(
        CaseStatus(case.status),
        decision=data.decision,
        outcome=data.outcome,
        proposed=proposed,
        reason=data.reason,
        deadline=case.statement_deadline,
        has_statement=case.statement_at is not None,
        today=on,
        evidence_gap=await _evidence_gap(db, case, policy.failing_grades),
    ):
        raise DomainError(
            msg, field="reason" if "决定须写明理由" in msg else ("outcome" if "变更" in msg else "decision")
        )
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
    if outcome is not None:
        decided = _Decided(case, officer, outcome, policy, principal, on, actor_name)
        effect = await _take_effect(db, decided)
    await _case_written(
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
    return case


def _decided_outcome(case: ExitCase) -> ExitOutcome | None:
    return ExitOutcome(case.decided_outcome) if case.decided_outcome else None


def _removal_reason(case: ExitCase, outcome: ExitOutcome) -> str:
    """The mark on the exam qualifications a decision took: a review that overturns it finds them by it."""
    years = f"连续两年（{case.year - 1}、{case.year} 年度）考核不合格"
    if outcome is ExitOutcome.MOVE_OFF_POST:
        return f"退出案件 {case.id}：{years}，调离执法岗位，执法资格暂停（须返回执法岗位并重新考试合格）"
    return f"退出案件 {case.id}：{years}，取消执法资格"


async def _evidence_gap(db: AsyncSession, case: ExitCase, failing: list[str]) -> str | None:
    rows = await db.execute(
        select(AssessmentRating.id, AssessmentRating.year, AssessmentRating.grade).where(
            AssessmentRating.id.in_([case.first_rating_id, case.second_rating_id])
        )
    )
    grades = {i: (y, g) for i, y, g in rows}
    return rules.evidence_gap(grades[case.first_rating_id], grades[case.second_rating_id], failing=failing)


async def _take_effect(db: AsyncSession, d: _Decided) -> dict[str, Any]:
    """What a decided exit does: the exam qualification is taken (取消: removed; 调离: suspended
    until a return and a new pass), 调离 moves the officer off the enforcement post (posting history
    closed, status 调离), the bar says what must happen before a card again, and the cards go."""
    case, officer, outcome, on = d.case, d.officer, d.outcome, d.on
    removed = await db.execute(
        update(ExamQualification)
        .where(ExamQualification.officer_id == officer.id, ExamQualification.status == "valid")
        .values(status="removed", removed_on=on, removed_reason=_removal_reason(case, outcome))
        .execution_options(synchronize_session=False)
    )
    count = int(getattr(removed, "rowcount", 0) or 0)
    verb = "取消执法资格" if rules.removes_qualification(outcome) else "暂停执法资格"
    db.add(_event(case, "qualification_removed", d.actor_name, f"{verb}（{count} 项考试合格记录）"))
    effect: dict[str, Any] = {"qualifications_removed": count}
    if outcome is ExitOutcome.MOVE_OFF_POST:
        effect["post"] = await _move_off_post(db, d)
        db.add(_event(case, "moved_off_post", d.actor_name, effect["post"]))
    years = (
        d.policy.revocation_bar_years
        if rules.removes_qualification(outcome)
        else d.policy.move_off_post_bar_years
    )
    bar = rules.exit_bar(outcome, on, bar_years=years)
    await exit_bar_record(
        db,
        officer_id=officer.id,
        case_id=case.id,
        outcome=outcome.value,
        barred_from=on,
        barred_until=bar.barred_until,
        conditions=bar.conditions,
        actor=d.principal,
    )
    db.add(_event(case, "bar_recorded", d.actor_name, bar.conditions))
    effect["bar"] = {
        "barred_until": bar.barred_until.isoformat() if bar.barred_until else None,
        "conditions": bar.conditions,
    }
    effect["certificates"] = await _withdraw_certificates(db, d)
    return effect


async def _move_off_post(db: AsyncSession, d: _Decided) -> str:
    """调离执法岗位: the officer's enforcement posting ends (history kept) and their status reads 调离."""
    officer = d.officer
    if officer.employment_status != EmploymentStatus.ACTIVE.value:
        return f"当事人已不在岗（{EmploymentStatus(officer.employment_status).label}），无需调离"
    reason = f"退出案件 {d.case.id}：连续两年考核不合格，调离执法岗位"
    before = officer.employment_status
    officer.employment_status = EmploymentStatus.TRANSFERRED.value
    await flush_versioned(db)
    await rotate_posting(db, officer, officer.agency_id, d.on, reason, open_new=False)
    await audit_change(
        db,
        d.principal,
        "officer.end_service",
        officer,
        {
            "before": {"employment_status": before},
            "after": {"employment_status": officer.employment_status},
            "effective_on": d.on.isoformat(),
            "reason": reason,
        },
    )
    return f"调离执法岗位：任职经历于 {d.on.isoformat()} 结束，人员状态为“调离”"


async def case_request_review(
    db: AsyncSession, *, principal: Principal, case_id: int, data: ReviewRequestIn
) -> ExitCase:
    """申请复核: the officer asks the authority to review its decision, within the policy's days."""
    case = await _own_case(db, principal, case_id, "复核申请")
    if msg := rules.review_request_error(
        CaseStatus(case.status), deadline=case.review_deadline, today=today(), text=data.request
    ):
        raise DomainError(msg, field="request")
    case.status = CaseStatus.REVIEW_REQUESTED.value
    case.review_request = data.request.strip()
    case.review_requested_at = utcnow()
    db.add(_event(case, "review_requested", entered_by(principal)[1], case.review_request))
    await _case_written(db, principal, case, "review_requested", {"request": case.review_request})
    return case


async def case_review_decide(
    db: AsyncSession, *, principal: Principal, case_id: int, data: ReviewDecisionIn
) -> ExitCase:
    """复核决定: uphold or overturn, by the legal-affairs office of the same or a higher level.
    Overturning restores the qualification this case took and lifts its bar; a card already revoked
    or cancelled stays so (a final status) and the officer applies again; an officer moved off the
    post is brought back by their agency (返岗)."""
    case, officer, _agency = await _office_case(db, principal, case_id)
    if msg := rules.review_decision_error(CaseStatus(case.status), reason=data.reason):
        raise DomainError(msg, field="reason")
    actor_name = entered_by(principal)[1]
    case.status = CaseStatus.CLOSED.value
    case.review_result = data.result.value
    case.review_reason = data.reason.strip()
    db.add(_event(case, "review_decided", actor_name, f"{data.result.label}：{case.review_reason}"))
    restored = 0
    outcome = _decided_outcome(case)
    if data.result is ReviewResult.OVERTURNED and outcome is not None:
        result = await db.execute(
            update(ExamQualification)
            .where(
                ExamQualification.officer_id == officer.id,
                ExamQualification.status == "removed",
                ExamQualification.removed_reason == _removal_reason(case, outcome),
            )
            .values(status="valid", removed_on=None, removed_reason="")
            .execution_options(synchronize_session=False)
        )
        restored = int(getattr(result, "rowcount", 0) or 0)
        db.add(_event(case, "qualification_restored", actor_name, f"恢复执法资格（{restored} 项）"))
        if await exit_bar_lift(
            db, case_id=case.id, on=today(), reason=f"复核撤销原决定：{case.review_reason}"
        ):
            db.add(_event(case, "bar_lifted", actor_name, "解除重新持证限制"))
    await _case_written(
        db,
        principal,
        case,
        "review_decided",
        {"result": case.review_result, "reason": case.review_reason, "restored": restored},
    )
    return case


async def evidence_corrected(
    db: AsyncSession, *, principal: Principal, old: AssessmentRating, new: AssessmentRating
) -> None:
    """A case that rests on the corrected rating now rests on the correction; its timeline says so.

    When the two years no longer both fail (under the policy of the agency that opened the case), an
    undecided case closes as 证据不再支持, and a decision with an effect is not silently undone: the
    review opens for the office to uphold or overturn it (依职权复核). Each step is audited."""
    cases = (
        await db.scalars(
            select(ExitCase).where(
                or_(ExitCase.first_rating_id == old.id, ExitCase.second_rating_id == old.id)
            )
        )
    ).all()
    by_name = entered_by(principal)[1]
    for case in cases:
        if case.first_rating_id == old.id:
            case.first_rating_id = new.id
        else:
            case.second_rating_id = new.id
        note = f"{old.year} 年度考核结果由“{old.grade}”更正为“{new.grade}”：{new.reason}"
        db.add(_event(case, "evidence_corrected", by_name, note))
        agency = await db.get(Agency, case.agency_id)
        assert agency is not None
        gap = await _evidence_gap(db, case, (await agency_policy(db, agency)).failing_grades)
        effect = rules.correction_effect(
            CaseStatus(case.status), holds=gap is None, decided_outcome=_decided_outcome(case)
        )
        before = case.status
        if effect == "withdraw":
            case.status = CaseStatus.EVIDENCE_WITHDRAWN.value
            db.add(_event(case, "evidence_withdrawn", by_name, f"案件终结：{gap}"))
        elif effect == "review":
            case.status = CaseStatus.REVIEW_REQUESTED.value
            case.review_result = None
            case.review_request = f"考核结果更正后证据不再支持原决定（{gap}），依职权启动复核"
            case.review_requested_at = utcnow()
            db.add(_event(case, "review_opened", by_name, case.review_request))
        await _case_written(
            db,
            principal,
            case,
            "evidence_corrected",
            {
                "old_rating_id": old.id,
                "new_rating_id": new.id,
                "old_grade": old.grade,
                "new_grade": new.grade,
                "effect": effect,
                "status": [before, case.status],
                "gap": gap,
            },
        )
