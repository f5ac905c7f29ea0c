"""Password hashing (argon2 via passlib), the password policy, and the authenticated principal."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from litestar.concurrency import sync_to_thread
from passlib.context import CryptContext

from app.lib.actor import SYSTEM, Actor
from app.lib.enums import Role

# Under APP_ENV=test only: argon2 at its minimum cost (8 KiB, one pass, one lane), so that the
# hundreds of logins of the test suite do not each spend ~0.2 s of CPU. Every other environment
# (development, production) keeps argon2's strong defaults; tests/unit/lib/test_password_profile.py
# holds both to that.
TEST_HASH_PROFILE = {"argon2__memory_cost": 8, "argon2__rounds": 1, "argon2__parallelism": 1}


def password_context(app_env: str) -> CryptContext:
    cheap = app_env.strip().lower() == "test"
    return CryptContext(schemes=["argon2"], deprecated="auto", **(TEST_HASH_PROFILE if cheap else {}))


pwd_context = password_context(os.environ.get("APP_ENV", "development"))

MIN_PASSWORD_LEN = 10
_WEAK = {"password123", "1234567890", "qwertyuiop", "admin12345", "abc1234567"}


def password_policy_error(password: str, *, username: str = "") -> str | None:
    """Why a new password is refused (Chinese), or None."""
    if len(password) < MIN_PASSWORD_LEN:
        return f"密码长度至少为{MIN_PASSWORD_LEN}位"
    if len(password) > 128:
        return "密码长度不能超过128位"
    if not re.search(r"[A-Za-z]", password) or not re.search(r"\d", password):
        return "密码须同时包含字母和数字"
    if password.lower() in _WEAK or (username and username.lower() in password.lower()):
        return "密码过于简单或包含用户名，请换一个"
    return None


def hash_password_sync(password: str) -> str:
    return pwd_context.hash(password)


async def hash_password(password: str) -> str:
    # argon2 takes tens of milliseconds of CPU: keep it off the event loop.
    return await sync_to_thread(pwd_context.hash, password)


async def verify_password(password: str, password_hash: str) -> bool:
    return await sync_to_thread(pwd_context.verify, password, password_hash)


# A real hash to verify against when the username is unknown, so timing does not reveal which
# usernames exist.
_DUMMY_HASH = pwd_context.hash("not-a-real-password-0")


async def burn_password_check(password: str) -> None:
    await verify_password(password, _DUMMY_HASH)


@dataclass(frozen=True)
class Principal:
    """The logged-in account as the request sees it."""

    account_id: int
    username: str
    display_name: str
    role: Role
    agency_id: int
    agency_path: str
    agency_name: str
    officer_id: int | None
    must_change_password: bool

    @property
    def actor(self) -> Actor:
        return Actor(account_id=self.account_id, name=self.username)

    @property
    def is_authority(self) -> bool:
        return self.role is Role.AUTHORITY_ADMIN

    @property
    def is_admin(self) -> bool:
        return self.role in (Role.AGENCY_ADMIN, Role.AUTHORITY_ADMIN)

    def can_see_agency_path(self, path: str) -> bool:
        return path.startswith(self.agency_path)


def system_principal() -> Principal:
    """The principal of an operator's console command: the whole tree, recorded as ``system``."""
    return Principal(
        account_id=0,
        username=SYSTEM.name,
        display_name="系统",
        role=Role.AUTHORITY_ADMIN,
        agency_id=0,
        agency_path="/",
        agency_name="全部单位",
        officer_id=None,
        must_change_password=False,
    )


def actor_of(principal: Principal) -> Actor:
    """Who the audit trail names: ``system`` for a console command, else the account."""
    return SYSTEM if principal.account_id == 0 else principal.actor
