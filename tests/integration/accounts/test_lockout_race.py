"""The lockout holds under parallel guesses: counted in the database, it locks at exactly the count.

Each guess runs as a request does: its own session and transaction, committed although the answer
is a refusal (the login route marks it ``keep_refusal``). They are all sent at once, so on
PostgreSQL they race on the account's row; SQLite serialises its writers.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.accounts.models import Account
from app.accounts.services.auth import AccountLocked, LoginFailed, LoginRefused, authenticate
from app.audit.models import AuditEvent
from app.db import make_sessionmaker
from tests.factories import PASSWORD, World

pytestmark = pytest.mark.commits  # every guess commits in its own connection

MAX_FAILURES = 5


@pytest.fixture
def writers(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions as the login route has them: write intent (on SQLite the write lock taken up front)."""
    return make_sessionmaker(engine)


async def _guess(maker: async_sessionmaker[AsyncSession], username: str, password: str) -> str:
    async with maker() as db:
        try:
            await authenticate(
                db, username=username, password=password, max_failures=MAX_FAILURES, lock_minutes=15
            )
        except LoginRefused as exc:
            await db.commit()
            return type(exc).__name__
        await db.commit()
        return "ok"


# 256 at once costs up to 256 argon2 checks (seconds of CPU on 2 cores): the slow step runs it.
@pytest.mark.parametrize("guesses", [16, 64, pytest.param(256, marks=pytest.mark.slow)])
async def test_parallel_wrong_guesses_lock_at_exactly_the_count(
    db: AsyncSession, world: World, writers: async_sessionmaker[AsyncSession], guesses: int
) -> None:
    username = world.admin_a.username
    account_id = world.admin_a.id
    await db.commit()
    answers = await asyncio.gather(*(_guess(writers, username, "wrong-" + str(i)) for i in range(guesses)))

    assert answers.count(LoginFailed.__name__) == MAX_FAILURES - 1
    assert answers.count(AccountLocked.__name__) == guesses - (MAX_FAILURES - 1)
    events = dict(
        (
            await db.execute(
                select(AuditEvent.action, func.count())
                .where(AuditEvent.entity_id == str(account_id))
                .group_by(AuditEvent.action)
            )
        ).all()
    )
    assert events == {"account.login_failed": MAX_FAILURES - 1, "account.lock": 1}
    locked_until, failed = (
        await db.execute(select(Account.locked_until, Account.failed_logins).where(Account.id == account_id))
    ).one()
    assert locked_until is not None and failed == 0
    # Locked: even the right password is refused now.
    assert await _guess(writers, username, PASSWORD) == AccountLocked.__name__


async def test_a_right_password_starts_the_count_over(
    db: AsyncSession, world: World, writers: async_sessionmaker[AsyncSession]
) -> None:
    username = world.admin_a.username
    await db.commit()
    for _ in range(MAX_FAILURES - 1):
        assert await _guess(writers, username, "wrong") == LoginFailed.__name__
    assert await _guess(writers, username, PASSWORD) == "ok"
    for _ in range(MAX_FAILURES - 1):
        assert await _guess(writers, username, "wrong") == LoginFailed.__name__
    assert await _guess(writers, username, "wrong") == AccountLocked.__name__
