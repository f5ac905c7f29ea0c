"""Accounts (账号): create with a one-time password, deactivate and reactivate, reset the password."""

from __future__ import annotations

import secrets

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account, Agency
from app.accounts.schemas import AccountIn
from app.accounts.selectors import (
    account_get,
    agency_get,
    officer_get,
)
from app.accounts.services.auth import password_set
from app.audit.services import audit_change
from app.lib.actor import SYSTEM
from app.lib.enums import Role
from app.lib.errors import Conflict, DomainError, Forbidden
from app.lib.security import (
    Principal,
    hash_password,
    password_policy_error,
)


def generate_initial_password() -> str:
    # Letters and digits, no look-alikes: read out over the phone or printed on a slip.
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(12))
        if password_policy_error(pw) is None:
            return pw


async def account_create(
    db: AsyncSession, *, principal: Principal, data: AccountIn, password: str | None = None
) -> tuple[Account, str]:
    """Creates an account with a one-time password that must be changed at first login."""
    if not principal.is_admin:
        raise Forbidden("只有管理员可以创建账号")
    if data.role is Role.AUTHORITY_ADMIN and not principal.is_authority:
        raise Forbidden("只有发证机关管理员可以创建发证机关管理员账号", field="role")
    agency = await agency_get(db, principal, data.agency_id)
    if data.role is Role.AUTHORITY_ADMIN and not agency.is_issuing_authority:
        raise DomainError("发证机关管理员账号须属于发证机关", field="agency_id")
    if data.role is Role.OFFICER:
        if data.officer_id is None:
            raise DomainError("执法人员账号须关联一名执法人员", field="officer_id")
        officer, _ = await officer_get(db, principal, data.officer_id)
        if officer.agency_id != agency.id:
            raise DomainError("账号所属单位须与执法人员所在单位一致", field="agency_id")
        if await db.scalar(select(Account.id).where(Account.officer_id == officer.id)):
            raise Conflict("该执法人员已有账号", field="officer_id")
    elif data.officer_id is not None:
        raise DomainError("只有执法人员账号可以关联执法人员", field="officer_id")
    if await db.scalar(select(Account.id).where(func.lower(Account.username) == data.username.lower())):
        raise Conflict("用户名已被使用", field="username")
    initial = password or generate_initial_password()
    account = Account(
        username=data.username,
        display_name=data.display_name.strip(),
        password_hash=await hash_password(initial),
        role=data.role.value,
        agency_id=agency.id,
        officer_id=data.officer_id,
        must_change_password=True,
    )
    try:
        # A savepoint: a concurrent registration is refused and the session stays usable.
        async with db.begin_nested():
            db.add(account)
    except IntegrityError as exc:
        raise Conflict("用户名已被使用或该执法人员已有账号", field="username") from exc
    await audit_change(
        db,
        principal.actor,
        "account.create",
        account,
        {"username": account.username, "role": account.role, "officer_id": account.officer_id},
    )
    return account, initial


async def account_set_active(
    db: AsyncSession, *, principal: Principal, account_id: int, active: bool
) -> Account:
    if not principal.is_admin:
        raise Forbidden("只有管理员可以停用账号")
    account, _ = await account_get(db, principal, account_id)
    if account.id == principal.account_id:
        raise DomainError("不能停用自己的账号", field="account_id")
    if Role(account.role) is Role.AUTHORITY_ADMIN and not principal.is_authority:
        raise Forbidden("无权停用发证机关管理员账号")
    if account.is_active == active:
        return account
    account.is_active = active
    account.auth_epoch += 1
    await audit_change(
        db,
        principal.actor,
        "account.activate" if active else "account.deactivate",
        account,
        {"username": account.username},
    )
    return account


async def account_reset_password(
    db: AsyncSession, *, principal: Principal, account_id: int
) -> tuple[Account, str]:
    if not principal.is_admin:
        raise Forbidden("只有管理员可以重置密码")
    account, _ = await account_get(db, principal, account_id)
    if Role(account.role) is Role.AUTHORITY_ADMIN and not principal.is_authority:
        raise Forbidden("无权重置发证机关管理员的密码")
    initial = generate_initial_password()
    password_set(account, await hash_password(initial), must_change=True)
    account.failed_logins = 0
    account.locked_until = None
    await audit_change(db, principal.actor, "account.reset_password", account, {"username": account.username})
    return account, initial


async def authority_admin_create(
    db: AsyncSession, *, username: str, password: str, display_name: str, agency_id: int | None
) -> Account:
    """The first issuing-authority administrator (``app create-admin``), at ``agency_id`` or the
    tree's root. Raises ``ValueError`` naming what is missing or taken."""
    if agency_id is None:
        agency = await db.scalar(
            select(Agency).where(Agency.parent_id.is_(None)).order_by(Agency.id).limit(1)
        )
    else:
        agency = await db.get(Agency, agency_id)
    if agency is None:
        raise ValueError("no such agency: load agencies first (app demo-data) or give --agency-id")
    if not agency.is_issuing_authority:
        raise ValueError(f"agency {agency.id} ({agency.name}) is not an issuing authority")
    if await db.scalar(select(Account.id).where(func.lower(Account.username) == username.lower())):
        raise ValueError(f"username {username!r} is taken")
    account = Account(
        username=username,
        display_name=display_name,
        password_hash=await hash_password(password),
        role=Role.AUTHORITY_ADMIN.value,
        agency_id=agency.id,
        must_change_password=False,
    )
    db.add(account)
    await db.flush()
    await audit_change(
        db,
        SYSTEM,
        "account.create",
        account,
        {"username": username, "role": account.role, "via": "create-admin"},
    )
    return account
