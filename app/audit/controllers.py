"""The audit trail as pages and JSON, for the issuing authority (scoped to its subtree)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.params import FromQuery
from litestar.response import Template

from app.audit.schemas import AuditEventOut, AuditPage, audit_event_out
from app.audit.selectors import AuditFilter, audit_event_page
from app.lib.guards import require_authority
from app.lib.web import Db, PageNo, Pager, PerPage, Req, principal_of, render


async def _events(
    db: Db, request: Req, f: AuditFilter, page: int, per_page: int
) -> tuple[list[AuditEventOut], int]:
    rows, total = await audit_event_page(
        db, principal=principal_of(request), f=f, page=page, per_page=per_page
    )
    return [audit_event_out(e) for e in rows], total


class AuditApi(Controller):
    path = "/api/audit"
    tags = ["审计"]
    guards = [require_authority]

    @get("/", summary="审计日志（本辖区，倒序分页）")
    async def list_events(
        self,
        request: Req,
        db: Db,
        action: FromQuery[str] = "",
        entity_type: FromQuery[str] = "",
        entity_id: FromQuery[str] = "",
        page: PageNo = 1,
        per_page: PerPage = 50,
    ) -> AuditPage:
        f = AuditFilter(action=action, entity_type=entity_type, entity_id=entity_id)
        items, total = await _events(db, request, f, page, per_page)
        return AuditPage(items=items, total=total, page=page, per_page=per_page)


class AuditPages(Controller):
    path = "/audit"
    include_in_schema = False
    guards = [require_authority]

    @get("/")
    async def index(
        self,
        request: Req,
        db: Db,
        action: FromQuery[str] = "",
        entity_type: FromQuery[str] = "",
        entity_id: FromQuery[str] = "",
        page: PageNo = 1,
    ) -> Template:
        f = AuditFilter(action=action, entity_type=entity_type, entity_id=entity_id)
        items, total = await _events(db, request, f, page, 50)
        return render(
            "audit.html",
            request,
            items=items,
            pg=Pager(page, 50, total),
            f={"action": action, "entity_type": entity_type, "entity_id": entity_id},
        )


ROUTES = [AuditApi, AuditPages]
