"""How the assessment domain files its changes in the audit trail: one event per change, named
``assessment.<action>``, on the row it changed (a rating, an exit case, a year-end close, an
agency; none: the principal's own agency, as for a file imported there), under the agency the row
belongs to."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency
from app.assessments.models import AssessmentRating, ExitCase, YearClosing
from app.audit.services import audit_record
from app.lib.security import Principal, actor_of

Audited = AssessmentRating | ExitCase | YearClosing | Agency


def _entity(principal: Principal, row: Audited | None) -> tuple[str, int, int | None]:
    """The entity type and id of ``row`` in the trail, and the agency its event is filed under."""
    if row is None:
        return "agency", principal.agency_id, principal.agency_id or None
    if isinstance(row, ExitCase):
        return "exit_case", row.id, row.agency_id
    if isinstance(row, YearClosing):
        return "assessment_year_closing", row.id, row.scope_agency_id
    if isinstance(row, Agency):
        return "agency", row.id, row.id
    return "assessment_rating", row.id, row.agency_id


async def audit_assessment(
    db: AsyncSession, principal: Principal, row: Audited | None, action: str, data: dict[str, Any]
) -> None:
    """The audit event of ``principal``'s change to ``row``: ``assessment.<action>`` with ``data``."""
    entity_type, entity_id, agency_id = _entity(principal, row)
    await audit_record(
        db,
        actor=actor_of(principal),
        action=f"assessment.{action}",
        entity_type=entity_type,
        entity_id=entity_id,
        agency_id=agency_id,
        data=data,
    )
