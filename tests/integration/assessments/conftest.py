"""Helpers for the assessment tests: principals of the world's accounts, ratings straight into the table."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account, Agency, Officer
from app.assessments.models import AssessmentRating
from app.exams.models import ExamQualification
from app.lib import clock
from app.lib.clock import utcnow
from app.lib.enums import Role
from app.lib.security import Principal

TODAY = dt.date(2027, 1, 10)


def set_today(monkeypatch: pytest.MonkeyPatch, day: dt.date) -> None:
    """Move the one clock (``app.lib.clock``) to noon of ``day`` in Beijing."""
    instant = dt.datetime.combine(day, dt.time(12), clock.CHINA).astimezone(dt.UTC)
    monkeypatch.setattr(clock, "_source", lambda: instant)


@pytest.fixture(autouse=True)
def fixed_today(monkeypatch: pytest.MonkeyPatch) -> dt.date:
    """The services' today: early 2027, with 2025 and 2026 rated and closed."""
    set_today(monkeypatch, TODAY)
    return TODAY


async def principal(db: AsyncSession, account: Account) -> Principal:
    agency = await db.get(Agency, account.agency_id)
    assert agency is not None
    return Principal(
        account_id=account.id,
        username=account.username,
        display_name=account.display_name,
        role=Role(account.role),
        agency_id=agency.id,
        agency_path=agency.path,
        agency_name=agency.name,
        officer_id=account.officer_id,
        must_change_password=False,
    )


async def add_rating(
    db: AsyncSession,
    officer: Officer,
    year: int,
    grade: str,
    *,
    status: str = "confirmed",
    agency_id: int | None = None,
) -> AssessmentRating:
    r = AssessmentRating(
        officer_id=officer.id,
        agency_id=agency_id or officer.agency_id,
        year=year,
        grade=grade,
        comment="",
        excellent_barred=grade == "不合格",
        remedy="criticism" if grade == "不合格" else None,
        status=status,
        reason="",
        entered_by_name="test",
        confirmed_by_name="test" if status != "draft" else "",
        confirmed_at=utcnow() if status != "draft" else None,
    )
    db.add(r)
    await db.flush()
    return r


async def add_qualification(db: AsyncSession, officer: Officer) -> ExamQualification:
    q = ExamQualification(
        officer_id=officer.id,
        field=officer.field,
        passed_on=dt.date(2024, 5, 1),
        valid_until=dt.date(2029, 5, 1),
        source="legacy",
        status="valid",
        removed_reason="",
    )
    db.add(q)
    await db.flush()
    return q


async def count(db: AsyncSession, model: type, *where: object) -> int:
    n = int(await db.scalar(select(func.count()).select_from(model).where(*where)) or 0)  # type: ignore[arg-type]
    await db.commit()
    return n
