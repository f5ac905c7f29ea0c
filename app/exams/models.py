"""Exam models. ``ExamQualification`` is the contract other domains read (certificates check it,
assessments remove it); the bank, paper and attempt models live beside it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.accounts.models import BigIntPK
from app.db import Base, partial_index
from app.exams.rules import (
    AttemptStatus,
    ExamPart,
    MultipleScoring,
    PartsSource,
    QuestionCategory,
    QuestionType,
    ReviewPolicy,
)
from app.lib.clock import utcnow
from app.lib.enums import check_in


class ExamQualification(Base):
    """执法资格: granted when an officer passes every required part of the qualification exam.

    One row per grant. ``status`` is 'valid' until the exit procedure removes it ('removed',
    取消执法资格). A grant can count for a certificate application while ``as_of <= valid_until``
    (the policy's ``exam_result_valid_years`` after ``passed_on``). ``source`` says where it came
    from: 'exam' (an attempt in this system, ``attempt_id`` set) or 'legacy' (a paper exam before
    the system, entered by the authority or by the demo data).
    """

    __tablename__ = "exam_qualifications"
    __audit_entity__ = "exam_qualification"  # its events in the audit trail
    __table_args__ = (
        CheckConstraint("status IN ('valid', 'removed')", name="status"),
        CheckConstraint("source IN ('exam', 'legacy')", name="source"),
        CheckConstraint("valid_until >= passed_on", name="dates"),
        CheckConstraint("(status = 'removed') = (removed_on IS NOT NULL)", name="removed_on_iff_removed"),
        Index("ix_exam_qualifications_officer", "officer_id", "valid_until"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id", ondelete="RESTRICT"))
    field: Mapped[str] = mapped_column(String(32), default="")
    """The enforcement field (执法类别) whose specialised part was passed; '' when none applied."""
    passed_on: Mapped[dt.date] = mapped_column(Date)
    valid_until: Mapped[dt.date] = mapped_column(Date)
    score: Mapped[int | None] = mapped_column(default=None)
    """Total score out of 100 (the lowest part score when several parts), None for legacy grants."""
    source: Mapped[str] = mapped_column(String(8), default="exam")
    attempt_id: Mapped[int | None] = mapped_column(default=None)
    """The passing attempt (no foreign key: attempts live in the exam tables of their own revision)."""
    status: Mapped[str] = mapped_column(String(8), default="valid")
    removed_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    removed_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ExamBank(Base):
    """题库: one bank file's identity; its questions are versioned in ``exam_questions``."""

    __tablename__ = "exam_banks"
    __audit_entity__ = "exam_bank"  # its events in the audit trail
    __table_args__ = (CheckConstraint(check_in("part", ExamPart), name="part"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    part: Mapped[str] = mapped_column(String(16))
    field: Mapped[str] = mapped_column(String(32), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(255), default="")
    """The file it was last imported from (name only)."""
    imported_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ExamQuestion(Base):
    """One *version* of a question: what a candidate saw and how it is graded never changes.

    ``version`` is ``bankfile.canonical_hash`` of type, stem, options and answer; a changed question
    is a new row under the same ``qid``, and papers keep the row id they drew. ``is_current`` marks the
    version the bank file holds now (at most one per question id); only current versions are drawn.
    Basis, explanation, difficulty, category and title do not make a version and are kept up to date
    in place. ``is_draft`` (草稿): a question imported without a legal basis is stored and listed but
    never drawn until its basis is filled in (``services.banks.question_basis_set``).
    """

    __tablename__ = "exam_questions"
    __audit_entity__ = "exam_question"  # its events in the audit trail
    __table_args__ = (
        CheckConstraint(check_in("type", QuestionType), name="type"),
        CheckConstraint(check_in("category", QuestionCategory), name="category"),
        UniqueConstraint("bank_id", "qid", "version"),
        partial_index("uq_exam_questions_current", "bank_id", "qid", where="is_current", unique=True),
        Index("ix_exam_questions_draw", "bank_id", "is_current", "category", "type"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("exam_banks.id", ondelete="RESTRICT"))
    qid: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(16))
    difficulty: Mapped[int] = mapped_column(Integer, default=3)
    stem: Mapped[str] = mapped_column(Text)
    options_json: Mapped[str] = mapped_column(Text)
    """The options in bank order (JSON list of strings; [] for judge)."""
    answer_json: Mapped[str] = mapped_column(Text)
    """The key: JSON list of bank option indexes, or true/false for judge."""
    weights_json: Mapped[str | None] = mapped_column(Text, default=None)
    """Per-option credit (fractions) of imported questions with weighted answers; None otherwise."""
    basis: Mapped[str] = mapped_column(Text, default="")
    explanation: Mapped[str] = mapped_column(Text, default="")
    title: Mapped[str] = mapped_column(String(200), default="")
    """A reviewer's name for the question (GIFT ``::title::``); not part of the version."""
    is_draft: Mapped[bool] = mapped_column(Boolean, default=False)
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Exam(Base):
    """考试: its parts (in order, each with a blueprint and a duration), pass mark, retakes, scoring."""

    __tablename__ = "exams"
    __audit_entity__ = "exam"  # its events in the audit trail
    __table_args__ = (
        CheckConstraint("pass_mark > 0 AND pass_mark <= 100", name="pass_mark"),
        CheckConstraint("retakes >= 0 AND retakes <= 5", name="retakes"),
        CheckConstraint(check_in("multiple_scoring", MultipleScoring), name="multiple_scoring"),
        CheckConstraint(check_in("parts_source", PartsSource), name="parts_source"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="RESTRICT"), index=True)
    """The issuing authority that runs it."""
    parts_source: Mapped[str] = mapped_column(String(8), default=PartsSource.EXAM.value)
    """Where its parts (``exam_parts``) came from: the authority's policy as it stood when the exam
    was defined ('policy'), or set for this exam ('exam', an override)."""
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    pass_mark: Mapped[int] = mapped_column(Integer, default=60)
    retakes: Mapped[int] = mapped_column(Integer, default=1)
    multiple_scoring: Mapped[str] = mapped_column(String(16), default=MultipleScoring.ALL_OR_NOTHING.value)
    created_by_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ExamPartRow(Base):
    """One part of an exam (公共法律知识 or 专门法律知识 of the officer's field)."""

    __tablename__ = "exam_parts"
    __table_args__ = (
        CheckConstraint(check_in("part", ExamPart), name="part"),
        CheckConstraint("duration_minutes > 0 AND duration_minutes <= 600", name="duration"),
        UniqueConstraint("exam_id", "position"),
        UniqueConstraint("exam_id", "part"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    exam_id: Mapped[int] = mapped_column(ForeignKey("exams.id", ondelete="RESTRICT"))
    position: Mapped[int] = mapped_column(Integer)
    part: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(100))
    duration_minutes: Mapped[int] = mapped_column(Integer)
    blueprint_json: Mapped[str] = mapped_column(Text)
    """The rules (category, type, count, points, bank): JSON list; points add up to 100."""


class ExamSession(Base):
    """考试场次: a time window in which the enrolled officers may take the exam."""

    __tablename__ = "exam_sessions"
    __audit_entity__ = "exam_session"  # its events in the audit trail
    __table_args__ = (
        CheckConstraint("closes_at > opens_at", name="window"),
        CheckConstraint(check_in("review_policy", ReviewPolicy), name="review_policy"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    exam_id: Mapped[int] = mapped_column(ForeignKey("exams.id", ondelete="RESTRICT"), index=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id", ondelete="RESTRICT"))
    title: Mapped[str] = mapped_column(String(200))
    opens_at: Mapped[dt.datetime] = mapped_column()
    closes_at: Mapped[dt.datetime] = mapped_column()
    review_policy: Mapped[str] = mapped_column(String(16), default=ReviewPolicy.AFTER_CLOSE.value)
    submit_on_leave: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ExamEnrolment(Base):
    """报名: one officer in one session (enrolling an agency adds a row per officer of its tree)."""

    __tablename__ = "exam_enrolments"
    __table_args__ = (
        UniqueConstraint("session_id", "officer_id"),
        Index("ix_exam_enrolments_officer", "officer_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("exam_sessions.id", ondelete="RESTRICT"))
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id", ondelete="RESTRICT"))
    via_agency_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    """Set when enrolled with a whole agency."""
    created_by_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ExamAttempt(Base):
    """One officer's attempt at one part in one session, with the paper drawn for it.

    ``paper_json`` is the draw: a list of [question version id, option order, points, category,
    type]; it never changes. At most one open attempt per officer and part (partial unique index).
    Closing is a conditional update (``status = 'open'``), so a double submit, the sweep and a
    late save agree on one outcome; once closed the result never changes.
    """

    __tablename__ = "exam_attempts"
    __audit_entity__ = "exam_attempt"  # its events in the audit trail
    __table_args__ = (
        CheckConstraint(check_in("status", AttemptStatus), name="status"),
        CheckConstraint(
            "(status = 'open' AND closed_at IS NULL AND score IS NULL) "
            "OR (status = 'closed' AND closed_at IS NOT NULL AND score IS NOT NULL)",
            name="closed_shape",
        ),
        UniqueConstraint("session_id", "part_id", "officer_id", "number"),
        partial_index("uq_exam_attempts_open", "officer_id", "part_id", where="status = 'open'", unique=True),
        Index("ix_exam_attempts_sweep", "status", "deadline_at"),
        Index("ix_exam_attempts_session", "session_id", "agency_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("exam_sessions.id", ondelete="RESTRICT"))
    part_id: Mapped[int] = mapped_column(ForeignKey("exam_parts.id", ondelete="RESTRICT"))
    officer_id: Mapped[int] = mapped_column(ForeignKey("officers.id", ondelete="RESTRICT"))
    agency_id: Mapped[int] = mapped_column(BigInteger)
    """The officer's agency when the attempt started (results by agency)."""
    field: Mapped[str] = mapped_column(String(50), default="")
    number: Mapped[int] = mapped_column(Integer, default=1)
    """1 for the first attempt, 2 for the first retake (补考), ..."""
    seed: Mapped[int] = mapped_column(BigInteger)
    paper_json: Mapped[str] = mapped_column(Text)
    question_count: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(8), default=AttemptStatus.OPEN.value)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    deadline_at: Mapped[dt.datetime] = mapped_column()
    closed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    closed_by: Mapped[str] = mapped_column(String(16), default="")
    score: Mapped[float | None] = mapped_column(Float, default=None)
    passed: Mapped[bool | None] = mapped_column(Boolean, default=None)
    result_json: Mapped[str] = mapped_column(Text, default="")
    """Per-item fractions and per-category scores, written once at closing."""
    leave_count: Mapped[int] = mapped_column(Integer, default=0)


class ExamAnswer(Base):
    """An autosaved answer: append-only, one row per save of one question.

    The answer that counts is the one with the highest ``seq`` (the browser's counter), whatever order
    the saves arrived in, so a stale save can never overwrite a newer one; repeating a save is a no-op
    (primary key). Every save is kept: the trail of what was answered when.
    ``choice`` holds the *displayed* option indexes (``"0,2"``; ``""`` cleared).
    """

    __tablename__ = "exam_answers"
    __table_args__ = (PrimaryKeyConstraint("attempt_id", "position", "seq"),)

    # No foreign key: the insert selects the open attempt it belongs to (see services.answers_save),
    # and a check per save would only slow the exam-day spike.
    attempt_id: Mapped[int] = mapped_column(BigInteger)
    position: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(BigInteger)
    choice: Mapped[str] = mapped_column(String(16))
    saved_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
