"""Request and response structs of the exam domain (JSON API and pages share them).

The candidate's structs (``PaperQuestion``, ``AttemptOut`` of an open attempt) carry no key, basis or
explanation: those exist only in ``ReviewItem``, which is sent after the attempt is closed and only
when the session's review policy allows.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from app.exams.rules import (
    ExamPart,
    MultipleScoring,
    PartsSource,
    QuestionCategory,
    QuestionType,
    ReviewPolicy,
)

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]

# ---------------------------------------------------------------- bank import


class Position(msgspec.Struct, kw_only=True):
    position: str
    message: str


class UnsupportedOut(msgspec.Struct, kw_only=True):
    position: str
    kind: str
    excerpt: str


class DraftOut(msgspec.Struct, kw_only=True):
    """A question imported as a draft (草稿): no paper draws it until its basis is filled in."""

    position: str
    line: int
    """The line (GIFT) or spreadsheet row (XLSX) where the question starts."""
    question_id: str
    title: str
    reason: str


class BankImportReport(msgspec.Struct, kw_only=True):
    """The outcome of importing one file: counts, and what was refused with where."""

    source: str
    bank: str | None
    imported: bool = False
    """Whether this file's questions were written (and committed with the upload)."""
    note: str = ""
    """Why a file without errors of its own was not imported, in Chinese."""
    loaded: int = 0
    """Questions seen for the first time."""
    unchanged: int = 0
    new_versions: int = 0
    """Questions whose content changed: a new version, papers already drawn keep the old one."""
    updated: int = 0
    """Same version, basis / explanation / difficulty / category corrected in place."""
    retired: int = 0
    """Questions no longer in the file: not drawn any more, kept for the papers that used them."""
    unsupported: list[UnsupportedOut] = msgspec.field(default_factory=list)
    errors: list[Position] = msgspec.field(default_factory=list)
    duplicates: list[Position] = msgspec.field(default_factory=list)
    """Questions repeating an earlier one of the same file exactly: imported once (not a rejection)."""
    skipped: list[UnsupportedOut] = msgspec.field(default_factory=list)
    """Unsupported questions left out at the uploader's request (``import_supported_only``): not a
    rejection, each with its line and why."""
    drafts: list[DraftOut] = msgspec.field(default_factory=list)
    """Questions stored as drafts (no basis), with their line, title and why."""

    @property
    def ok(self) -> bool:
        return not self.errors and not self.unsupported


class ImportSummary(msgspec.Struct, kw_only=True):
    ok: bool
    files: list[BankImportReport]


class BankOut(msgspec.Struct, kw_only=True):
    id: int
    code: str
    title: str
    part: ExamPart
    part_label: str
    field: str
    description: str
    source: str
    imported_at: dt.datetime
    current_questions: int
    versions: int
    by_category_type: dict[str, int]
    """"category/type" → current questions, e.g. "public_law/single": 120."""
    drafts: int = 0
    """Current questions that are drafts (草稿): listed, never drawn."""


class QuestionOut(msgspec.Struct, kw_only=True):
    """A bank's current question as reviewers see it (the key included: authority only)."""

    id: int
    qid: str
    title: str
    type: QuestionType
    category: QuestionCategory
    difficulty: int
    stem: str
    options: list[str]
    answer: list[int] | bool
    basis: str
    explanation: str
    is_draft: bool
    status_label: str
    """草稿 or 已发布."""


class QuestionPage(msgspec.Struct, kw_only=True):
    bank: BankOut
    total: int
    page: int
    per_page: int
    questions: list[QuestionOut]


class BasisIn(msgspec.Struct, kw_only=True):
    """The legal basis filled in on a draft question (the law and article the key rests on)."""

    basis: str


# ---------------------------------------------------------------- exams


class RuleIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    category: QuestionCategory
    type: QuestionType
    count: Annotated[int, msgspec.Meta(ge=1, le=200)]
    points: Annotated[float, msgspec.Meta(gt=0, le=100)]
    bank: Annotated[str, msgspec.Meta(max_length=64)] = ""


class PartIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    part: ExamPart
    duration_minutes: Annotated[int, msgspec.Meta(ge=1, le=600)]
    blueprint: list[RuleIn]
    title: Annotated[str, msgspec.Meta(max_length=100)] = ""


class ExamIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    title: Title
    parts: Annotated[list[PartIn], msgspec.Meta(min_length=1, max_length=2)] | None = None
    """The parts in order. Default: the authority's policy (exam_parts), parts and order as it says."""
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    pass_mark: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None
    """Default: the authority's policy (exam_pass_mark)."""
    retakes: Annotated[int, msgspec.Meta(ge=0, le=5)] | None = None
    """Default: the authority's policy (exam_retakes)."""
    multiple_scoring: MultipleScoring = MultipleScoring.ALL_OR_NOTHING


class RuleOut(msgspec.Struct, kw_only=True):
    category: QuestionCategory
    category_label: str
    type: QuestionType
    type_label: str
    count: int
    points: float
    bank: str


class PartOut(msgspec.Struct, kw_only=True):
    id: int
    position: int
    part: ExamPart
    part_label: str
    title: str
    duration_minutes: int
    question_count: int
    blueprint: list[RuleOut]


class SessionOut(msgspec.Struct, kw_only=True):
    id: int
    exam_id: int
    exam_title: str
    title: str
    opens_at: dt.datetime
    closes_at: dt.datetime
    review_policy: ReviewPolicy
    review_policy_label: str
    submit_on_leave: bool
    state: str
    """"upcoming" | "open" | "closed" (by the server's clock)."""
    state_label: str
    enrolled: int


class ExamOut(msgspec.Struct, kw_only=True):
    id: int
    agency_id: int
    agency_name: str
    title: str
    description: str
    pass_mark: int
    retakes: int
    multiple_scoring: MultipleScoring
    multiple_scoring_label: str
    created_by_name: str
    created_at: dt.datetime
    parts: list[PartOut]
    parts_source: PartsSource
    """"policy": the parts and their order are the authority's default; "exam": set for this exam."""
    parts_source_label: str
    sessions: list[SessionOut] = msgspec.field(default_factory=list)


class SessionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    title: Title
    opens_at: dt.datetime
    closes_at: dt.datetime
    review_policy: ReviewPolicy = ReviewPolicy.AFTER_CLOSE
    submit_on_leave: bool = False


class EnrolIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Officers by id or ID-card number, and/or every eligible officer of an agency's tree."""

    officer_ids: Annotated[list[int], msgspec.Meta(max_length=10000)] = msgspec.field(default_factory=list)
    id_numbers: Annotated[list[str], msgspec.Meta(max_length=10000)] = msgspec.field(default_factory=list)
    agency_id: int | None = None


class EnrolResult(msgspec.Struct, kw_only=True):
    added: int
    already: int
    skipped: int
    """Officers of an enrolled agency who may not hold a certificate (staff type) or are not in post."""
    errors: list[Position] = msgspec.field(default_factory=list)


# ---------------------------------------------------------------- the candidate


class PaperQuestion(msgspec.Struct, kw_only=True):
    position: int
    type: QuestionType
    type_label: str
    category_label: str
    points: float
    stem: str
    options: list[str]
    """In the order shown to this candidate (judge: 正确, 错误)."""


class AnswerOut(msgspec.Struct, kw_only=True):
    position: int
    choice: list[int]
    seq: int


class CategoryOut(msgspec.Struct, kw_only=True):
    category: QuestionCategory
    label: str
    earned: float
    possible: float
    correct: int
    questions: int


class QualificationOut(msgspec.Struct, kw_only=True):
    field: str
    passed_on: dt.date
    valid_until: dt.date


class ResultOut(msgspec.Struct, kw_only=True):
    score: float
    passed: bool
    pass_mark: int
    closed_at: dt.datetime
    closed_by: str
    closed_by_label: str
    categories: list[CategoryOut]
    qualification: QualificationOut | None = None


class ReviewItem(msgspec.Struct, kw_only=True):
    position: int
    correct: list[int]
    """Display indexes of the correct options."""
    chosen: list[int]
    earned: float
    basis: str
    explanation: str


class AttemptOut(msgspec.Struct, kw_only=True):
    id: int
    session_id: int
    session_title: str
    exam_title: str
    part: ExamPart
    part_label: str
    number: int
    status: str
    started_at: dt.datetime
    deadline_at: dt.datetime
    server_now: dt.datetime
    seconds_left: int
    submit_on_leave: bool
    question_count: int
    questions: list[PaperQuestion]
    answers: list[AnswerOut]
    max_seq: int
    result: ResultOut | None = None
    review: list[ReviewItem] | None = None
    review_note: str = ""


class AnswerIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    position: Annotated[int, msgspec.Meta(ge=0, le=999)]
    choice: Annotated[list[Annotated[int, msgspec.Meta(ge=0, le=5)]], msgspec.Meta(max_length=6)]
    seq: Annotated[int, msgspec.Meta(ge=1, le=2**62)]
    """The browser's counter, increasing with every change: the highest one counts."""


class SaveIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    answers: Annotated[list[AnswerIn], msgspec.Meta(min_length=1, max_length=200)]


class SaveOut(msgspec.Struct, kw_only=True):
    saved: list[int]
    """Positions whose save is now stored (including repeats of an earlier identical save)."""
    server_now: dt.datetime
    deadline_at: dt.datetime
    seconds_left: int


class PartStatus(msgspec.Struct, kw_only=True):
    part_id: int
    part: ExamPart
    part_label: str
    title: str
    duration_minutes: int
    question_count: int
    attempts: list[AttemptBrief]
    can_start: bool
    open_attempt_id: int | None
    refusal: str


class AttemptBrief(msgspec.Struct, kw_only=True):
    id: int
    number: int
    status: str
    score: float | None
    passed: bool | None


class MySession(msgspec.Struct, kw_only=True):
    session: SessionOut
    pass_mark: int
    retakes: int
    parts: list[PartStatus]


# ---------------------------------------------------------------- results and statistics


class AgencyResult(msgspec.Struct, kw_only=True):
    agency_id: int
    agency_name: str
    enrolled: int
    attempted: int
    passed_all: int
    pass_rate: float
    average_score: float | None


class OfficerResult(msgspec.Struct, kw_only=True):
    officer_id: int
    officer_name: str
    agency_id: int
    agency_name: str
    field: str
    parts: dict[str, float | None]
    """part → best score (None: not taken)."""
    passed_all: bool
    attempts: int


class ResultsOut(msgspec.Struct, kw_only=True):
    session: SessionOut
    agencies: list[AgencyResult]
    officers: list[OfficerResult]


class QuestionStat(msgspec.Struct, kw_only=True):
    question_id: int
    bank: str
    qid: str
    stem: str
    title: str
    """The question's name (GIFT ``::title::``), "" when it has none."""
    type_label: str
    category_label: str
    drawn: int
    share_correct: float
    discrimination: float | None
    flag: str
    """Why an administrator may want to retire it ("" when fine)."""


class PartStats(msgspec.Struct, kw_only=True):
    part: ExamPart
    part_label: str
    candidates: int
    questions: list[QuestionStat]


class StatsOut(msgspec.Struct, kw_only=True):
    session: SessionOut
    parts: list[PartStats]
