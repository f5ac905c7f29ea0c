"""First-run helpers for operators: the first authority administrator."""

from __future__ import annotations

from sqlalchemy import func, select

from app.accounts.models import Account, Agency
from app.db import make_engine, make_sessionmaker
from app.lib.audit import SYSTEM, audit_record
from app.lib.enums import Role
from app.lib.security import hash_password
from app.settings import get_settings


async def create_authority_admin(
    *, username: str, password: str, display_name: str, agency_id: int | None
) -> int:
    engine = make_engine(get_settings().database_url)
    try:
        async with make_sessionmaker(engine)() as db:
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
            await audit_record(
                db,
                actor=SYSTEM,
                action="account.create",
                entity_type="account",
                entity_id=account.id,
                agency_id=agency.id,
                data={"username": username, "role": account.role, "via": "create-admin"},
            )
            await db.commit()
            return account.id
    finally:
        await engine.dispose()
