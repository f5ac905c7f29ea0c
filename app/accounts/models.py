"""Agencies (a tree), officers with their posting history, and login accounts."""

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
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, TimestampMixin
from app.lib.enums import AgencyKind, AgencyLevel, EmploymentStatus, Post, Role, StaffType, check_in

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class Agency(TimestampMixin, Base):
    """执法主体 / 政府 / 部门: one node of the province → city → county → department tree."""

    __tablename__ = "agencies"
    __audit_entity__ = "agency"  # its events in the audit trail
    __table_args__ = (
        CheckConstraint(check_in("level", AgencyLevel), name="level"),
        CheckConstraint(check_in("kind", AgencyKind), name="kind"),
        CheckConstraint("length(region_code) = 6", name="region_code_len"),
        Index("ix_agencies_path", "path", postgresql_ops={"path": "varchar_pattern_ops"}),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    short_name: Mapped[str] = mapped_column(String(50), default="")
    region_code: Mapped[str] = mapped_column(String(6))
    level: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(255), default="")
    depth: Mapped[int] = mapped_column(Integer, default=0)
    is_enforcement_subject: Mapped[bool] = mapped_column(Boolean, default=False)
    enforcement_basis: Mapped[str] = mapped_column(Text, default="")
    is_issuing_authority: Mapped[bool] = mapped_column(Boolean, default=False)
    authority_name: Mapped[str] = mapped_column(String(100), default="")
    policy_json: Mapped[str | None] = mapped_column(Text)
    is_legal_affairs_office: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    """法制机构 of its level (e.g. the government's 司法局): decides the exit cases of its tree, as an
    issuing authority does."""
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)

    parent: Mapped[Agency | None] = relationship(remote_side=[id], lazy="raise")

    @property
    def audit_agency_id(self) -> int:
        """An agency's own events are filed under itself."""
        return self.id


class Officer(TimestampMixin, Base):
    """行政执法人员: every person an agency records, whether or not they may hold a certificate."""

    __tablename__ = "officers"
    __audit_entity__ = "officer"  # its events in the audit trail
    __table_args__ = (
        CheckConstraint(check_in("staff_type", StaffType), name="staff_type"),
        CheckConstraint(check_in("post", Post), name="post"),
        CheckConstraint(check_in("employment_status", EmploymentStatus), name="employment_status"),
        CheckConstraint("length(id_number) = 18", name="id_number_len"),
        Index("ix_officers_agency_name", "agency_id", "name"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(50))
    id_number: Mapped[str] = mapped_column(String(18), unique=True)
    gender: Mapped[str] = mapped_column(String(2))
    birth_date: Mapped[dt.date] = mapped_column(Date)
    staff_type: Mapped[str] = mapped_column(String(16))
    post: Mapped[str] = mapped_column(String(16))
    field: Mapped[str] = mapped_column(String(50))
    area: Mapped[str] = mapped_column(String(100), default="")
    employment_status: Mapped[str] = mapped_column(String(16), default=EmploymentStatus.ACTIVE.value)
    phone: Mapped[str] = mapped_column(String(20), default="")
    photo_path: Mapped[str | None] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer, default=1)
    # What the whole-roster reads need of the other domains, one value per officer, kept by the
    # database's own triggers (migration 0012) on every change to the rows they summarise, whoever
    # writes them — never written by the application. Deferred: no ordinary officer load reads them.
    exam_valid_until: Mapped[dt.date | None] = mapped_column(Date, deferred=True)
    """The latest ``valid_until`` of the officer's exam qualifications in status ``valid``."""
    exam_passed_on: Mapped[dt.date | None] = mapped_column(Date, deferred=True)
    """The ``passed_on`` of that qualification (the earliest, of several ending the same day)."""
    latest_certificate_id: Mapped[int | None] = mapped_column(BigInteger, deferred=True)
    """The officer's newest certificate (highest id), of any kind and status."""
    latest_rating_year: Mapped[int | None] = mapped_column(Integer, deferred=True)
    """The year of the officer's latest confirmed annual rating."""

    agency: Mapped[Agency] = relationship(lazy="raise")

    __mapper_args__ = {"version_id_col": version}


class PostingHistory(Base):
    """任职经历: each period an officer held a post in an agency (seed 001 item 25: regular rotation)."""

    __tablename__ = "posting_history"
    __table_args__ = (
        CheckConstraint(check_in("post", Post), name="post"),
        CheckConstraint("ended_on IS NULL OR ended_on >= started_on", name="dates"),
        Index("ix_posting_history_officer", "officer_id", "started_on"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id", ondelete="CASCADE"))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="RESTRICT"), index=True)
    post: Mapped[str] = mapped_column(String(16))
    field: Mapped[str] = mapped_column(String(50))
    area: Mapped[str] = mapped_column(String(100), default="")
    started_on: Mapped[dt.date] = mapped_column(Date)
    ended_on: Mapped[dt.date | None] = mapped_column(Date)
    end_reason: Mapped[str] = mapped_column(String(200), default="")


class Account(TimestampMixin, Base):
    """A login. Its role and agency decide what it may see: its agency and the agencies below it."""

    __tablename__ = "accounts"
    __audit_entity__ = "account"  # its events in the audit trail
    __table_args__ = (CheckConstraint(check_in("role", Role), name="role"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(50))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="RESTRICT"), index=True)
    officer_id: Mapped[int | None] = mapped_column(
        ForeignKey("officers.id", ondelete="SET NULL"), unique=True
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column()
    last_login_at: Mapped[dt.datetime | None] = mapped_column()
    # Bumped on password change or deactivation: every session issued before is void.
    auth_epoch: Mapped[int] = mapped_column(Integer, default=1)

    agency: Mapped[Agency] = relationship(lazy="raise")
