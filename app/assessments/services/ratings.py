"""Ratings (年度考核结果): entry as a draft, confirmation that locks it, correction with a reason.

One use case per function: load, apply the rules, write, audit. Nothing here commits: the caller's
edge (the request, the console command) ends the transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from app.accounts.models import Agency
from app.accounts.selectors import agency_get, agency_policy, agency_subtree_ids, officer_get
from app.assessments import rules
from app.assessments.models import AssessmentRating
from app.assessments.rules import SCORE_LABELS, RatingStatus, Remedy
from app.assessments.schemas import CorrectionIn, RatingIn
from app.assessments.selectors import admin_only, rating_get
from app.assessments.services.cases import evidence_corrected
from app.audit.services import audit_change
from app.lib.clock import today, utcnow
from app.lib.errors import Conflict, DomainError, FieldError, StaleForm
from app.lib.policy import Policy
from app.lib.security import Principal
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
    action = "rating_updated" if existing else "rating_created"
    await audit_change(db, principal, f"assessment.{action}", r, _rating_data(r))
    return r


async def rating_confirm(db: AsyncSession, *, principal: Principal, rating_id: int) -> AssessmentRating:
    """确认考核结果: the draft becomes the locked rating of the year."""
    admin_only(principal, "确认考核结果")
    r = await _rating_row(db, principal, rating_id)
    if r.status != RatingStatus.DRAFT.value:
        raise Conflict("只有草稿可以确认；已确认的考核结果如需修改请办理更正")
    _confirm(r, principal)
    await audit_change(db, principal, "assessment.rating_confirmed", r, _rating_data(r))
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
    await audit_change(
        db, principal, "assessment.ratings_confirmed", agency, {"year": year, "confirmed": count}
    )
    return count


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
    corrected = {**_rating_data(new), "corrects_id": old.id, "old_grade": old.grade, "reason": new.reason}
    await audit_change(db, principal, "assessment.rating_corrected", new, corrected)
    return new
