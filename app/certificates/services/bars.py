"""重新持证条件: the bar an exit decision (退出案件, assessments) records on an officer, and its lifting
when a review overturns the decision. The eligibility check reads it (``eligibility``)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.services import audit_record
from app.certificates.models import ExitBar
from app.lib.security import Principal, actor_of


async def exit_bar_record(
    db: AsyncSession,
    *,
    officer_id: int,
    case_id: int,
    outcome: str,
    barred_from: dt.date,
    barred_until: dt.date | None,
    conditions: str,
    actor: Principal,
) -> ExitBar:
    """Record what must happen before the officer holds a card again (one bar per exit case)."""
    bar = ExitBar(
        officer_id=officer_id,
        case_id=case_id,
        outcome=outcome,
        barred_from=barred_from,
        barred_until=barred_until,
        conditions=conditions,
    )
    db.add(bar)
    await db.flush()
    await audit_record(
        db,
        actor=actor_of(actor),
        action="certificate.exit_bar_recorded",
        entity_type="officer",
        entity_id=officer_id,
        data={
            "case_id": case_id,
            "outcome": outcome,
            "barred_until": barred_until.isoformat() if barred_until else None,
            "conditions": conditions,
        },
    )
    return bar


async def exit_bar_lift(db: AsyncSession, *, case_id: int, on: dt.date, reason: str) -> ExitBar | None:
    """Lift the bar of an exit case (its decision was overturned); None when it had none in force.
    The caller audits the review decision that lifts it."""
    bar = await db.scalar(select(ExitBar).where(ExitBar.case_id == case_id, ExitBar.lifted_on.is_(None)))
    if bar is None:
        return None
    bar.lifted_on = on
    bar.lifted_reason = reason
    await db.flush()
    return bar
