"""Training courses, the append-only hours ledger, and attendance import batches."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ColumnElement,
    Date,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.accounts.models import BigIntPK
from app.db import Base, partial_index
from app.lib.clock import utcnow
from app.lib.enums import check_in
from app.training.rules import RecordKind, TrainingCategory, Verification


class TrainingCourse(Base):
    """培训课程: one course or class that officers attend; its hours are the default per attendee."""

    __tablename__ = "training_courses"
    __audit_entity__ = "training_course"  # its events in the audit trail
    __table_args__ = (
        CheckConstraint(check_in("category", TrainingCategory), name="category"),
        CheckConstraint(check_in("verification", Verification), name="verification"),
        CheckConstraint("hours_tenths > 0", name="hours_positive"),
        CheckConstraint("ends_on >= starts_on", name="dates"),
        Index("ix_training_courses_agency_year", "agency_id", "year"),
        Index("ix_training_courses_year_title", "year", "title"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="RESTRICT"))
    """The organising agency: its subtree records attendance; its ancestors see it too."""
    year: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(16))
    hours_tenths: Mapped[int] = mapped_column(Integer)
    starts_on: Mapped[dt.date] = mapped_column(Date)
    ends_on: Mapped[dt.date] = mapped_column(Date)
    provider: Mapped[str] = mapped_column(String(100), default="")
    verification: Mapped[str] = mapped_column(String(24))
    note: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="RESTRICT"))
    created_by_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TrainingImportBatch(Base):
    """One attempt to commit an attendance sheet: the file's hash, who, when and the outcome.

    ``committed_sha256`` is set only when the batch was committed, and is unique: the same file
    cannot be counted twice, while rejected attempts of it stay on record.
    """

    __tablename__ = "training_import_batches"
    __audit_entity__ = "training_import_batch"  # its events in the audit trail
    __table_args__ = (
        CheckConstraint("outcome IN ('committed', 'rejected')", name="outcome"),
        CheckConstraint(
            "(outcome = 'committed' AND committed_sha256 IS NOT NULL AND committed_sha256 = sha256) "
            "OR (outcome = 'rejected' AND committed_sha256 IS NULL)",
            name="committed_hash",
        ),
        Index("ix_training_import_batches_agency", "agency_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id", ondelete="RESTRICT"))
    """The importing account's agency (None for an operator's command run as the system)."""
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    committed_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    filename: Mapped[str] = mapped_column(String(200))
    file_type: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(8))
    year: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    rows_total: Mapped[int] = mapped_column(Integer)
    rows_imported: Mapped[int] = mapped_column(Integer)
    rows_rejected: Mapped[int] = mapped_column(Integer)
    hours_tenths: Mapped[int] = mapped_column(BigInteger)
    errors_json: Mapped[str] = mapped_column(Text, default="[]")
    """The first rejected rows (row, column, message), for the batch's page."""
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="RESTRICT"))
    created_by_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


_SHAPE = (
    "(kind = 'record' AND corrects_id IS NULL AND hours_tenths > 0 AND generation >= 0) "
    "OR (kind = 'amendment' AND corrects_id IS NOT NULL AND hours_tenths > 0 AND generation >= 0) "
    "OR (kind = 'reversal' AND corrects_id IS NOT NULL AND hours_tenths < 0 AND generation < 0)"
)


class TrainingRecord(Base):
    """学时记录: one line of the append-only ledger; corrections are new lines, never edits.

    ``hours_tenths`` is signed (a reversal is negative), so a year's total is a plain SUM.
    ``year`` and ``category`` are copied from the date and the course; every line's hours are also
    added to ``training_year_totals`` in the same transaction, which the compliance query reads.

    Invariants held by the database:
    - a record has no ``corrects_id``; a reversal or amendment has one and a reason;
    - each record is reversed at most once and amended at most once (unique corrects_id, kind,
      a partial index over the corrections only);
    - (course, officer, date) has at most one live record: a new record for the same key takes the
      next ``generation`` (see ``rules.next_generation``), and two concurrent twins collide.
    """

    __tablename__ = "training_records"
    __audit_entity__ = "training_record"  # its events in the audit trail
    __table_args__ = (
        CheckConstraint(check_in("kind", RecordKind), name="kind"),
        CheckConstraint(check_in("category", TrainingCategory), name="category"),
        CheckConstraint(_SHAPE, name="shape"),
        CheckConstraint("kind = 'record' OR length(reason) > 0", name="reason"),
        # Only corrections carry corrects_id: a partial index keeps plain records out of it.
        partial_index(
            "uq_training_records_correction",
            "corrects_id",
            "kind",
            where="corrects_id IS NOT NULL",
            unique=True,
        ),
        UniqueConstraint("course_id", "officer_id", "attended_on", "generation"),
        # An officer's lines (a few dozen a year): the officer alone, so that PostgreSQL keeps each
        # officer's 20+ entries as one deduplicated posting list — a third of the pages of an
        # (officer, date) index, which every import updates at random places (after a checkpoint
        # each page touched is written whole to the WAL): 1.1–1.4 s → 0.6 s per 100,000 lines.
        Index("ix_training_records_officer", "officer_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # Plain ids, no foreign keys: the checks cost 1.4 s of a 100,000-line import on PostgreSQL (one
    # trigger per line and key, measured), and they guard nothing the code does not: officers and
    # courses are never deleted (no route, service or command deletes either), and every line is
    # written from an officer and a course read in the same transaction (the import joins them).
    officer_id: Mapped[int] = mapped_column(BigIntPK)
    course_id: Mapped[int] = mapped_column(BigIntPK)
    year: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(16))
    attended_on: Mapped[dt.date] = mapped_column(Date)
    hours_tenths: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(12))
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("training_records.id", ondelete="RESTRICT"))
    reason: Mapped[str] = mapped_column(String(200), default="")
    generation: Mapped[int] = mapped_column(Integer, default=0)
    # Plain ids, like the audit log's actor: a foreign-key check on each of 100 000 imported lines
    # would add a third to an import's time, and neither a batch nor an account is ever deleted.
    batch_id: Mapped[int | None] = mapped_column(BigInteger)
    entered_by_id: Mapped[int | None] = mapped_column(BigInteger)
    entered_by_name: Mapped[str] = mapped_column(String(64))
    entered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TrainingYearTotal(Base):
    """Net hours per officer and year, one column per category: the ledger summed, kept in step with it.

    Every write of ledger lines adds its signed hours here in the same transaction
    (``services.totals_add``), so the yearly compliance of a whole province reads one row per
    officer instead of every ledger line. It holds nothing the ledger does not:
    ``app training totals --check`` recomputes it from the ledger (GROUP BY officer, category)
    and reports any difference; without ``--check`` it rebuilds it.

    On SQLite the table is its key (WITHOUT ROWID: the rows are stored in (year, officer) order).
    On PostgreSQL the hours are deliberately not in the key's index: an import adds to 100,000
    rows at once, and with the pages 70 % full the update stays on its page and touches no index
    (a HOT update); with the hours in the index (INCLUDE) every update wrote a new index entry too
    (0.8 s against 0.4 s per 100,000, measured). The compliance query reads the 200,000 rows of a
    year from the heap either way.
    """

    __tablename__ = "training_year_totals"
    __table_args__ = (
        PrimaryKeyConstraint("year", "officer_id"),
        {"sqlite_with_rowid": False, "postgresql_with": {"fillfactor": 70}},
    )

    year: Mapped[int] = mapped_column(Integer)
    # No foreign key: the ledger's lines already reference the officer, and these rows are
    # rewritten by every import (a check per row would slow the import for nothing).
    officer_id: Mapped[int] = mapped_column(BigInteger)
    general_law: Mapped[int] = mapped_column(BigInteger, default=0)
    special_law: Mapped[int] = mapped_column(BigInteger, default=0)
    new_law: Mapped[int] = mapped_column(BigInteger, default=0)

    @classmethod
    def category_hours(cls) -> tuple[ColumnElement[int], ColumnElement[int], ColumnElement[int]]:
        """The net hours of each category in the order of ``rules.CATEGORIES``, 0 for an officer
        with no row (the table outer-joined)."""
        return (
            func.coalesce(cls.general_law, 0),
            func.coalesce(cls.special_law, 0),
            func.coalesce(cls.new_law, 0),
        )

    @classmethod
    def net_hours(cls) -> ColumnElement[int]:
        """The year's net hours: the sum of the three categories (seed 001 item 43)."""
        g, s, n = cls.category_hours()
        return g + s + n


__all__ = ["TrainingCourse", "TrainingImportBatch", "TrainingRecord", "TrainingYearTotal"]
