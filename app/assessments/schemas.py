"""Request and response structs of the assessment domain (JSON API and forms share them)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from app.assessments.rules import CaseStatus, Decision, ExitOutcome, RatingStatus, Remedy, ReviewResult
from app.lib.imports import ImportRowError
from app.lib.paging import Page

Score = Annotated[int, msgspec.Meta(ge=0, le=100)]
Text = Annotated[str, msgspec.Meta(max_length=2000)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]

# ---------------------------------------------------------------- ratings


class RatingIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A rating as an agency enters it: the grade from its authority's list and the components."""

    officer_id: int
    year: Annotated[int, msgspec.Meta(ge=2000, le=2100)]
    grade: Annotated[str, msgspec.Meta(max_length=8)]
    daily_score: Score | None = None
    legal_test_score: Score | None = None
    standard_test_score: Score | None = None
    case_review_score: Score | None = None
    comment: Text = ""
    remedy: Remedy | None = None
    """For 不合格: 批评教育 (default) or 离岗培训."""
    confirm: bool = False
    """Confirm (and so lock) at once instead of keeping a draft."""


class CorrectionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    grade: Annotated[str, msgspec.Meta(max_length=8)]
    reason: Reason
    daily_score: Score | None = None
    legal_test_score: Score | None = None
    standard_test_score: Score | None = None
    case_review_score: Score | None = None
    comment: Text = ""
    remedy: Remedy | None = None


class RatingOut(msgspec.Struct, kw_only=True):
    id: int
    officer_id: int
    officer_name: str
    agency_id: int
    agency_name: str
    year: int
    grade: str
    daily_score: int | None
    legal_test_score: int | None
    standard_test_score: int | None
    case_review_score: int | None
    comment: str
    excellent_barred: bool
    """Consequence of 不合格: not eligible for 优秀 in that year's civil-servant review."""
    remedy: Remedy | None
    remedy_label: str
    status: RatingStatus
    status_label: str
    corrects_id: int | None
    reason: str
    entered_by_name: str
    entered_at: dt.datetime
    confirmed_by_name: str
    confirmed_at: dt.datetime | None


class RatingPage(Page, kw_only=True):
    items: list[RatingOut]


class ConfirmAllIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    year: Annotated[int, msgspec.Meta(ge=2000, le=2100)]
    agency_id: int | None = None


class ConfirmAllOut(msgspec.Struct, kw_only=True):
    confirmed: int


class ImportReport(msgspec.Struct, kw_only=True):
    ok: bool
    rows: int
    imported: int
    errors: list[ImportRowError]
    dry_run: bool


# ---------------------------------------------------------------- exit cases


class CaseEventOut(msgspec.Struct, kw_only=True):
    kind: str
    label: str
    actor_name: str
    note: str
    occurred_at: dt.datetime


class CaseOut(msgspec.Struct, kw_only=True):
    id: int
    officer_id: int
    officer_name: str
    agency_id: int
    agency_name: str
    authority_name: str
    year: int
    first_rating: RatingOut
    second_rating: RatingOut
    proposed_outcome: ExitOutcome
    proposed_outcome_label: str
    status: CaseStatus
    status_label: str
    notified_on: dt.date
    statement_deadline: dt.date
    statement: str
    statement_at: dt.datetime | None
    decision: Decision | None
    decision_label: str
    decided_outcome: ExitOutcome | None
    decided_outcome_label: str
    decision_reason: str
    decided_by_name: str
    decided_on: dt.date | None
    review_deadline: dt.date | None
    review_request: str
    review_requested_at: dt.datetime | None
    review_result: ReviewResult | None
    review_result_label: str
    review_reason: str
    returned: bool
    """Opened on two years the officer carried back to an enforcement post."""
    decider_refusal: str
    """Why the viewer may not decide or review this case ('' when they may)."""
    timeline: list[CaseEventOut]


class CaseSummary(msgspec.Struct, kw_only=True):
    id: int
    officer_id: int
    officer_name: str
    agency_name: str
    year: int
    proposed_outcome_label: str
    status: CaseStatus
    status_label: str
    statement_deadline: dt.date
    has_statement: bool
    decision_label: str
    returned: bool


class CasePage(Page, kw_only=True):
    items: list[CaseSummary]


class StatementIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """陈述申辩, entered by the officer."""

    statement: Annotated[str, msgspec.Meta(min_length=1, max_length=10000)]


class DecisionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    decision: Decision
    reason: Reason
    outcome: ExitOutcome | None = None
    """For ``change``: the outcome that replaces the proposed one."""


class ReviewRequestIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """复核申请, by the officer."""

    request: Annotated[str, msgspec.Meta(min_length=1, max_length=10000)]


class ReviewDecisionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    result: ReviewResult
    reason: Reason


# ---------------------------------------------------------------- year-end close


class CloseYearIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    year: Annotated[int, msgspec.Meta(ge=2000, le=2100)]


class AgencyClose(msgspec.Struct, kw_only=True):
    agency_id: int
    agency_name: str
    cases_opened: int
    shortfall_flags: int


class CloseYearOut(msgspec.Struct, kw_only=True):
    closing_id: int
    year: int
    scope: str
    officers_checked: int
    cases_opened: int
    cases_existing: int
    flags_added: int
    case_ids: list[int]
    agencies: list[AgencyClose]
    seconds: float


class FlagOut(msgspec.Struct, kw_only=True):
    year: int
    consequence: str
    consequence_label: str
    needed_hours: float


class OfficerAssessment(msgspec.Struct, kw_only=True):
    """An officer's record: every rating with its consequences, their exit cases and flags."""

    officer_id: int
    officer_name: str
    agency_name: str
    ratings: list[RatingOut]
    cases: list[CaseSummary]
    flags: list[FlagOut]
    grades: list[str]
