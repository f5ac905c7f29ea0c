"""Helpers for the exam tests: small generated banks with known keys, an exam, an open session."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.exams.bankfile import parse_bank
from app.exams.models import ExamAttempt, ExamQuestion
from app.exams.rules import ExamPart, MultipleScoring, QuestionCategory, QuestionType, ReviewPolicy
from app.exams.schemas import EnrolIn, ExamIn, PartIn, RuleIn, SessionIn
from app.exams.services.banks import bank_import
from app.exams.services.exams import exam_create, exam_detail
from app.exams.services.sessions import session_create, session_enrol
from app.lib.clock import utcnow
from app.lib.enums import Role
from app.lib.security import Principal, system_principal
from tests.factories import World

PUBLIC_BLUEPRINT = [
    ("public_law", "single", 5, 10.0),
    ("public_law", "multiple", 2, 15.0),
    ("public_law", "judge", 2, 10.0),
]
SPECIAL_BLUEPRINT = [("specialised_law", "single", 4, 15.0), ("specialised_law", "judge", 2, 20.0)]


def bank_toml(
    code: str, *, part: str = "public", field: str = "", prefix: str = "T", sizes: dict[tuple[str, str], int]
) -> str:
    """A bank file whose keys follow a pattern: single → B, multiple → AC, judge → true for even numbers."""
    lines = [
        "[bank]",
        f'code = "{code}"',
        f'title = "测试题库 {code}"',
        f'part = "{part}"',
        f'field = "{field}"',
        "",
    ]
    n = 0
    for (category, qtype), count in sizes.items():
        for _ in range(count):
            n += 1
            lines += [
                "[[questions]]",
                f'id = "{prefix}-{n:04d}"',
                f'type = "{qtype}"',
                f'category = "{category}"',
                "difficulty = 2",
                f'stem = "{code} 第 {n} 题的题干（{qtype}）"',
            ]
            if qtype == "judge":
                lines.append(f"answer = {'true' if n % 2 == 0 else 'false'}")
            else:
                lines.append(f'options = ["选项甲{n}", "选项乙{n}", "选项丙{n}", "选项丁{n}"]')
                lines.append('answer = "B"' if qtype == "single" else 'answer = "AC"')
            lines += [f'basis = "《测试法》第 {n} 条"', f'explanation = "解析之秘密文字{code}{n}"', ""]
    return "\n".join(lines)


PUBLIC_SIZES = {("public_law", "single"): 8, ("public_law", "multiple"): 4, ("public_law", "judge"): 4}
SPECIAL_SIZES = {("specialised_law", "single"): 6, ("specialised_law", "judge"): 4}


async def import_text(db: AsyncSession, text: str, source: str = "test.toml") -> Any:
    bank, errors = parse_bank(text, source=source)
    assert bank is not None, errors
    report = await bank_import(db, principal=system_principal(), bank=bank, source=source)
    await db.commit()  # the test is the edge: what the app reads next must be committed
    return report


def authority(world: World) -> Principal:
    a = world.authority
    p = world.province
    return Principal(
        account_id=a.id,
        username=a.username,
        display_name=a.display_name,
        role=Role(a.role),
        agency_id=p.id,
        agency_path=p.path,
        agency_name=p.name,
        officer_id=None,
        must_change_password=False,
    )


def officer_principal(world: World, *, b: bool = False) -> Principal:

    officer = world.officer_b if b else world.officer_a
    agency = world.dept_b if b else world.dept_a
    return Principal(
        account_id=world.officer_account.id if not b else 999_999,
        username="officer_b" if b else "officer_a",
        display_name=officer.name,
        role=Role.OFFICER,
        agency_id=agency.id,
        agency_path=agency.path,
        agency_name=agency.name,
        officer_id=officer.id,
        must_change_password=False,
    )


def _rules(spec: list[tuple[str, str, int, float]]) -> list[RuleIn]:
    return [
        RuleIn(category=QuestionCategory(c), type=QuestionType(t), count=n, points=p) for c, t, n, p in spec
    ]


@dataclass
class ExamSetup:
    exam_id: int
    session_id: int
    public_part_id: int
    special_part_id: int


async def make_exam(
    db: AsyncSession,
    world: World,
    *,
    review: ReviewPolicy = ReviewPolicy.AFTER_SUBMIT,
    submit_on_leave: bool = False,
    retakes: int | None = 1,
    scoring: MultipleScoring = MultipleScoring.ALL_OR_NOTHING,
    enrol: bool = True,
) -> ExamSetup:
    await import_text(db, bank_toml("pub", sizes=PUBLIC_SIZES, prefix="P"), "pub.toml")
    await import_text(
        db,
        bank_toml("mkt", part="specialised", field="市场监管", sizes=SPECIAL_SIZES, prefix="M"),
        "mkt.toml",
    )
    auth = authority(world)
    exam = await exam_create(
        db,
        principal=auth,
        data=ExamIn(
            title="测试资格考试",
            retakes=retakes,
            multiple_scoring=scoring,
            parts=[
                PartIn(part=ExamPart.PUBLIC, duration_minutes=60, blueprint=_rules(PUBLIC_BLUEPRINT)),
                PartIn(part=ExamPart.SPECIALISED, duration_minutes=30, blueprint=_rules(SPECIAL_BLUEPRINT)),
            ],
        ),
    )
    now = utcnow()
    s = await session_create(
        db,
        principal=auth,
        exam_id=exam.id,
        data=SessionIn(
            title="第一场",
            opens_at=now - dt.timedelta(hours=1),
            closes_at=now + dt.timedelta(hours=3),
            review_policy=review,
            submit_on_leave=submit_on_leave,
        ),
    )
    if enrol:
        await session_enrol(
            db, principal=auth, session_id=s.id, data=EnrolIn(officer_ids=[world.officer_a.id])
        )
    detail = await exam_detail(db, auth, exam.id)
    out = ExamSetup(exam.id, s.id, detail.parts[0].id, detail.parts[1].id)
    await db.commit()  # end the read (without expiring): later reads must see what the app commits
    return out


async def correct_answers(
    db: AsyncSession, attempt_id: int, *, wrong: set[int] = frozenset()
) -> list[dict[str, Any]]:  # type: ignore[assignment]
    """The display choices that answer the attempt's paper correctly (or wrongly at ``wrong`` positions)."""
    await db.commit()
    attempt = await db.scalar(
        select(ExamAttempt).where(ExamAttempt.id == attempt_id).execution_options(populate_existing=True)
    )
    assert attempt is not None
    paper = json.loads(attempt.paper_json)
    keys = {
        q.id: (q.type, json.loads(q.answer_json))
        for q in (
            await db.scalars(select(ExamQuestion).where(ExamQuestion.id.in_([p[0] for p in paper])))
        ).all()
    }
    out = []
    for position, (qid, order, _pts, _cat, _typ) in enumerate(paper):
        qtype, answer = keys[qid]
        key = {0 if answer else 1} if qtype == "judge" else set(answer)
        display = sorted(i for i, bank_index in enumerate(order) if bank_index in key)
        if position in wrong:
            display = [i for i in range(len(order)) if i not in display][:1]
        out.append({"position": position, "choice": display, "seq": 10 + position})
    await db.commit()
    return out


async def move_deadline(db: AsyncSession, attempt_id: int, *, seconds_ago: int) -> None:
    await db.execute(
        update(ExamAttempt)
        .where(ExamAttempt.id == attempt_id)
        .values(deadline_at=utcnow() - dt.timedelta(seconds=seconds_ago))
    )
    await db.commit()


@pytest.fixture
async def setup(db: AsyncSession, world: World) -> ExamSetup:
    return await make_exam(db, world)
