"""How the accounts domain files a change in the audit trail: one home for its entity and agency.

Every change to an agency, an officer or an account is recorded against that row (its table's
entity type and its id) and under the agency it sits in, an agency under itself; the callers name
only who acted, what was done and the details.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account, Agency, Officer
from app.audit.services import audit_record
from app.lib.actor import Actor


async def audit_change(
    db: AsyncSession, *, actor: Actor, action: str, row: Agency | Officer | Account, data: dict[str, Any]
) -> None:
    """``audit_record`` of ``action`` on ``row``, in the caller's transaction."""
    if isinstance(row, Agency):
        entity_type, agency_id = "agency", row.id
    else:
        entity_type, agency_id = ("officer" if isinstance(row, Officer) else "account"), row.agency_id
    await audit_record(
        db,
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=row.id,
        agency_id=agency_id,
        data=data,
    )
