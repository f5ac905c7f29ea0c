"""Request and response structs of the certificates API (msgspec)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from app.certificates.rules import CancelReason, CertificateAction, CertificateKind, CertificateStatus

Text = Annotated[str, msgspec.Meta(max_length=2000)]


class ApplyIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    officer_ids: Annotated[list[int], msgspec.Meta(min_length=1, max_length=5000)]
    kind: CertificateKind = CertificateKind.ENFORCEMENT
    note: Text = ""


class DecideIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    application_ids: Annotated[list[int], msgspec.Meta(min_length=1, max_length=5000)]
    approve: bool
    reason: Text = ""


class ActionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    action: CertificateAction
    ground: Text
    evidence: Text = ""
    cancel_reason: CancelReason | None = None
    version: int | None = None
    """The version the form was made from; a concurrent change answers 409."""


class ReissueIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    ground: Text
    evidence: Text = ""


class MissingOut(msgspec.Struct):
    code: str
    message: str


class EligibilityOut(msgspec.Struct):
    officer_id: int
    name: str
    agency_name: str
    eligible: bool
    missing: list[MissingOut]


class ApplicationOut(msgspec.Struct):
    id: int
    batch_id: int
    officer_id: int
    officer_name: str
    agency_name: str
    kind: CertificateKind
    kind_label: str
    purpose: str
    status: str
    status_label: str
    reason: str
    created_at: dt.datetime
    decided_by: str
    decided_at: dt.datetime | None
    certificate_id: int | None
    certificate_number: str | None


class BatchOut(msgspec.Struct):
    batch_id: int
    applications: list[ApplicationOut]


class ApplicationPage(msgspec.Struct):
    items: list[ApplicationOut]
    total: int
    page: int
    per_page: int


class EventOut(msgspec.Struct):
    action: str
    action_label: str
    from_status: str
    to_status: str
    ground: str
    evidence: str
    cancel_reason: str
    effective_on: dt.date
    actor: str
    at: dt.datetime


class CertificateOut(msgspec.Struct):
    id: int
    number: str
    kind: CertificateKind
    kind_label: str
    officer_id: int
    holder_name: str
    agency_name: str
    field: str
    area: str
    authority_name: str
    valid_from: dt.date
    valid_until: dt.date
    issued_on: dt.date
    status: CertificateStatus
    """Effective status today (a card past its last day reads expired)."""
    status_label: str
    stored_status: CertificateStatus
    kid: str
    qr_text: str
    version: int
    replaces_id: int | None
    allowed_actions: list[CertificateAction]
    renewal_opens_on: dt.date


class CertificateDetail(msgspec.Struct):
    certificate: CertificateOut
    events: list[EventOut]


class CertificatePage(msgspec.Struct):
    items: list[CertificateOut]
    total: int
    page: int
    per_page: int


class PublicCertificate(msgspec.Struct):
    """What anyone may see: exactly what the card shows, never an ID number or internal id."""

    number: str
    kind: CertificateKind
    kind_label: str
    name: str
    agency: str
    field: str
    area: str
    issuing_authority: str
    valid_from: dt.date
    valid_until: dt.date
    status: CertificateStatus
    status_label: str
    has_photo: bool
    photo_url: str | None


class CheckIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    number: Annotated[str, msgspec.Meta(max_length=40)]
    fragment: Annotated[str, msgspec.Meta(max_length=2000)]


class CheckOut(msgspec.Struct):
    """``match``: the scanned code is the one currently issued under this number."""

    number: str
    match: bool
    status: str
    status_label: str
    message: str
