"""Ratings (年度考核结果): entry as a draft, confirmation that locks it, correction with a reason.

One use case per function: load, apply the rules, write, audit. Nothing here commits: the caller's
edge (the request, the console command) ends the transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from app.accounts.models import Agency
from app.accounts.selectors import agency_get, agency_policy, agency_subtree_ids, officer_get
from app.assessments import rules
from app.assessments.models import AssessmentRating, ExitCase, ExitCaseEvent
from app.assessments.rules import SCORE_LABELS, CaseStatus, ExitOutcome, RatingStatus, Remedy
from app.assessments.schemas import CorrectionIn, RatingIn
from app.assessments.selectors import admin_only, rating_get
from app.audit.services import audit_record
from app.lib.clock import today, utcnow
from app.lib.errors import Conflict, DomainError, FieldError, StaleForm
from app.lib.policy import Policy
from app.lib.security import Principal, actor_of
from app.training.access import entered_by


async def _rating_row(db: AsyncSession, principal: Principal, rating_id: int) -> AssessmentRating:
    await rating_get(db, principal, rating_id)
    r = await db.get(AssessmentRating, rating_id)
    assert r is not None
    return r


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


def _scores(data: RatingIn | CorrectionIn) -> dict[str, int | None]:
    return {k: getattr(data, k) for k in SCORE_LABELS}


def _apply(r: AssessmentRating, data: RatingIn | CorrectionIn, policy: Policy) -> None:
    c = rules.consequences_of(
        data.grade, data.remedy, failing=policy.failing_grades, bars_excellent=policy.excellent_barring_grades
    )
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
    admin_only(principal, "登记考核结果")
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
    _apply(r, data, policy)
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
    return r


async def rating_confirm(db: AsyncSession, *, principal: Principal, rating_id: int) -> AssessmentRating:
    """确认考核结果: the draft becomes the locked rating of the year."""
    admin_only(principal, "确认考核结果")
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
    return r


async def rating_confirm_all(
    db: AsyncSession, *, principal: Principal, year: int, agency_id: int | None = None
) -> int:
    """确认全部草稿: every draft of ``year`` in the tree at once (one UPDATE), audited as one event."""
    admin_only(principal, "确认考核结果")
    agency = await agency_get(db, principal, agency_id or principal.agency_id)
    in_tree = agency_subtree_ids(agency.path)
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
    return count


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
        db.add(ExitCaseEvent(case_id=case.id, kind="evidence_corrected", actor_name=by_name, note=note))
        agency = await db.get(Agency, case.agency_id)
        assert agency is not None
        failing = (await agency_policy(db, agency)).failing_grades
        grades = {
            r.id: (r.year, r.grade)
            for r in (
                await db.scalars(
                    select(AssessmentRating).where(
                        AssessmentRating.id.in_([case.first_rating_id, case.second_rating_id])
                    )
                )
            ).all()
        }
        gap = rules.evidence_gap(grades[case.first_rating_id], grades[case.second_rating_id], failing=failing)
        outcome = ExitOutcome(case.decided_outcome) if case.decided_outcome else None
        effect = rules.correction_effect(CaseStatus(case.status), holds=gap is None, decided_outcome=outcome)
        before = case.status
        if effect == "withdraw":
            case.status = CaseStatus.EVIDENCE_WITHDRAWN.value
            db.add(
                ExitCaseEvent(
                    case_id=case.id, kind="evidence_withdrawn", actor_name=by_name, note=f"案件终结：{gap}"
                )
            )
        elif effect == "review":
            case.status = CaseStatus.REVIEW_REQUESTED.value
            case.review_result = None
            case.review_request = f"考核结果更正后证据不再支持原决定（{gap}），依职权启动复核"
            case.review_requested_at = utcnow()
            db.add(
                ExitCaseEvent(
                    case_id=case.id, kind="review_opened", actor_name=by_name, note=case.review_request
                )
            )
        try:
            await db.flush()
        except StaleDataError as exc:
            raise StaleForm("案件刚被他人处理，请刷新后重试") from exc
        await audit_record(
            db,
            actor=actor_of(principal),
            action="assessment.case_evidence_corrected",
            entity_type="exit_case",
            entity_id=case.id,
            agency_id=case.agency_id,
            data={
                "officer_id": case.officer_id,
                "year": case.year,
                "old_rating_id": old.id,
                "new_rating_id": new.id,
                "old_grade": old.grade,
                "new_grade": new.grade,
                "effect": effect,
                "status": [before, case.status],
                "gap": gap,
            },
        )


async def rating_correct(
    db: AsyncSession, *, principal: Principal, rating_id: int, data: CorrectionIn
) -> AssessmentRating:
    """更正考核结果: a new confirmed rating with a reason replaces the locked one, which stays on record."""
    admin_only(principal, "更正考核结果")
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
    _apply(new, data, policy)
    _confirm(new, principal)
    db.add(new)
    await db.flush()
    await evidence_corrected(db, principal=principal, old=old, new=new)
    await audit_record(
        db,
        actor=actor_of(principal),
        action="assessment.rating_corrected",
        entity_type="assessment_rating",
        entity_id=new.id,
        agency_id=new.agency_id,
        data={**_rating_data(new), "corrects_id": old.id, "old_grade": old.grade, "reason": new.reason},
    )
    return new
