"""The audit trail as its readers see it: the issuing authority's subtree, newest first."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.selectors import agency_subtree_ids
from app.audit.models import AuditEvent
from app.lib.paging import count_rows, page_of
from app.lib.security import Principal


@dataclass(frozen=True)
class AuditFilter:
    action: str = ""
    """a prefix: ``officer.`` finds every officer event"""
    entity_type: str = ""
    entity_id: str = ""


async def audit_event_page(
    db: AsyncSession, *, principal: Principal, f: AuditFilter, page: int, per_page: int
) -> tuple[list[AuditEvent], int]:
    """One page of the events of the principal's subtree (and the system's), and how many in all."""
    scope = agency_subtree_ids(principal.agency_path)
    stmt = select(AuditEvent).where(or_(AuditEvent.agency_id.in_(scope), AuditEvent.agency_id.is_(None)))
    if f.action:
        stmt = stmt.where(AuditEvent.action.startswith(f.action))
    if f.entity_type:
        stmt = stmt.where(AuditEvent.entity_type == f.entity_type)
    if f.entity_id:
        stmt = stmt.where(AuditEvent.entity_id == f.entity_id)
    total = await count_rows(db, stmt)
    rows = (
        await db.scalars(page_of(stmt.order_by(AuditEvent.id.desc()), page=page, per_page=per_page))
    ).all()
    return list(rows), total
