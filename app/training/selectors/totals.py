"""The yearly totals against the ledger they sum: the sums straight from the ledger, and the differences."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.training.models import TrainingRecord, TrainingYearTotal
from app.training.rules import CATEGORIES

CATEGORY_COLUMNS = tuple(c.value for c in CATEGORIES)
"""The columns of ``training_year_totals`` that hold hours, one per category, in category order."""


def ledger_sums(year: int | None = None) -> Select[Any]:
    """The yearly totals straight from the ledger: GROUP BY year, officer, category."""
    r = TrainingRecord.__table__.c
    stmt = select(r.year, r.officer_id, r.category, func.sum(r.hours_tenths).label("tenths"))
    if year is not None:
        stmt = stmt.where(r.year == year)
    return stmt.group_by(r.year, r.officer_id, r.category)


async def totals_check(db: AsyncSession, *, year: int | None = None) -> list[tuple[int, int, str, int, int]]:
    """Differences between the yearly totals and the ledger: (year, officer, category, kept, ledger)."""
    ledger = {(y, o, c): int(t) for y, o, c, t in await db.execute(ledger_sums(year))}
    t = TrainingYearTotal
    kept_stmt = select(t.year, t.officer_id, t.general_law, t.special_law, t.new_law)
    if year is not None:
        kept_stmt = kept_stmt.where(t.year == year)
    kept: dict[tuple[int, int, str], int] = {}
    for y, o, *values in await db.execute(kept_stmt):
        for category, value in zip(CATEGORY_COLUMNS, values, strict=True):
            if value:
                kept[(y, o, category)] = int(value)
    return sorted(
        (*key, kept.get(key, 0), ledger.get(key, 0))
        for key in kept.keys() | ledger.keys()
        if kept.get(key, 0) != ledger.get(key, 0)
    )


__all__ = ["CATEGORY_COLUMNS", "ledger_sums", "totals_check"]
