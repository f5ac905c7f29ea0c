"""Selectors over exam qualifications: what certificates and rosters read."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.exams.models import ExamQualification


async def qualification_valid_map(
    session: AsyncSession, officer_ids: Iterable[int], *, as_of: dt.date
) -> dict[int, ExamQualification]:
    """The latest grant still valid on ``as_of`` for each officer that has one (absent: none)."""
    ids = sorted(set(officer_ids))
    found: dict[int, ExamQualification] = {}
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        rows = await session.scalars(
            select(ExamQualification)
            .where(
                ExamQualification.officer_id.in_(chunk),
                ExamQualification.status == "valid",
                ExamQualification.passed_on <= as_of,
                ExamQualification.valid_until >= as_of,
            )
            .order_by(ExamQualification.officer_id, ExamQualification.valid_until)
        )
        for row in rows:
            found[row.officer_id] = row  # ordered by valid_until: the last one wins
    return found


async def qualification_latest(session: AsyncSession, officer_id: int) -> ExamQualification | None:
    """The officer's most recent grant, valid or not (for the record page)."""
    return await session.scalar(
        select(ExamQualification)
        .where(ExamQualification.officer_id == officer_id)
        .order_by(ExamQualification.passed_on.desc(), ExamQualification.id.desc())
        .limit(1)
    )
