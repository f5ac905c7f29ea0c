"""Yearly ratings, exit cases with their timeline, training-shortfall flags and year-end closings."""

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
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.accounts.models import BigIntPK
from app.assessments.rules import (
    SCORE_LABELS,
    UNDECIDED_STATUSES,
    CaseStatus,
    Decision,
    ExitOutcome,
    RatingStatus,
    Remedy,
    ReviewResult,
    ShortfallConsequence,
)
from app.db import Base, partial_index
from app.lib.clock import utcnow
from app.lib.enums import check_in

_UNDECIDED = "status IN (" + ", ".join(f"'{s.value}'" for s in UNDECIDED_STATUSES) + ")"


class AssessmentRating(Base):
    """年度考核结果: one officer's grade for one year, with its components.

    A draft (草稿) may be edited; confirming it locks it. A locked rating is changed only by a
    correction: a new confirmed row that names it (``corrects_id``) with a reason, while the old
    row becomes 'superseded'. The database keeps at most one live (draft or confirmed) rating per
    officer and year; the partial index over confirmed rows is what the year-end close reads.
    """

    __tablename__ = "assessment_ratings"
    __audit_entity__ = "assessment_rating"  # its events in the audit trail
    __table_args__ = (
        CheckConstraint(check_in("status", RatingStatus), name="status"),
        CheckConstraint(f"remedy IS NULL OR {check_in('remedy', Remedy)}", name="remedy"),
        *(CheckConstraint(f"{c} IS NULL OR ({c} >= 0 AND {c} <= 100)", name=c) for c in SCORE_LABELS),
        CheckConstraint("corrects_id IS NULL OR length(reason) > 0", name="correction_reason"),
        CheckConstraint("(status = 'draft') = (confirmed_at IS NULL)", name="confirmed_iff_not_draft"),
        partial_index(
            "uq_assessment_ratings_live", "officer_id", "year", where="status <> 'superseded'", unique=True
        ),
        # The close-year query: confirmed 不合格 ratings of a year, officer ids straight from the index.
        partial_index(
            "ix_assessment_ratings_close", "year", "grade", "officer_id", where="status = 'confirmed'"
        ),
        Index("ix_assessment_ratings_agency_year", "agency_id", "year"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id", ondelete="RESTRICT"))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="RESTRICT"))
    """The rating agency: the officer's agency when the rating was entered (it stays if they move)."""
    year: Mapped[int] = mapped_column(Integer)
    grade: Mapped[str] = mapped_column(String(8))
    daily_score: Mapped[int | None] = mapped_column(Integer)
    """平时考核."""
    legal_test_score: Mapped[int | None] = mapped_column(Integer)
    """专门考核: 法律知识测试."""
    standard_test_score: Mapped[int | None] = mapped_column(Integer)
    """专门考核: 执法规范测试."""
    case_review_score: Mapped[int | None] = mapped_column(Integer)
    """专门考核: 案卷评查."""
    comment: Mapped[str] = mapped_column(Text, default="")
    excellent_barred: Mapped[bool] = mapped_column(Boolean, default=False)
    """Not eligible for 优秀 in that year's civil-servant review (any 不合格)."""
    remedy: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12), default=RatingStatus.DRAFT.value)
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("assessment_ratings.id", ondelete="RESTRICT"))
    reason: Mapped[str] = mapped_column(Text, default="")
    entered_by_id: Mapped[int | None] = mapped_column(BigInteger)
    entered_by_name: Mapped[str] = mapped_column(String(64))
    entered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    confirmed_by_name: Mapped[str] = mapped_column(String(64), default="")
    confirmed_at: Mapped[dt.datetime | None] = mapped_column()


class ExitCase(Base):
    """退出案件: two consecutive unqualified years of one officer, and what became of it.

    One case per officer and closed year (unique): closing a year again opens nothing new.
    """

    __tablename__ = "exit_cases"
    __audit_entity__ = "exit_case"  # its events in the audit trail
    __table_args__ = (
        UniqueConstraint("officer_id", "year"),
        CheckConstraint(check_in("status", CaseStatus), name="status"),
        CheckConstraint(check_in("proposed_outcome", ExitOutcome), name="proposed_outcome"),
        CheckConstraint(f"decision IS NULL OR {check_in('decision', Decision)}", name="decision"),
        CheckConstraint(
            f"decided_outcome IS NULL OR {check_in('decided_outcome', ExitOutcome)}", name="decided_outcome"
        ),
        CheckConstraint(
            f"review_result IS NULL OR {check_in('review_result', ReviewResult)}", name="review_result"
        ),
        CheckConstraint(f"({_UNDECIDED}) = (decision IS NULL)", name="decided_iff_not_open"),
        CheckConstraint("statement_deadline >= notified_on", name="deadline"),
        Index("ix_exit_cases_agency_status", "agency_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id", ondelete="RESTRICT"))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="RESTRICT"))
    """The officer's agency when the case was opened."""
    authority_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id", ondelete="RESTRICT"))
    """The issuing authority whose legal-affairs office decides (None: no authority above)."""
    year: Mapped[int] = mapped_column(Integer)
    first_rating_id: Mapped[int] = mapped_column(ForeignKey("assessment_ratings.id", ondelete="RESTRICT"))
    second_rating_id: Mapped[int] = mapped_column(ForeignKey("assessment_ratings.id", ondelete="RESTRICT"))
    proposed_outcome: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(20), default=CaseStatus.OPEN.value)
    notified_on: Mapped[dt.date] = mapped_column(Date)
    statement_deadline: Mapped[dt.date] = mapped_column(Date)
    statement: Mapped[str] = mapped_column(Text, default="")
    statement_at: Mapped[dt.datetime | None] = mapped_column()
    decision: Mapped[str | None] = mapped_column(String(12))
    decided_outcome: Mapped[str | None] = mapped_column(String(24))
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    decided_by_name: Mapped[str] = mapped_column(String(64), default="")
    decided_on: Mapped[dt.date | None] = mapped_column(Date)
    review_deadline: Mapped[dt.date | None] = mapped_column(Date)
    review_request: Mapped[str] = mapped_column(Text, default="")
    review_requested_at: Mapped[dt.datetime | None] = mapped_column()
    review_result: Mapped[str | None] = mapped_column(String(12))
    review_reason: Mapped[str] = mapped_column(Text, default="")
    opened_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    returned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    """Opened on two years the officer carried back to an enforcement post (out of post at that close)."""
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class ExitCaseEvent(Base):
    """One step of a case's timeline (opened, notified, statement, decision, effect, review)."""

    __tablename__ = "exit_case_events"
    __table_args__ = (Index("ix_exit_case_events_case", "case_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("exit_cases.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(32))
    actor_name: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AssessmentFlag(Base):
    """培训学时不足: a closed year's training shortfall, with the policy's consequence."""

    __tablename__ = "assessment_flags"
    __table_args__ = (
        CheckConstraint("kind IN ('training_shortfall')", name="kind"),
        CheckConstraint(check_in("consequence", ShortfallConsequence), name="consequence"),
    )

    # Keyed by what it is, officer first: the only index. It serves the officer's page and the
    # close's anti-join, and the close appends its flags in officer order. Each index cost the first
    # close of a province 0.1-0.3 s per 100k flags on PostgreSQL (measured), a surrogate id's too.
    # No foreign key: written for tens of thousands of officers at once by the year-end close.
    officer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    agency_id: Mapped[int] = mapped_column(BigInteger)
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(24), primary_key=True, default="training_shortfall")
    consequence: Mapped[str] = mapped_column(String(12))
    needed_tenths: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class YearClosing(Base):
    """One run of the year-end close: who, when, over which tree, and its summary per agency."""

    __tablename__ = "assessment_year_closings"
    __audit_entity__ = "assessment_year_closing"  # its events in the audit trail
    __table_args__ = (Index("ix_assessment_year_closings_year", "year", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    year: Mapped[int] = mapped_column(Integer)
    scope_agency_id: Mapped[int | None] = mapped_column(BigInteger)
    scope_path: Mapped[str] = mapped_column(String(255))
    run_by_name: Mapped[str] = mapped_column(String(64))
    run_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    cases_opened: Mapped[int] = mapped_column(Integer)
    flags_added: Mapped[int] = mapped_column(Integer)
    summary_json: Mapped[str] = mapped_column(Text, default="[]")

    @property
    def audit_agency_id(self) -> int | None:
        """A year-end close is filed under the scope it closed (None: the whole province)."""
        return self.scope_agency_id


__all__ = ["AssessmentFlag", "AssessmentRating", "ExitCase", "ExitCaseEvent", "YearClosing"]
