"""Agencies (单位): create and update, by the issuing authority's administrators."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import rules
from app.accounts.models import Agency
from app.accounts.schemas import AgencyIn
from app.accounts.selectors import (
    agency_get,
    agency_out,
)
from app.audit.services import audit_change
from app.lib.errors import Conflict, DomainError, FieldError, Forbidden
from app.lib.policy import Policy, PolicyRefused, policy_checked, policy_from_json, policy_to_json
from app.lib.security import Principal


async def agency_create(db: AsyncSession, *, principal: Principal, data: AgencyIn) -> Agency:
    if not principal.is_authority:
        raise Forbidden("只有发证机关管理员可以维护单位")
    errors = _agency_errors(data)
    if data.parent_id is None:
        raise DomainError("须选择上级单位", field="parent_id")
    parent = await agency_get(db, principal, data.parent_id)
    if errors:
        raise DomainError(errors[0].message, errors=errors)
    if await db.scalar(select(Agency.id).where(Agency.name == data.name.strip())):
        raise Conflict("单位名称已存在", field="name")
    agency = Agency(parent_id=parent.id, depth=parent.depth + 1, **_agency_values(data))
    db.add(agency)
    await db.flush()
    agency.path = rules.agency_path(parent.path, agency.id)
    await audit_change(
        db,
        principal.actor,
        "agency.create",
        agency,
        {"name": agency.name, "parent_id": parent.id, "region_code": agency.region_code},
    )
    return agency


async def agency_update(db: AsyncSession, *, principal: Principal, agency_id: int, data: AgencyIn) -> Agency:
    if not principal.is_authority:
        raise Forbidden("只有发证机关管理员可以维护单位")
    agency = await agency_get(db, principal, agency_id)
    errors = _agency_errors(data)
    if errors:
        raise DomainError(errors[0].message, errors=errors)
    if data.parent_id != agency.parent_id:
        raise DomainError("不支持在此修改上级单位", field="parent_id")
    clash = await db.scalar(select(Agency.id).where(Agency.name == data.name.strip(), Agency.id != agency.id))
    if clash:
        raise Conflict("单位名称已存在", field="name")
    before = agency_out(agency)
    for k, v in _agency_values(data).items():
        setattr(agency, k, v)
    after = agency_out(agency)
    changes = {
        k: [getattr(before, k), getattr(after, k)]
        for k in before.__struct_fields__
        if getattr(before, k) != getattr(after, k)
    }
    await audit_change(db, principal.actor, "agency.update", agency, {"changes": changes})
    return agency


def _agency_values(data: AgencyIn) -> dict[str, Any]:
    """The agency's own columns as a form or the API gives them (names trimmed, enums as stored)."""
    return {
        "name": data.name.strip(),
        "short_name": data.short_name.strip(),
        "region_code": data.region_code,
        "level": data.level.value,
        "kind": data.kind.value,
        "is_enforcement_subject": data.is_enforcement_subject,
        "enforcement_basis": data.enforcement_basis.strip(),
        "is_issuing_authority": data.is_issuing_authority,
        "authority_name": data.authority_name.strip(),
        "is_legal_affairs_office": data.is_legal_affairs_office,
    }


def _agency_errors(data: AgencyIn) -> list[FieldError]:
    return rules.agency_errors(
        is_issuing_authority=data.is_issuing_authority,
        authority_name=data.authority_name,
        is_enforcement_subject=data.is_enforcement_subject,
        enforcement_basis=data.enforcement_basis,
    )


async def agency_policy_set(db: AsyncSession, *, principal: Principal, agency_id: int, raw: object) -> Policy:
    """修改发证机关政策: the authority's typed policy, checked whole (unknown keys, types, and the
    settings that must hold together, e.g. failing grades from its own grade list) before it is
    stored; refused with the reason in Chinese (422), the stored policy unchanged."""
    if not principal.is_authority:
        raise Forbidden("只有发证机关管理员可以修改政策设置")
    agency = await agency_get(db, principal, agency_id)
    if not agency.is_issuing_authority:
        raise DomainError(
            f"{agency.name}不是发证机关，没有自己的政策设置（适用上级发证机关的设置）", field="policy"
        )
    try:
        policy = policy_checked(raw)
    except PolicyRefused as exc:
        raise DomainError(f"政策设置不正确：{exc}", field="policy") from exc
    before = policy_from_json(agency.policy_json)
    agency.policy_json = policy_to_json(policy)
    await audit_change(
        db,
        principal.actor,
        "agency.policy_update",
        agency,
        {
            "changes": {
                k: [getattr(before, k), getattr(policy, k)]
                for k in policy.__struct_fields__
                if getattr(before, k) != getattr(policy, k)
            }
        },
    )
    return policy
