"""The roster tests' province: officers with and without exam qualifications and training hours."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Officer
from app.assessments.models import AssessmentRating, ExitCase
from app.certificates.models import Certificate
from app.exams.models import ExamQualification
from app.lib.enums import EmploymentStatus, Post, StaffType
from app.training.models import TrainingYearTotal
from tests.factories import World, add_officer

YEAR = 2025
TODAY = dt.date.today()


async def qualify(db: AsyncSession, officer: Officer, *, valid: bool = True, removed: bool = False) -> None:
    passed = TODAY - dt.timedelta(days=400)
    db.add(
        ExamQualification(
            officer_id=officer.id,
            field=officer.field,
            passed_on=passed,
            valid_until=TODAY + dt.timedelta(days=900) if valid else TODAY - dt.timedelta(days=1),
            score=80,
            source="legacy",
            status="removed" if removed else "valid",
            removed_on=TODAY if removed else None,
        )
    )


async def hours(db: AsyncSession, officer: Officer, general: int, special: int = 0, year: int = YEAR) -> None:
    db.add(
        TrainingYearTotal(
            year=year, officer_id=officer.id, general_law=general, special_law=special, new_law=0
        )
    )


async def card(
    db: AsyncSession,
    officer: Officer,
    *,
    kind: str = "enforcement",
    status: str = "valid",
    valid_until: dt.date | None = None,
    agency_name: str = "",
) -> Certificate:
    # Random: this module is loaded twice (as conftest and by the tests that import card()).
    number = f"R{TODAY.year}{secrets.token_hex(5).upper()}"
    c = Certificate(
        number=number,
        kind=kind,
        officer_id=officer.id,
        authority_id=officer.agency_id,
        agency_id=officer.agency_id,
        holder_name=officer.name,
        agency_name=agency_name or "甲市市场监督管理局",
        field=officer.field,
        area=officer.area,
        authority_name="江南省司法厅",
        valid_from=TODAY - dt.timedelta(days=365),
        valid_until=valid_until or TODAY + dt.timedelta(days=900),
        issued_on=TODAY - dt.timedelta(days=365),
        status=status,
        status_changed_on=TODAY - dt.timedelta(days=365),
        qr_text=f"http://testserver.local/v/{number}#unsigned",
        token="-",
        kid="-",
    )
    db.add(c)
    await db.flush()
    return c


async def rate(
    db: AsyncSession, officer: Officer, year: int, grade: str, *, draft: bool = False
) -> AssessmentRating:
    r = AssessmentRating(
        officer_id=officer.id,
        agency_id=officer.agency_id,
        year=year,
        grade=grade,
        status="draft" if draft else "confirmed",
        entered_by_name="admin_a",
        confirmed_at=None if draft else dt.datetime.now(dt.UTC),
    )
    db.add(r)
    await db.flush()
    return r


async def build(db: AsyncSession, world: World) -> dict[str, Officer]:
    """dept A: 李明 (world; nothing), 赵一 (qualified, 40 h), 钱二 (legal review, 10 h),
    孙三 (contract, retired), 周四 (qualification expired), 吴五 (qualification removed, 45 h);
    dept B: 王芳 (world; qualified, 50 h).

    Cards (besides the world's supervision cards of 李明 and 王芳): enforcement cards of 赵一 (valid),
    王芳 (valid, ends in 60 days), 孙三 (valid though retired and contract staff), 周四 (past its
    last day: expired), 吴五 (two valid), 钱二 (suspended).

    Ratings (confirmed unless said): 吴五 不合格 in YEAR-1 and YEAR, with an open exit case;
    赵一 优秀 then 合格; 钱二 不合格 in YEAR-1 and a draft 不合格 in YEAR; 王芳 不合格 in YEAR."""
    people = {
        "李明": world.officer_a,
        "王芳": world.officer_b,
        "赵一": await add_officer(db, world.dept_a, "赵一"),
        "钱二": await add_officer(db, world.dept_a, "钱二", post=Post.LEGAL_REVIEW, field="生态环境"),
        "孙三": await add_officer(db, world.dept_a, "孙三", staff_type=StaffType.CONTRACT),
        "周四": await add_officer(db, world.dept_a, "周四"),
        "吴五": await add_officer(db, world.dept_a, "吴五"),
    }
    await db.execute(
        update(Officer)
        .where(Officer.id == people["孙三"].id)
        .values(employment_status=EmploymentStatus.RETIRED.value, area="=HYPERLINK(1)")
    )
    await qualify(db, people["赵一"])
    await qualify(db, people["王芳"])
    await qualify(db, people["周四"], valid=False)
    await qualify(db, people["吴五"], removed=True)
    await hours(db, people["赵一"], 250, 150)
    await hours(db, people["钱二"], 100)
    await hours(db, people["吴五"], 450)
    await hours(db, people["王芳"], 500)
    await hours(db, people["李明"], 400, year=YEAR - 1)  # another year: does not count for YEAR
    await card(db, people["赵一"])
    await card(db, people["王芳"], valid_until=TODAY + dt.timedelta(days=60), agency_name="乙市生态环境局")
    await card(db, people["孙三"])
    await card(db, people["周四"], valid_until=TODAY - dt.timedelta(days=10))
    await card(db, people["吴五"])
    await card(db, people["吴五"])
    await card(db, people["钱二"], status="suspended")
    first = await rate(db, people["吴五"], YEAR - 1, "不合格")
    second = await rate(db, people["吴五"], YEAR, "不合格")
    await rate(db, people["赵一"], YEAR - 1, "优秀")
    await rate(db, people["赵一"], YEAR, "合格")
    await rate(db, people["钱二"], YEAR - 1, "不合格")
    await rate(db, people["钱二"], YEAR, "不合格", draft=True)
    await rate(db, people["王芳"], YEAR, "不合格")
    db.add(
        ExitCase(
            officer_id=people["吴五"].id,
            agency_id=people["吴五"].agency_id,
            authority_id=world.province.id,
            year=YEAR,
            first_rating_id=first.id,
            second_rating_id=second.id,
            proposed_outcome="remove_qualification",
            status="open",
            notified_on=TODAY,
            statement_deadline=TODAY + dt.timedelta(days=7),
        )
    )
    await db.commit()
    return people


@pytest.fixture
async def people(db: AsyncSession, world: World) -> dict[str, Officer]:
    return await build(db, world)
