"""Reading import batches: the list in scope, one batch, and the committed batch of a file's hash."""

from __future__ import annotations

import json

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.selectors import agency_subtree_ids
from app.lib.errors import NotFound
from app.lib.imports import ImportRowError
from app.lib.paging import count_rows, page_of
from app.lib.security import Principal
from app.lib.structs import project
from app.training import rules
from app.training.access import require_admin
from app.training.models import TrainingImportBatch
from app.training.schemas import BatchOut


def batch_out(b: TrainingImportBatch) -> BatchOut:
    try:
        raw = json.loads(b.errors_json or "[]")
    except ValueError:
        raw = []
    return project(
        BatchOut,
        b,
        outcome_label="已导入" if b.outcome == "committed" else "已拒绝（未写入）",
        hours=rules.hours_value(b.hours_tenths),
        errors=[ImportRowError(row=int(e[0]), column=str(e[1]), message=str(e[2])) for e in raw],
    )


def _batch_scope(principal: Principal) -> ColumnElement[bool]:
    in_tree = TrainingImportBatch.agency_id.in_(agency_subtree_ids(principal.agency_path))
    if principal.is_authority:
        return or_(in_tree, TrainingImportBatch.agency_id.is_(None))
    return in_tree


async def batch_list(
    db: AsyncSession, principal: Principal, *, page: int = 1, per_page: int = 50
) -> tuple[list[BatchOut], int]:
    require_admin(principal, "查看导入批次")
    stmt = select(TrainingImportBatch).where(_batch_scope(principal))
    total = await count_rows(db, stmt)
    rows = await db.scalars(
        page_of(stmt.order_by(TrainingImportBatch.id.desc()), page=page, per_page=per_page)
    )
    return [batch_out(b) for b in rows], total


async def batch_get(db: AsyncSession, principal: Principal, batch_id: int) -> TrainingImportBatch:
    require_admin(principal, "查看导入批次")
    batch = await db.scalar(
        select(TrainingImportBatch).where(TrainingImportBatch.id == batch_id, _batch_scope(principal))
    )
    if batch is None:
        raise NotFound("导入批次不存在或不在您的管理范围内", field="batch_id")
    return batch


async def committed_batch(db: AsyncSession, sha256: str) -> TrainingImportBatch | None:
    return await db.scalar(select(TrainingImportBatch).where(TrainingImportBatch.committed_sha256 == sha256))


__all__ = ["batch_get", "batch_list", "batch_out", "committed_batch"]
