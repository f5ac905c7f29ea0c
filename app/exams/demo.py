"""Demo exam data: the starter banks, a qualification exam with both parts, and a session open now.

The session's window is set from the real clock (the server decides time-up by it), so a new user
who logs in as ``zhifa01`` can take the exam at once; the officers of zhifa01's department are enrolled.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency, Officer
from app.exams import formats, importer
from app.exams.models import Exam, ExamEnrolment, ExamSession
from app.exams.rules import PartsSource, ReviewPolicy
from app.exams.services.banks import bank_import
from app.exams.services.exams import part_rows
from app.lib.clock import utcnow
from app.lib.enums import EmploymentStatus
from app.lib.policy import DEFAULT_POLICY
from app.lib.security import system_principal

BANKS = Path(__file__).resolve().parents[2] / "exam_banks"
DEMO_EXAM_TITLE = "2026年度行政执法资格考试（演示）"


@dataclass
class ExamsLoaded:
    questions: int = 0
    exam_id: int = 0
    session_id: int = 0
    enrolled: int = 0


async def load_exam_demo(
    db: AsyncSession, *, authority_id: int, department_id: int, now: dt.datetime | None = None
) -> ExamsLoaded:
    """Import ``exam_banks/``, define the demo exam and open a session for the department (no commit)."""
    loaded = ExamsLoaded()
    for path in importer.bank_files(BANKS):
        parsed = formats.parse_bytes(path.read_bytes(), filename=path.name)
        assert parsed.bank is not None, parsed.errors  # the banks are checked by their own tests
        report = await bank_import(db, principal=system_principal(), bank=parsed.bank, source=path.name)
        loaded.questions += report.loaded + report.unchanged
    now = now or utcnow()
    exam = Exam(
        agency_id=authority_id,
        title=DEMO_EXAM_TITLE,
        description="演示数据：公共法律知识与专门法律知识（按考生执法领域）两部分，每部分满分 100 分。",
        pass_mark=DEFAULT_POLICY.exam_pass_mark,
        retakes=DEFAULT_POLICY.exam_retakes,
        parts_source=PartsSource.POLICY.value,
        created_by_name="system",
    )
    db.add(exam)
    await db.flush()
    db.add_all(part_rows(exam.id, DEFAULT_POLICY.exam_parts))
    session = ExamSession(
        exam_id=exam.id,
        agency_id=authority_id,
        title="演示场次（开放中）",
        opens_at=now - dt.timedelta(hours=1),
        closes_at=now + dt.timedelta(days=90),
        review_policy=ReviewPolicy.AFTER_SUBMIT.value,
        submit_on_leave=False,
        created_by_name="system",
    )
    db.add(session)
    await db.flush()
    path = await db.scalar(select(Agency.path).where(Agency.id == department_id))
    excluded = [t.value for t in DEFAULT_POLICY.excluded_staff_types]
    officer_ids = (
        await db.scalars(
            select(Officer.id)
            .join(Agency, Agency.id == Officer.agency_id)
            .where(
                Agency.path.startswith(path or "/none/"),
                Officer.employment_status == EmploymentStatus.ACTIVE.value,
                Officer.staff_type.not_in(excluded),
            )
        )
    ).all()
    db.add_all(
        ExamEnrolment(
            session_id=session.id, officer_id=oid, via_agency_id=department_id, created_by_name="system"
        )
        for oid in officer_ids
    )
    await db.flush()
    loaded.exam_id, loaded.session_id, loaded.enrolled = exam.id, session.id, len(officer_ids)
    return loaded


__all__ = ["ExamsLoaded", "load_exam_demo"]
