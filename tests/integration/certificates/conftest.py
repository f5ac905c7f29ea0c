"""Helpers for the certificate tests: principals, an officer who meets every condition, the issue context."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account, Agency, Officer
from app.certificates.services.issuance import IssueContext
from app.exams.models import ExamQualification
from app.lib.enums import Role
from app.lib.security import Principal
from app.training.services import totals_add
from tests.factories import World

ON = dt.date(2026, 9, 1)
"""The day the tests issue on: 2025 is the last completed training year."""
SECRET = "t" * 40
BASE = "http://testserver.local"


def principal(account: Account, agency: Agency, officer_id: int | None = None) -> Principal:
    return Principal(
        account_id=account.id,
        username=account.username,
        display_name=account.display_name,
        role=Role(account.role),
        agency_id=agency.id,
        agency_path=agency.path,
        agency_name=agency.name,
        officer_id=officer_id if officer_id is not None else account.officer_id,
        must_change_password=False,
    )


async def make_eligible(
    db: AsyncSession, officer: Officer, *, exam: bool = True, hours: int = 40, year: int = ON.year - 1
) -> None:
    """A legacy exam pass valid on ``ON`` and ``hours`` of training in ``year`` (general law)."""
    if exam:
        db.add(
            ExamQualification(
                officer_id=officer.id,
                field=officer.field,
                passed_on=dt.date(2024, 5, 1),
                valid_until=dt.date(2029, 4, 30),
                source="legacy",
            )
        )
    if hours:
        await totals_add(db, [(year, officer.id, "general_law", hours * 10)])
    await db.commit()


@pytest.fixture
def ctx() -> IssueContext:
    return IssueContext(secret_key=SECRET, base_url=BASE)


@pytest.fixture
def authority(world: World) -> Principal:
    return principal(world.authority, world.province)


@pytest.fixture
def admin_a(world: World) -> Principal:
    return principal(world.admin_a, world.city_a)
