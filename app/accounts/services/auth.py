"""Signing in and out (登录 / 退出), the lockout after repeated failures, and the password change."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import case, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account
from app.audit.services import audit_change, audit_record
from app.lib.actor import Actor
from app.lib.clock import utcnow
from app.lib.errors import DomainError, NotFound
from app.lib.security import (
    Principal,
    burn_password_check,
    hash_password,
    password_policy_error,
    verify_password,
)


class LoginRefused(DomainError):
    """A refused login: what the refusal recorded (the failure count, the lock, the audit event)
    must stand although the answer is an error: the login handler marks its request with
    ``app.lib.web.keep_refusal``, so the edge commits it."""


class LoginFailed(LoginRefused):
    status_code = 401
    title = "登录失败"


class AccountLocked(LoginRefused):
    status_code = 423
    title = "账号已锁定"


@dataclass(frozen=True)
class PasswordCheck:
    """A password checked before the login's transaction begins: argon2 takes ~150 ms of CPU, and
    a write transaction held over it blocked every other writer on SQLite (100 logins at once: 15 s
    of lock, "database is locked" answers) and kept a pooled connection idle on PostgreSQL."""

    password_hash: str | None
    """The hash it was checked against (None: no such account, and a dummy check was spent)."""
    ok: bool


async def stored_hash(db: AsyncSession, *, username: str) -> str | None:
    """The account's password hash, read on its own (a read-only session, before the login's)."""
    return await db.scalar(
        select(Account.password_hash).where(func.lower(Account.username) == username.strip().lower())
    )


async def check_password(password: str, password_hash: str | None) -> PasswordCheck:
    """argon2 once, against the stored hash or (unknown username) a dummy: the same time either way."""
    if password_hash is None:
        await burn_password_check(password)
        return PasswordCheck(None, False)
    return PasswordCheck(password_hash, await verify_password(password, password_hash))


async def authenticate(
    db: AsyncSession,
    *,
    username: str,
    password: str,
    max_failures: int,
    lock_minutes: int,
    checked: PasswordCheck | None = None,
) -> Account:
    """Checks a password; 5 failures lock the account for 15 minutes (both from settings).
    ``checked``: the password already checked outside this transaction (``check_password``); it
    counts when the account still has the hash it was checked against, else it is checked again."""
    account = await db.scalar(select(Account).where(func.lower(Account.username) == username.strip().lower()))
    generic = "用户名或密码错误"
    if account is None:
        if checked is None:
            await burn_password_check(password)
        raise LoginFailed(generic)
    now = utcnow()
    if account.locked_until is not None and account.locked_until > now:
        # Spend the same time as a real check, so that a locked account cannot be told apart by
        # timing (a check made before this transaction spent it already).
        if checked is None:
            await burn_password_check(password)
        minutes = max(1, int((account.locked_until - now).total_seconds() // 60) + 1)
        raise AccountLocked(f"登录失败次数过多，账号已锁定，请{minutes}分钟后再试")
    if checked is not None and checked.password_hash == account.password_hash:
        ok = checked.ok
    else:
        ok = await verify_password(password, account.password_hash)
    if not ok or not account.is_active:
        if not ok:
            locked = await _count_failure(db, account.id, now, max_failures, lock_minutes)
            await audit_change(
                db,
                Actor(account_id=None, name=username[:64]),
                "account.lock" if locked else "account.login_failed",
                account,
                {},
            )
            if locked:
                raise AccountLocked(f"登录失败次数过多，账号已锁定{lock_minutes}分钟")
        raise LoginFailed(generic if ok is False else "该账号已停用，请联系管理员")
    account.failed_logins = 0
    account.locked_until = None
    account.last_login_at = now
    if pwd_needs_rehash(account.password_hash):
        account.password_hash = await hash_password(password)
    await audit_change(db, Actor(account_id=account.id, name=account.username), "account.login", account, {})
    return account


async def _count_failure(
    db: AsyncSession, account_id: int, now: dt.datetime, max_failures: int, lock_minutes: int
) -> bool:
    """Count one wrong password in the database, atomically: True when it locks the account.

    One ``UPDATE … RETURNING`` adds the failure and, at the configured count, sets the lock and
    starts the count over, all on the row as it is when the statement runs (the database serialises
    concurrent updates of one row). So guesses sent at once, to several workers or instances, lock
    the account at exactly ``max_failures``; a read-then-add in Python let 16 parallel guesses leave
    the count at 1. A guess that arrives when another has just locked the account updates nothing
    and is answered as locked.
    """
    failures = Account.failed_logins + 1
    crosses = failures >= max_failures
    row = (
        await db.execute(
            update(Account)
            .where(Account.id == account_id)
            .where(or_(Account.locked_until.is_(None), Account.locked_until <= now))
            .values(
                failed_logins=case((crosses, 0), else_=failures),
                locked_until=case(
                    (crosses, literal(now + dt.timedelta(minutes=lock_minutes), Account.locked_until.type)),
                    else_=Account.locked_until,
                ),
            )
            .returning(Account.locked_until)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if row is None:  # locked by a concurrent guess since this one read the account
        raise AccountLocked("登录失败次数过多，账号已锁定，请稍后再试")
    return row.locked_until is not None and row.locked_until > now


async def account_logout(db: AsyncSession, *, principal: Principal) -> None:
    """退出登录: void every session cookie of the account, not just the browser's copy.

    Sessions live in the (encrypted) cookie, so clearing it in the browser does nothing to a copy
    taken earlier; moving the account's epoch on makes every older cookie worthless.
    """
    await db.execute(
        update(Account).where(Account.id == principal.account_id).values(auth_epoch=Account.auth_epoch + 1)
    )
    await audit_record(
        db,
        actor=principal.actor,
        action="account.logout",
        entity_type="account",
        entity_id=principal.account_id,
        agency_id=principal.agency_id,
        data={},
    )


def password_set(account: Account, password_hash: str, *, must_change: bool) -> None:
    """A new password (changed, or reset to a one-time one): every session issued before is void."""
    account.password_hash = password_hash
    account.must_change_password = must_change
    account.auth_epoch += 1


def pwd_needs_rehash(h: str) -> bool:
    from app.lib.security import pwd_context

    return bool(pwd_context.needs_update(h))


async def password_change(
    db: AsyncSession, *, principal: Principal, current_password: str, new_password: str
) -> Account:
    account = await db.get(Account, principal.account_id)
    if account is None:
        raise NotFound("账号不存在")
    if not await verify_password(current_password, account.password_hash):
        raise DomainError("当前密码不正确", field="current_password")
    if msg := password_policy_error(new_password, username=account.username):
        raise DomainError(msg, field="new_password")
    if await verify_password(new_password, account.password_hash):
        raise DomainError("新密码不能与当前密码相同", field="new_password")
    password_set(account, await hash_password(new_password), must_change=False)
    await audit_change(db, principal.actor, "account.change_password", account, {})
    return account
