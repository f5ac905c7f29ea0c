"""Exit cases (退出案件) and their due process: the officer's statement (陈述申辩), the authority's
decision with its effects on the qualification and the cards, the review request and its decision.

A case is opened by the year-end close (``closing.close_year``). Each step is guarded by the case's
status (``rules``) and by who may take it; a case changed by someone else meanwhile is refused as
stale (its version column). Nothing here commits: the caller's edge ends the transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from app.accounts.selectors import agency_policy
from app.assessments import rules
from app.assessments.models import ExitCase, ExitCaseEvent
from app.assessments.rules import CaseStatus, ExitOutcome, ReviewResult
from app.assessments.schemas import DecisionIn, ReviewDecisionIn, ReviewRequestIn, StatementIn
from app.assessments.selectors import authority_only, case_row
from app.audit.services import audit_record
from app.certificates.services import certificates_withdraw_for_officer
from app.exams.models import ExamQualification
from app.lib.clock import today, utcnow
from app.lib.errors import DomainError, Forbidden, StaleForm
from app.lib.security import Principal, actor_of
from app.training.access import entered_by


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


async def case_statement(
    db: AsyncSession, *, principal: Principal, case_id: int, data: StatementIn
) -> ExitCase:
    """陈述申辩: the officer's own statement and defence, within the deadline."""
    case, _officer, _agency = await case_row(db, principal, case_id)
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
    return case


async def _case_flush(db: AsyncSession) -> None:
    """Write the case's changes now: a case someone else changed meanwhile (its version) is stale.
    The failed flush is rolled back by the caller's edge with the rest of the request."""
    try:
        await db.flush()
    except StaleDataError as exc:
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
    authority_only(principal, "作出退出决定")
    case, officer, agency = await case_row(db, principal, case_id)
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
    return case


def _removal_reason(case: ExitCase) -> str:
    return f"退出案件 {case.id}：连续两年（{case.year - 1}、{case.year} 年度）考核不合格，取消执法资格"


async def case_request_review(
    db: AsyncSession, *, principal: Principal, case_id: int, data: ReviewRequestIn
) -> ExitCase:
    """申请复核: the officer asks the authority to review its decision, within the policy's days."""
    case, _officer, _agency = await case_row(db, principal, case_id)
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
    return case


async def case_review_decide(
    db: AsyncSession, *, principal: Principal, case_id: int, data: ReviewDecisionIn
) -> ExitCase:
    """复核决定: uphold or overturn. Overturning restores the qualification this case removed; a card
    already revoked stays revoked (a final status) and the officer applies again."""
    authority_only(principal, "作出复核决定")
    case, officer, _agency = await case_row(db, principal, case_id)
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
    return case
