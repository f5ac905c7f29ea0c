"""Demo exam data: the starter banks, a qualification exam with both parts, and a session open now.

The session's window is set from the real clock (the server decides time-up by it), so a new user
who logs in as ``zhifa01`` can take the exam at once; the officers of zhifa01's department are enrolled.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency, Officer
from app.exams import importer
from app.exams import rules as exam_rules
from app.exams.models import Exam, ExamEnrolment, ExamPartRow, ExamSession
from app.exams.rules import ExamPart, ReviewPolicy
from app.exams.services.banks import bank_import
from app.lib.clock import utcnow
from app.lib.enums import EmploymentStatus
from app.lib.policy import DEFAULT_POLICY
from app.lib.security import system_principal

BANKS = Path(__file__).resolve().parents[2] / "exam_banks"
DEMO_EXAM_TITLE = "2026年度行政执法资格考试（演示）"
BLUEPRINTS = {
    ExamPart.PUBLIC: "公共法律知识 单选题 20 2\n公共法律知识 多选题 10 2\n公共法律知识 判断题 10 1\n"
    "新法律法规 单选题 10 2\n新法律法规 判断题 10 1",
    ExamPart.SPECIALISED: "专门法律知识 单选题 15 3\n专门法律知识 多选题 5 4\n专门法律知识 判断题 15 2\n新法律法规 判断题 2 2.5",
}
MINUTES = {ExamPart.PUBLIC: 60, ExamPart.SPECIALISED: 45}


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
        parsed = importer.parse_bytes(path.read_bytes(), filename=path.name)
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
        created_by_name="system",
    )
    db.add(exam)
    await db.flush()
    for position, part in enumerate(ExamPart, start=1):
        rules_, errors = exam_rules.parse_blueprint(BLUEPRINTS[part])
        assert not errors, errors
        db.add(
            ExamPartRow(
                exam_id=exam.id,
                position=position,
                part=part.value,
                title=part.label,
                duration_minutes=MINUTES[part],
                blueprint_json=json.dumps(
                    [
                        {
                            "category": r.category,
                            "type": r.type,
                            "count": r.count,
                            "points": r.points,
                            "bank": r.bank,
                        }
                        for r in rules_
                    ],
                    ensure_ascii=False,
                ),
            )
        )
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
