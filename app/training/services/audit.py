"""The audit event of a change in the training domain: who, which row, in which agency.

A course, a ledger line and an import batch each name their entity the same way in every event
(``training_course``, ``training_record``, ``training_import_batch``); the actor is always the
principal who made the change.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.services import audit_record
from app.lib.security import Principal, actor_of
from app.training.models import TrainingCourse, TrainingImportBatch, TrainingRecord

_ENTITY_TYPES: dict[type[Any], str] = {
    TrainingCourse: "training_course",
    TrainingRecord: "training_record",
    TrainingImportBatch: "training_import_batch",
}


async def audit_training(
    db: AsyncSession,
    principal: Principal,
    action: str,
    row: TrainingCourse | TrainingRecord | TrainingImportBatch,
    *,
    agency_id: int | None,
    data: dict[str, Any],
) -> None:
    """Record ``action`` (``training.…``) on ``row`` by ``principal``, inside the caller's transaction."""
    await audit_record(
        db,
        actor=actor_of(principal),
        action=action,
        entity_type=_ENTITY_TYPES[type(row)],
        entity_id=row.id,
        agency_id=agency_id,
        data=data,
    )


__all__ = ["audit_training"]
