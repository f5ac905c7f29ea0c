"""Exam models. ``ExamQualification`` is the contract other domains read (certificates check it,
assessments remove it); the bank, paper and attempt models live beside it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.accounts.models import BigIntPK
from app.db import Base, utcnow


class ExamQualification(Base):
    """执法资格: granted when an officer passes every required part of the qualification exam.

    One row per grant. ``status`` is 'valid' until the exit procedure removes it ('removed',
    取消执法资格). A grant can count for a certificate application while ``as_of <= valid_until``
    (the policy's ``exam_result_valid_years`` after ``passed_on``). ``source`` says where it came
    from: 'exam' (an attempt in this system, ``attempt_id`` set) or 'legacy' (a paper exam before
    the system, entered by the authority or by the demo data).
    """

    __tablename__ = "exam_qualifications"
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
