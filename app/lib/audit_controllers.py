"""The audit trail as pages and JSON, for the issuing authority (scoped to its subtree)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.params import FromQuery, QueryParameter
from litestar.response import Template
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency
from app.lib.audit import AuditEvent
from app.lib.guards import require_authority
from app.lib.web import Pager, principal_of, render


class AuditEventOut(msgspec.Struct, kw_only=True):
    id: int
    occurred_at: str
    actor: str
    action: str
    entity_type: str
    entity_id: str
    agency_id: int | None
    data: dict[str, Any]
    hash: str


class AuditPage(msgspec.Struct, kw_only=True):
    items: list[AuditEventOut]
    total: int
    page: int
    per_page: int


async def _events(
    db: AsyncSession,
    request: Request[Any, Any, Any],
    action: str,
    entity_type: str,
    entity_id: str,
    page: int,
    per_page: int,
) -> tuple[list[AuditEventOut], int]:
    p = principal_of(request)
    scope = select(Agency.id).where(Agency.path.startswith(p.agency_path))
    stmt = select(AuditEvent).where(or_(AuditEvent.agency_id.in_(scope), AuditEvent.agency_id.is_(None)))
    if action:
        stmt = stmt.where(AuditEvent.action.startswith(action))
    if entity_type:
        stmt = stmt.where(AuditEvent.entity_type == entity_type)
    if entity_id:
        stmt = stmt.where(AuditEvent.entity_id == entity_id)
    total = int(await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = (
        await db.scalars(stmt.order_by(AuditEvent.id.desc()).limit(per_page).offset((page - 1) * per_page))
    ).all()
    return [
        AuditEventOut(
            id=e.id,
            occurred_at=e.occurred_at.isoformat(),
            actor=e.actor_name,
            action=e.action,
            entity_type=e.entity_type,
            entity_id=e.entity_id,
            agency_id=e.agency_id,
            data=msgspec.json.decode(e.data),
            hash=e.hash,
        )
        for e in rows
    ], total


class AuditApi(Controller):
    path = "/api/audit"
    tags = ["审计"]
    guards = [require_authority]

    @get("/", summary="审计日志（本辖区，倒序分页）")
    async def list_events(
        self,
        request: Request[Any, Any, Any],
        db: AsyncSession,
        action: FromQuery[str] = "",
        entity_type: FromQuery[str] = "",
        entity_id: FromQuery[str] = "",
        page: Annotated[int, QueryParameter(ge=1, le=100000)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> AuditPage:
        items, total = await _events(db, request, action, entity_type, entity_id, page, per_page)
        return AuditPage(items=items, total=total, page=page, per_page=per_page)


class AuditPages(Controller):
    path = "/audit"
    include_in_schema = False
    guards = [require_authority]

    @get("/")
    async def index(
        self,
        request: Request[Any, Any, Any],
        db: AsyncSession,
        action: FromQuery[str] = "",
        entity_type: FromQuery[str] = "",
        entity_id: FromQuery[str] = "",
        page: Annotated[int, QueryParameter(ge=1, le=100000)] = 1,
    ) -> Template:
        items, total = await _events(db, request, action, entity_type, entity_id, page, 50)
        return render(
            "audit.html",
            request,
            items=items,
            pg=Pager(page, 50, total),
            f={"action": action, "entity_type": entity_type, "entity_id": entity_id},
        )


ROUTES = [AuditApi, AuditPages]
