"""The yearly totals (``training_year_totals``): kept in step with every ledger write, or rebuilt from it."""

from __future__ import annotations

from sqlalchemy import ARRAY, BigInteger, Integer, bindparam, case, delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.services import audit_record
from app.lib.actor import SYSTEM
from app.training.models import TrainingRecord, TrainingYearTotal
from app.training.selectors.totals import CATEGORY_COLUMNS

Delta = tuple[int, int, str, int]
"""(year, officer_id, category, signed tenths) to add to ``training_year_totals``"""

_UPSERT_SQLITE = (
    f"INSERT INTO training_year_totals (year, officer_id, {', '.join(CATEGORY_COLUMNS)}) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (year, officer_id) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in CATEGORY_COLUMNS)
)
_UPSERT_POSTGRESQL = text(
    f"INSERT INTO training_year_totals (year, officer_id, {', '.join(CATEGORY_COLUMNS)}) "
    "SELECT * FROM unnest(:years, :officers, :c0, :c1, :c2) "
    "ON CONFLICT (year, officer_id) DO UPDATE SET "
    + ", ".join(f"{c} = training_year_totals.{c} + excluded.{c}" for c in CATEGORY_COLUMNS)
).bindparams(
    bindparam("years", type_=ARRAY(Integer)),
    bindparam("officers", type_=ARRAY(BigInteger)),
    bindparam("c0", type_=ARRAY(BigInteger)),
    bindparam("c1", type_=ARRAY(BigInteger)),
    bindparam("c2", type_=ARRAY(BigInteger)),
)
_INDEX = {c: i for i, c in enumerate(CATEGORY_COLUMNS)}


async def totals_add(db: AsyncSession, deltas: list[Delta]) -> None:
    """Add ledger lines' hours to the yearly totals, inside the caller's transaction.

    Summed per (year, officer) first and written in key order, so that concurrent writers lock
    rows in the same order and cannot deadlock. One statement on PostgreSQL (arrays), one
    executemany on SQLite.
    """
    summed: dict[tuple[int, int], list[int]] = {}
    for year, officer_id, category, tenths in deltas:
        row = summed.get((year, officer_id))
        if row is None:
            row = summed[(year, officer_id)] = [0, 0, 0]
        row[_INDEX[category]] += tenths
    if not summed:
        return
    rows = sorted(summed.items())
    conn = await db.connection()
    if conn.dialect.name == "postgresql":
        await conn.execute(
            _UPSERT_POSTGRESQL,
            {
                "years": [k[0] for k, _ in rows],
                "officers": [k[1] for k, _ in rows],
                "c0": [v[0] for _, v in rows],
                "c1": [v[1] for _, v in rows],
                "c2": [v[2] for _, v in rows],
            },
        )
    else:
        await conn.exec_driver_sql(_UPSERT_SQLITE, [(*k, *v) for k, v in rows])


async def totals_rebuild(db: AsyncSession) -> int:
    """Recompute the yearly totals from the ledger, inside the caller's transaction; returns the rows written."""
    r = TrainingRecord.__table__.c
    pivoted = select(
        r.year,
        r.officer_id,
        *[func.sum(case((r.category == c, r.hours_tenths), else_=0)) for c in CATEGORY_COLUMNS],
    ).group_by(r.year, r.officer_id)
    await db.execute(delete(TrainingYearTotal))
    await db.execute(
        insert(TrainingYearTotal).from_select(["year", "officer_id", *CATEGORY_COLUMNS], pivoted)
    )
    n = int(await db.scalar(select(func.count()).select_from(TrainingYearTotal)) or 0)
    await audit_record(
        db,
        actor=SYSTEM,
        action="training.totals.rebuild",
        entity_type="training_year_totals",
        entity_id="all",
        data={"rows": n},
    )
    return n


__all__ = ["Delta", "totals_add", "totals_rebuild"]
