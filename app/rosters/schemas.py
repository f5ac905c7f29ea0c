"""Response structs of the read side (JSON API); the pages render the same values."""

from __future__ import annotations

import datetime as dt

import msgspec

from app.certificates.rules import CertificateKind, CertificateStatus
from app.lib.enums import EmploymentStatus, Post, StaffType


class RosterRow(msgspec.Struct, kw_only=True):
    officer_id: int
    name: str
    id_number: str
    """Full only to the officer's own agency; masked (3201**********123X) above it."""
    gender: str
    birth_date: dt.date
    agency_id: int
    agency_name: str
    staff_type: StaffType
    post: Post
    field: str
    area: str
    employment_status: EmploymentStatus
    exam_valid: bool
    exam_valid_until: dt.date | None
    training_year: int
    training_hours: float
    training_required: float
    training_met: bool
    cert_number: str | None
    """The officer's most recent card (of the filtered kind), whatever its status; null: none."""
    cert_kind: CertificateKind | None
    cert_status: CertificateStatus | None
    """Effective status: a valid or suspended card past its last day reads expired."""
    cert_valid_until: dt.date | None
    rating_year: int | None
    rating_grade: str | None
    """The latest confirmed yearly rating (优秀 / 合格 / 基本合格 / 不合格); null: never rated."""
    exit_open: bool
    """An exit case (two unqualified years running) not yet closed."""


class RosterPageOut(msgspec.Struct, kw_only=True):
    items: list[RosterRow]
    total: int | None
    """Officers the filter keeps, exact; null only with ``count=false`` when not counted yet."""
    next_cursor: str | None
    """Pass as ``after`` for the next page; null on the last page."""
    filter: dict[str, str]
    """The filter as query parameters: the shareable URL of this view."""


class RosterCountOut(msgspec.Struct, kw_only=True):
    total: int
    filter: dict[str, str]


class Indicator(msgspec.Struct, kw_only=True):
    key: str
    label: str
    numerator: int
    denominator: int
    percent: float | None
    target: float | None = None
    ok: bool | None = None
    href: str | None
    """The roster rows behind the figure (the exam pass rate: the exam results, for the authority;
    null for those who may not open them)."""
    note: str = ""


class AgencyIndicators(msgspec.Struct, kw_only=True):
    agency_id: int
    agency_name: str
    indicators: list[Indicator]


class Dashboard(msgspec.Struct, kw_only=True):
    year: int
    as_of: dt.date
    agency_id: int
    agency_name: str
    indicators: list[Indicator]
    children: list[AgencyIndicators]


class RegisterEntry(msgspec.Struct, kw_only=True):
    """One line of the public register: what the card shows, never an ID number."""

    name: str
    agency: str
    post: str
    number: str
    kind: str
    field: str
    area: str
    status: str
    status_code: str
    valid_until: dt.date


class RegisterPage(msgspec.Struct, kw_only=True):
    items: list[RegisterEntry]
    next_after: str | None
    """Pass as ``after`` for the next page; null on the last page."""
