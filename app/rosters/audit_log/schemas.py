"""The audit trail's JSON shapes."""

from __future__ import annotations

from typing import Any

import msgspec

from app.audit.models import AuditEvent
from app.lib.paging import Page


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


class AuditPage(Page, kw_only=True):
    items: list[AuditEventOut]


def audit_event_out(e: AuditEvent) -> AuditEventOut:
    return AuditEventOut(
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
