"""The demo data leaves an open exam session that zhifa01 can take at once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account
from app.demo.province import generate_demo
from app.exams.models import ExamQuestion
from app.exams.services.attempts import attempt_start, my_sessions
from app.lib.enums import Role
from app.lib.security import Principal


async def test_demo_session_is_open_for_zhifa01(db: AsyncSession, database_url: str) -> None:
    report = await generate_demo(
        database_url=database_url, officers=30, seed=7, if_empty=False, progress=False
    )
    assert "执法资格考试：题库试题 466 道" in report
    assert await db.scalar(select(ExamQuestion.id).where(ExamQuestion.is_current.is_(False))) is None
    zhifa = await db.scalar(select(Account).where(Account.username == "zhifa01"))
    assert zhifa is not None and zhifa.officer_id is not None
    officer = Principal(
        account_id=zhifa.id,
        username="zhifa01",
        display_name="",
        role=Role.OFFICER,
        agency_id=zhifa.agency_id,
        agency_path="/",
        agency_name="",
        officer_id=zhifa.officer_id,
        must_change_password=False,
    )
    await db.commit()
    (mine,) = await my_sessions(db, officer)
    assert mine.session.state == "open" and mine.session.review_policy == "after_submit"
    assert [(p.part, p.question_count, p.can_start) for p in mine.parts] == [
        ("public", 60, True),
        ("specialised", 37, True),
    ]
    for part in mine.parts:  # both parts can really be drawn from the starter banks (市场监管)
        attempt = await attempt_start(db, principal=officer, session_id=mine.session.id, part_id=part.part_id)
        assert attempt.question_count == part.question_count
