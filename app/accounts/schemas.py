"""Request and response structs of the accounts domain (JSON API and forms share them)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from app.lib.enums import AgencyKind, AgencyLevel, EmploymentStatus, Post, Role, StaffType
from app.lib.imports import ImportCounts
from app.lib.paging import Page
from app.lib.policy import GradeScheme, Policy

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=50)]


class AgencyIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=2, max_length=100)]
    region_code: Annotated[str, msgspec.Meta(pattern=r"^[1-9]\d{5}$")]
    level: AgencyLevel
    kind: AgencyKind
    parent_id: int | None = None
    short_name: Annotated[str, msgspec.Meta(max_length=50)] = ""
    is_enforcement_subject: bool = False
    enforcement_basis: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    is_issuing_authority: bool = False
    authority_name: Annotated[str, msgspec.Meta(max_length=100)] = ""
    is_legal_affairs_office: bool = False
    """法制机构 of its level: decides the exit cases of its tree (as an issuing authority does)."""


class AgencyOut(msgspec.Struct, kw_only=True):
    id: int
    parent_id: int | None
    name: str
    short_name: str
    region_code: str
    level: AgencyLevel
    kind: AgencyKind
    depth: int
    is_enforcement_subject: bool
    enforcement_basis: str
    is_issuing_authority: bool
    authority_name: str
    is_legal_affairs_office: bool
    is_active: bool


class OfficerIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name
    id_number: Annotated[str, msgspec.Meta(min_length=1, max_length=20)]
    agency_id: int
    staff_type: StaffType
    post: Post
    field: Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
    area: Annotated[str, msgspec.Meta(max_length=100)] = ""
    phone: Annotated[str, msgspec.Meta(max_length=20)] = ""
    started_on: dt.date | None = None


class OfficerUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Edits of the record itself. ``version`` is the one the form was loaded with (stale forms refused)."""

    version: int
    name: Name
    staff_type: StaffType
    post: Post
    field: Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
    area: Annotated[str, msgspec.Meta(max_length=100)] = ""
    phone: Annotated[str, msgspec.Meta(max_length=20)] = ""


class OfficerMove(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A posting change (调动) or an end of employment (调离 / 退休 / 离职)."""

    version: int
    effective_on: dt.date
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    to_agency_id: int | None = None
    post: Post | None = None
    field: str | None = None
    area: str | None = None
    employment_status: EmploymentStatus | None = None


class PostingOut(msgspec.Struct, kw_only=True):
    agency_id: int
    agency_name: str
    post: Post
    field: str
    area: str
    started_on: dt.date
    ended_on: dt.date | None
    end_reason: str


class OfficerOut(msgspec.Struct, kw_only=True):
    id: int
    name: str
    id_number: str
    gender: str
    birth_date: dt.date | None
    agency_id: int
    agency_name: str
    staff_type: StaffType
    post: Post
    field: str
    area: str
    employment_status: EmploymentStatus
    phone: str
    version: int
    has_photo: bool
    may_hold_certificate: bool


class OfficerDetail(OfficerOut, kw_only=True):
    postings: list[PostingOut]


class OfficerPage(Page, kw_only=True):
    items: list[OfficerOut]


class AccountIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{3,64}$")]
    display_name: Name
    role: Role
    agency_id: int
    officer_id: int | None = None


class AccountOut(msgspec.Struct, kw_only=True):
    id: int
    username: str
    display_name: str
    role: Role
    agency_id: int
    agency_name: str
    officer_id: int | None
    is_active: bool
    must_change_password: bool
    locked: bool
    last_login_at: dt.datetime | None


class AccountCreated(msgspec.Struct, kw_only=True):
    account: AccountOut
    initial_password: str


class LoginIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class PasswordChangeIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    current_password: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    new_password: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class Me(msgspec.Struct, kw_only=True):
    account_id: int
    username: str
    display_name: str
    role: Role
    agency_id: int
    agency_name: str
    officer_id: int | None
    must_change_password: bool


# ---------------------------------------------------------------- the officer import


class ImportSampleRow(msgspec.Struct, kw_only=True):
    row: int
    name: str
    id_number: str
    gender: str
    birth_date: dt.date
    agency_name: str
    staff_type: StaffType
    staff_type_label: str
    post: Post
    post_label: str
    field: str
    area: str
    phone: str
    started_on: dt.date


class ImportPreview(ImportCounts, kw_only=True):
    sample: list[ImportSampleRow]


class ImportReport(ImportPreview, kw_only=True):
    """The JSON answer: the preview, and how many officers were written (0 for a dry run)."""

    dry_run: bool
    imported: int


class ImportResult(msgspec.Struct, kw_only=True):
    filename: str
    sha256: str
    imported: int
    agencies: int
    audit_event_id: int
    preview: ImportPreview


class PolicyOut(msgspec.Struct, kw_only=True):
    """An agency's effective policy (its nearest issuing authority's) and the grade scales offered."""

    policy: Policy
    grade_presets: dict[str, GradeScheme]
