"""The audit trail as pages and JSON, for the issuing authority (scoped to its subtree)."""

from __future__ import annotations

from dataclasses import asdict
from functools import partial
from typing import Any

from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery
from litestar.response import Template

from app.lib.guards import require_authority
from app.lib.web import PAGING, Db, PageNo, Paging, Req, list_page, principal_of
from app.rosters.audit_log.schemas import AuditEventOut, AuditPage, audit_event_out
from app.rosters.audit_log.selectors import AuditFilter, audit_event_page


def provide_audit_filter(
    action: FromQuery[str] = "", entity_type: FromQuery[str] = "", entity_id: FromQuery[str] = ""
) -> AuditFilter:
    """The filter of the page and of the API, from the same query parameters."""
    return AuditFilter(action=action, entity_type=entity_type, entity_id=entity_id)


AuditQuery = NamedDependency[AuditFilter]
FILTER: dict[str, Any] = {"f": Provide(provide_audit_filter, sync_to_thread=False)}


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
    dependencies = {**FILTER, **PAGING}

    @get("/", summary="审计日志（本辖区，倒序分页）")
    async def list_events(self, request: Req, db: Db, f: AuditQuery, paging: Paging) -> AuditPage:
        items, total = await _events(db, request, f, paging.page, paging.per_page)
        return paging.of(AuditPage, items, total)


class AuditPages(Controller):
    path = "/audit"
    include_in_schema = False
    guards = [require_authority]
    dependencies = FILTER

    @get("/")
    async def index(self, request: Req, db: Db, f: AuditQuery, page: PageNo = 1) -> Template:
        fetch = partial(_events, db, request, f)
        return await list_page("audit.html", request, fetch, page=page, f=asdict(f))


ROUTES = [AuditApi, AuditPages]
