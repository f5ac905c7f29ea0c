"""Postings (任职经历): transfers (调动) and the end of service (调离 / 退休 / 离职), history kept."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from app.accounts.models import Agency, Officer, PostingHistory
from app.accounts.schemas import OfficerMove
from app.accounts.selectors import (
    agency_get,
    agency_policy,
    officer_get,
)
from app.audit.services import audit_change
from app.lib.clock import today
from app.lib.enums import EmploymentStatus, Post
from app.lib.errors import Conflict, DomainError, Forbidden, StaleForm
from app.lib.security import Principal


async def officer_for_admin(
    db: AsyncSession, principal: Principal, officer_id: int, refusal: str
) -> tuple[Officer, Agency]:
    """The officer (and agency) an administrator acts on; anyone else is refused with ``refusal``."""
    if not principal.is_admin:
        raise Forbidden(refusal)
    return await officer_get(db, principal, officer_id)


def check_version(officer: Officer, version: int) -> None:
    if officer.version != version:
        raise StaleForm("该记录已被他人修改，请刷新页面后重新编辑", field="version")


async def flush_versioned(db: AsyncSession) -> None:
    """Write the officer now, so that a concurrent edit (its version moved on) is refused here."""
    try:
        await db.flush()
    except StaleDataError as exc:
        raise StaleForm("该记录已被他人修改，请刷新页面后重新编辑", field="version") from exc


async def rotate_posting(
    db: AsyncSession, officer: Officer, agency_id: int, on: dt.date, reason: str, *, open_new: bool = True
) -> None:
    current = await db.scalar(
        select(PostingHistory)
        .where(PostingHistory.officer_id == officer.id, PostingHistory.ended_on.is_(None))
        .order_by(PostingHistory.id.desc())
        .limit(1)
    )
    if current is not None:
        if on < current.started_on:
            raise DomainError("生效日期不能早于当前任职的开始日期", field="effective_on")
        current.ended_on = on
        current.end_reason = reason
    if open_new:
        open_posting(db, officer, agency_id, on)


def open_posting(db: AsyncSession, officer: Officer, agency_id: int, on: dt.date) -> None:
    """A posting from ``on``, open-ended, of the officer's post, field and area in ``agency_id``."""
    db.add(
        PostingHistory(
            officer_id=officer.id,
            agency_id=agency_id,
            post=officer.post,
            field=officer.field,
            area=officer.area,
            started_on=on,
        )
    )


async def officer_move(
    db: AsyncSession, *, principal: Principal, officer_id: int, data: OfficerMove
) -> Officer:
    """调动 (to another agency or post), end of service (调离 / 退休 / 离职), or the return (返岗) of an
    officer not in post (``employment_status`` 'active': a new posting opens); history is kept. What
    an officer carries back (two failing years, an exit bar) stays with them."""
    officer, agency = await officer_for_admin(db, principal, officer_id, "只有管理员可以办理调动或离岗")
    check_version(officer, data.version)
    returning = officer.employment_status != EmploymentStatus.ACTIVE.value
    if returning and data.employment_status is not EmploymentStatus.ACTIVE:
        raise Conflict(
            "该人员已不在岗，不能再办理调动或离岗；如返回岗位，请办理返岗（人员状态选“在岗”）",
            field="employment_status",
        )
    if data.effective_on > today() + dt.timedelta(days=366):
        raise DomainError("生效日期不能晚于一年以后", field="effective_on")
    before = {k: getattr(officer, k) for k in ("agency_id", "post", "field", "area", "employment_status")}
    ending = data.employment_status not in (None, EmploymentStatus.ACTIVE)
    if ending:
        assert data.employment_status is not None
        officer.employment_status = data.employment_status.value
        await flush_versioned(db)
        await rotate_posting(db, officer, officer.agency_id, data.effective_on, data.reason, open_new=False)
    else:
        target = agency
        if data.to_agency_id is not None and data.to_agency_id != agency.id:
            target = await agency_get(db, principal, data.to_agency_id)
        policy = await agency_policy(db, target)
        if data.field is not None and data.field not in policy.enforcement_fields:
            raise DomainError(f"执法类别“{data.field}”不在本地区的执法类别目录中", field="field")
        officer.agency_id = target.id
        officer.employment_status = EmploymentStatus.ACTIVE.value  # 返岗 when it was not
        officer.post = (data.post or Post(officer.post)).value
        officer.field = data.field if data.field is not None else officer.field
        officer.area = data.area if data.area is not None else officer.area
        after = {k: getattr(officer, k) for k in before}
        if after == before:
            raise DomainError("调动后的单位、岗位、类别与区域与当前相同", field="to_agency_id")
        await flush_versioned(db)
        await rotate_posting(db, officer, officer.agency_id, data.effective_on, data.reason)
    after = {k: getattr(officer, k) for k in before}
    await audit_change(
        db,
        principal.actor,
        "officer.end_service" if ending else ("officer.return" if returning else "officer.transfer"),
        officer,
        {
            "before": before,
            "after": after,
            "effective_on": data.effective_on.isoformat(),
            "reason": data.reason,
        },
    )
    return officer
