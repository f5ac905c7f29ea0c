"""Officers (执法人员): register one, correct their record, replace their photo."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import rules
from app.accounts.models import Officer
from app.accounts.schemas import (
    OfficerIn,
    OfficerUpdate,
)
from app.accounts.selectors import (
    agency_get,
    agency_policy,
)
from app.accounts.services.postings import (
    check_version,
    flush_versioned,
    officer_for_admin,
    open_posting,
    rotate_posting,
)
from app.audit.services import audit_change
from app.lib.clock import today
from app.lib.enums import EmploymentStatus
from app.lib.errors import Conflict, DomainError, Forbidden
from app.lib.security import Principal


async def officer_create(db: AsyncSession, *, principal: Principal, data: OfficerIn) -> Officer:
    if not principal.is_admin:
        raise Forbidden("只有管理员可以新增执法人员")
    agency = await agency_get(db, principal, data.agency_id)
    policy = await agency_policy(db, agency)
    errors = rules.officer_field_errors(
        name=data.name, id_number=data.id_number, field=data.field, policy=policy
    )
    if errors:
        raise DomainError(errors[0].message, errors=errors)
    id_number = rules.normalize_id_number(data.id_number)
    if await db.scalar(select(Officer.id).where(Officer.id_number == id_number)):
        raise Conflict("该身份证号码已登记", field="id_number")
    officer = Officer(
        agency_id=agency.id,
        id_number=id_number,
        gender=rules.gender_from_id(id_number),
        birth_date=rules.birth_date_from_id(id_number),
        employment_status=EmploymentStatus.ACTIVE.value,
        **_officer_values(data),
    )
    try:
        # A savepoint: a concurrent registration is refused and the session stays usable.
        async with db.begin_nested():
            db.add(officer)
    except IntegrityError as exc:
        raise Conflict("该身份证号码已登记", field="id_number") from exc
    open_posting(db, officer, agency.id, data.started_on or today())
    await audit_change(
        db,
        principal.actor,
        "officer.create",
        officer,
        {"name": officer.name, "staff_type": officer.staff_type, "post": officer.post},
    )
    return officer


def _officer_values(data: OfficerIn | OfficerUpdate) -> dict[str, Any]:
    """The record's editable columns as a form or the API gives them (trimmed, enums as stored)."""
    return {
        "name": data.name.strip(),
        "staff_type": data.staff_type.value,
        "post": data.post.value,
        "field": data.field.strip(),
        "area": data.area.strip(),
        "phone": data.phone.strip(),
    }


async def officer_update(
    db: AsyncSession, *, principal: Principal, officer_id: int, data: OfficerUpdate
) -> Officer:
    officer, agency = await officer_for_admin(db, principal, officer_id, "只有管理员可以修改执法人员信息")
    check_version(officer, data.version)
    policy = await agency_policy(db, agency)
    errors = rules.officer_field_errors(name=data.name, id_number=None, field=data.field, policy=policy)
    if errors:
        raise DomainError(errors[0].message, errors=errors)
    new = _officer_values(data)
    changes = {k: [getattr(officer, k), v] for k, v in new.items() if getattr(officer, k) != v}
    if not changes:
        return officer
    for k, v in new.items():
        setattr(officer, k, v)
    await flush_versioned(db)
    if {"post", "field", "area"} & changes.keys():
        await rotate_posting(db, officer, officer.agency_id, today(), "岗位信息变更")
    await audit_change(db, principal.actor, "officer.update", officer, {"changes": changes})
    return officer


async def officer_set_photo(
    db: AsyncSession, *, principal: Principal, officer_id: int, data: bytes
) -> Officer:
    """证件照: replace the officer's photo (the old file is kept for the audit trail)."""
    from litestar.concurrency import sync_to_thread

    from app.accounts.photos import normalise_photo, store_photo

    officer, _ = await officer_for_admin(db, principal, officer_id, "只有管理员可以上传照片")
    jpeg = await sync_to_thread(normalise_photo, data)
    before = officer.photo_path
    officer.photo_path = await sync_to_thread(store_photo, officer.id, jpeg)
    await audit_change(
        db, principal.actor, "officer.photo", officer, {"before": before, "after": officer.photo_path}
    )
    return officer
