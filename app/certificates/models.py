"""Certificate models: cards, applications, the status history, signing keys, bars and number counters.

A ``Certificate`` row is the card as printed: the holder's name, agency, field and area are copied
(snapshot) at issuance, so the public page shows what the card shows even after the officer moves.
Its ``token`` is ``signing.token_of(qr_text)``: the public page compares the scanned fragment with it
instead of verifying a signature per request.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.accounts.models import BigIntPK
from app.certificates.rules import CertificateAction, CertificateKind, CertificateStatus
from app.db import Base, TimestampMixin, partial_index
from app.lib.clock import utcnow
from app.lib.enums import check_in

APPLICATION_STATUSES = ("pending", "approved", "rejected")
APPLICATION_PURPOSES = ("new", "reissue")
EVENT_ACTIONS = ("issue", "reissue", *(a.value for a in CertificateAction))


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Certificate(TimestampMixin, Base):
    """行政执法证 / 行政执法监督证: one card, from issuance to its final status."""

    __tablename__ = "certificates"
    __audit_entity__ = "certificate"  # its events in the audit trail
    __table_args__ = (
        CheckConstraint(check_in("kind", CertificateKind), name="kind"),
        CheckConstraint(check_in("status", CertificateStatus), name="status"),
        CheckConstraint("valid_until >= valid_from", name="dates"),
        Index("ix_certificates_officer", "officer_id", "kind"),
        Index("ix_certificates_agency", "agency_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id", ondelete="RESTRICT"))
    authority_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="RESTRICT"), index=True)
    """The issuing authority (发证机关) whose policy and number template made the card."""
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="RESTRICT"))
    """The holder's agency at issuance: scopes who may see the card."""
    # What the card prints (snapshot at issuance and renewal).
    holder_name: Mapped[str] = mapped_column(String(50))
    agency_name: Mapped[str] = mapped_column(String(100))
    field: Mapped[str] = mapped_column(String(50))
    area: Mapped[str] = mapped_column(String(100), default="")
    authority_name: Mapped[str] = mapped_column(String(100))
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_until: Mapped[dt.date] = mapped_column(Date)
    issued_on: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default=CertificateStatus.VALID.value)
    status_changed_on: Mapped[dt.date] = mapped_column(Date)
    # The signed QR payload and what the public page compares a scanned fragment with.
    qr_text: Mapped[str] = mapped_column(Text)
    token: Mapped[str] = mapped_column(String(43))
    kid: Mapped[str] = mapped_column(String(8), index=True)
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id", ondelete="RESTRICT"))
    """The lost card this one replaces (补发, under a new number)."""
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class ApplicationBatch(Base):
    """One request of an agency administrator: one officer or many, accepted all or nothing."""

    __tablename__ = "certificate_application_batches"
    __audit_entity__ = "certificate_application_batch"  # its events in the audit trail

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="RESTRICT"), index=True)
    """The applicant's own agency (the account's)."""
    kind: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(BigInteger)
    created_by_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CertificateApplication(Base):
    """申领: one officer in a batch, pending until the issuing authority approves or rejects it."""

    __tablename__ = "certificate_applications"
    __audit_entity__ = "certificate_application"  # its events in the audit trail
    __table_args__ = (
        CheckConstraint(check_in("kind", CertificateKind), name="kind"),
        CheckConstraint(_in("status", APPLICATION_STATUSES), name="status"),
        CheckConstraint(_in("purpose", APPLICATION_PURPOSES), name="purpose"),
        CheckConstraint("status = 'pending' OR decided_at IS NOT NULL", name="decided"),
        CheckConstraint("status != 'rejected' OR length(reason) > 0", name="reject_reason"),
        # At most one open application per officer and kind.
        partial_index(
            "uq_certificate_applications_pending",
            "officer_id",
            "kind",
            where="status = 'pending'",
            unique=True,
        ),
        Index("ix_certificate_applications_status", "status", "authority_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    batch_id: Mapped[int] = mapped_column(
        ForeignKey("certificate_application_batches.id", ondelete="CASCADE"), index=True
    )
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id", ondelete="RESTRICT"))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="RESTRICT"), index=True)
    """The officer's agency when applying."""
    authority_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(8), default="new")
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(10), default="pending")
    reason: Mapped[str] = mapped_column(Text, default="")
    """Why it was rejected (required then), or the approver's note."""
    decided_by_id: Mapped[int | None] = mapped_column(BigInteger)
    decided_by_name: Mapped[str] = mapped_column(String(64), default="")
    decided_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    certificate_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id", ondelete="RESTRICT"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CertificateEvent(Base):
    """One change of a card: who, when, why (ground) and on what evidence. Append-only."""

    __tablename__ = "certificate_events"
    __table_args__ = (
        CheckConstraint(_in("action", EVENT_ACTIONS), name="action"),
        Index("ix_certificate_events_certificate", "certificate_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    certificate_id: Mapped[int] = mapped_column(ForeignKey("certificates.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str] = mapped_column(String(16), default="")
    to_status: Mapped[str] = mapped_column(String(16))
    ground: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[str] = mapped_column(Text, default="")
    cancel_reason: Mapped[str] = mapped_column(String(32), default="")
    effective_on: Mapped[dt.date] = mapped_column(Date)
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_name: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReapplicationBar(Base):
    """重新申领限制: recorded when a card is revoked; ``barred_until`` None means for ever."""

    __tablename__ = "certificate_reapplication_bars"
    __table_args__ = (Index("ix_certificate_reapplication_bars_officer", "officer_id", "barred_until"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id", ondelete="RESTRICT"))
    certificate_id: Mapped[int] = mapped_column(ForeignKey("certificates.id", ondelete="RESTRICT"))
    revoked_on: Mapped[dt.date] = mapped_column(Date)
    barred_until: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ExitBar(Base):
    """重新持证条件: what an exit decision (退出案件) requires before the officer holds a card again.

    Recorded whether or not the officer had a card; in force while not lifted (a review that
    overturns the decision lifts it) and ``barred_until`` (None: for ever) has not passed.
    ``case_id`` names the exit case (assessments) without a foreign key across the domains.
    """

    __tablename__ = "certificate_exit_bars"
    __table_args__ = (
        CheckConstraint("outcome IN ('remove_qualification', 'move_off_post')", name="outcome"),
        Index("ix_certificate_exit_bars_officer", "officer_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id", ondelete="RESTRICT"))
    case_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    outcome: Mapped[str] = mapped_column(String(24))
    barred_from: Mapped[dt.date] = mapped_column(Date)
    barred_until: Mapped[dt.date | None] = mapped_column(Date)
    conditions: Mapped[str] = mapped_column(Text)
    lifted_on: Mapped[dt.date | None] = mapped_column(Date)
    lifted_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SigningKey(Base):
    """An Ed25519 key of the QR signatures. One is current (signs new cards); retired keys stop verifying.

    The private key is stored encrypted (AES-GCM under a key derived from SECRET_KEY) and never
    appears in a repr, a log line or an API answer.
    """

    __tablename__ = "certificate_signing_keys"
    __table_args__ = (
        partial_index("uq_certificate_signing_keys_current", "is_current", where="is_current", unique=True),
        CheckConstraint("NOT (is_current AND retired_on IS NOT NULL)", name="current_not_retired"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kid: Mapped[str] = mapped_column(String(8), unique=True)
    public_x: Mapped[str] = mapped_column(String(64))
    private_key_enc: Mapped[str] = mapped_column(Text)
    is_current: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    retired_on: Mapped[dt.date | None] = mapped_column(Date, default=None)

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r}, current={self.is_current}, retired_on={self.retired_on})"


class NumberSequence(Base):
    """证号流水号: the last value used per template and scope (e.g. region + year). Only ever grows."""

    __tablename__ = "certificate_number_sequences"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_value: Mapped[int] = mapped_column(BigInteger, default=0)


__all__ = [
    "ApplicationBatch",
    "Certificate",
    "CertificateApplication",
    "CertificateEvent",
    "NumberSequence",
    "ReapplicationBar",
    "SigningKey",
]
