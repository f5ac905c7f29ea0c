"""Request and response structs of the training domain (JSON API and forms share them).

Hours travel as numbers with at most one decimal (``2.5``); forms send them as text. Internally
they are tenths of an hour (see ``rules``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from app.lib.imports import ImportCounts, ImportRowError
from app.lib.paging import Page
from app.training.rules import ComplianceStatus, RecordKind, TrainingCategory, Verification

Hours = float | str
"""学时: a number with at most one decimal (forms send text); checked by ``rules.parse_hours``."""
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


# ---------------------------------------------------------------- courses


class CourseDetails(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A course's own details: what is entered with a new course and what an edit sends again."""

    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    category: TrainingCategory
    hours: Hours
    starts_on: dt.date
    verification: Verification
    ends_on: dt.date | None = None
    provider: Annotated[str, msgspec.Meta(max_length=100)] = ""
    note: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class CourseIn(CourseDetails, kw_only=True, forbid_unknown_fields=True):
    agency_id: int | None = None
    """The organising agency (default: the account's own)."""


class CourseUpdate(CourseDetails, kw_only=True, forbid_unknown_fields=True):
    """Edit a course's details. ``version`` is the one the form was loaded with (``CourseOut.version``).

    Hours and category can change only while the course has no attendance: the ledger lines already
    entered carry the hours and category they were recorded with, and are never rewritten.
    """

    version: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class CourseOut(msgspec.Struct, kw_only=True):
    id: int
    agency_id: int
    agency_name: str
    year: int
    title: str
    category: TrainingCategory
    category_label: str
    hours: float
    starts_on: dt.date
    ends_on: dt.date
    provider: str
    verification: Verification
    verification_label: str
    note: str
    created_by_name: str
    created_at: dt.datetime
    editable: bool
    """Whether the caller's agency may record attendance for its officers (always, when visible)."""
    can_edit: bool = False
    """Whether the caller may edit the course's details (a course of their own agency tree)."""
    version: str = ""
    """A fingerprint of the details as read: send it back with an edit (a stale form is refused)."""
    attendance_lines: int = 0
    """Ledger lines of the course, all agencies (its hours and category are fixed once there are any)."""


class CoursePage(Page, kw_only=True):
    items: list[CourseOut]


# ---------------------------------------------------------------- ledger


class RecordOut(msgspec.Struct, kw_only=True):
    id: int
    officer_id: int
    officer_name: str
    agency_name: str
    course_id: int
    course_title: str
    category: TrainingCategory
    category_label: str
    year: int
    attended_on: dt.date
    hours: float
    """Signed: a reversal is negative."""
    kind: RecordKind
    kind_label: str
    corrects_id: int | None
    reason: str
    batch_id: int | None
    entered_by_name: str
    entered_at: dt.datetime
    reversed_by_id: int | None = None
    """The reversal that cancelled this record, if any."""
    amended_by_id: int | None = None
    """The amendment that replaced this record, if any."""
    counts: bool = True
    """False for a record or amendment that a reversal has cancelled."""


class CourseDetail(CourseOut, kw_only=True):
    records: list[RecordOut]
    """Ledger lines of this course for the caller's officers (newest first, paginated)."""
    records_total: int
    attendees: int
    """Officers of the caller's agency tree with a record that counts."""
    page: int
    per_page: int


class AttendanceIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Record attendance at a course: one officer per ID number; date and hours default to the course's."""

    id_numbers: Annotated[list[str], msgspec.Meta(min_length=1, max_length=5000)]
    attended_on: dt.date | None = None
    hours: Hours | None = None


class AttendanceResult(msgspec.Struct, kw_only=True):
    created: list[RecordOut]


class ReversalIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Reason


class AmendmentIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Reverse a record and enter the corrected one; what is not given is kept from the original."""

    reason: Reason
    attended_on: dt.date | None = None
    hours: Hours | None = None


class CorrectionOut(msgspec.Struct, kw_only=True):
    reversal: RecordOut
    amendment: RecordOut | None


# ---------------------------------------------------------------- an officer's year


class CategoryFigure(msgspec.Struct, kw_only=True):
    category: TrainingCategory
    label: str
    hours: float
    minimum: float
    short: float


class OfficerYear(msgspec.Struct, kw_only=True):
    officer_id: int
    officer_name: str
    agency_name: str
    year: int
    as_of: dt.date
    required: float
    prorated: bool
    start_month: int
    total: float
    percent: int
    needed: float
    expected: float
    behind_pace: bool
    status: ComplianceStatus
    status_label: str
    categories: list[CategoryFigure]
    records: list[RecordOut]


# ---------------------------------------------------------------- compliance


class ComplianceRow(msgspec.Struct, kw_only=True):
    officer_id: int
    name: str
    agency_id: int
    agency_name: str
    required: float
    total: float
    general_law: float
    special_law: float
    new_law: float
    needed: float
    """Hours still missing against the total and the category minimums."""
    short_categories: dict[str, float]
    """Category value → hours missing against its minimum (only categories that are short)."""
    expected: float
    behind_pace: bool
    status: ComplianceStatus
    status_label: str


class ComplianceSummary(msgspec.Struct, kw_only=True):
    year: int
    as_of: dt.date
    agency_id: int
    agency_name: str
    officers: int
    met: int
    short: int
    """Officers with hours still missing (for a year in progress: not yet done)."""
    behind: int
    """Officers below the hours expected by ``as_of`` (during the year)."""
    met_percent: float
    required: float
    """The requirement of the agency's own policy (officers under another authority may differ)."""


class CompliancePage(Page, kw_only=True):
    summary: ComplianceSummary
    items: list[ComplianceRow]


# ---------------------------------------------------------------- import


class ImportSampleRow(msgspec.Struct, kw_only=True):
    row: int
    officer_name: str
    id_number: str
    course_id: int
    course_title: str
    attended_on: dt.date
    hours: float


class ImportPreview(ImportCounts, kw_only=True):
    year: int
    hours_total: float
    sample: list[ImportSampleRow]


class ImportReport(ImportPreview, kw_only=True):
    """The JSON answer: the preview, and what was written (nothing for a dry run or a bad file)."""

    dry_run: bool
    imported: int
    batch_id: int | None


class BatchOut(msgspec.Struct, kw_only=True):
    id: int
    filename: str
    sha256: str
    file_type: str
    source: str
    year: int
    outcome: str
    outcome_label: str
    rows_total: int
    rows_imported: int
    rows_rejected: int
    hours: float
    created_by_name: str
    created_at: dt.datetime
    errors: list[ImportRowError]
