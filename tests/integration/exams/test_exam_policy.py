"""The exam settings of the authority's policy, varied, through the JSON API and the pages:
retakes (exam_retakes), how long a pass counts (exam_result_valid_years), and the parts of an exam
and their order (exam_parts) with an exam's own override."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.exams.models import Exam, ExamQualification
from app.lib.blueprint import PartPlan, RulePlan
from app.lib.clock import utcnow
from app.lib.policy import Policy, policy_to_json
from tests.factories import World
from tests.integration.conftest import Client
from tests.integration.exams.conftest import (
    PUBLIC_SIZES,
    SPECIAL_SIZES,
    bank_toml,
    correct_answers,
    import_text,
)

PUBLIC_PART = {
    "part": "public",
    "duration_minutes": 60,
    "blueprint": [
        {"category": "public_law", "type": "single", "count": 6, "points": 10},
        {"category": "public_law", "type": "judge", "count": 4, "points": 10},
    ],
}
SPECIAL_PART = {
    "part": "specialised",
    "duration_minutes": 30,
    "blueprint": [
        {"category": "specialised_law", "type": "single", "count": 4, "points": 15},
        {"category": "specialised_law", "type": "judge", "count": 2, "points": 20},
    ],
}


def _plan(raw: dict[str, Any]) -> PartPlan:
    return PartPlan(
        part=raw["part"],
        duration_minutes=raw["duration_minutes"],
        blueprint=[RulePlan(**r) for r in raw["blueprint"]],
    )


async def _world_with(db: AsyncSession, world: World, policy: Policy) -> None:
    await import_text(db, bank_toml("pub", sizes=PUBLIC_SIZES, prefix="P"), "pub.toml")
    await import_text(
        db,
        bank_toml("mkt", part="specialised", field="市场监管", sizes=SPECIAL_SIZES, prefix="M"),
        "mkt.toml",
    )
    world.province.policy_json = policy_to_json(policy)
    await db.commit()


async def _open_session(client: Client, world: World, exam: dict[str, Any]) -> tuple[int, dict[str, int]]:
    """As the authority: open a session of the exam now and enrol officer_a; the part ids by part."""
    now = utcnow()
    r = await client.post(
        f"/api/exams/{exam['id']}/sessions",
        json={
            "title": "第一场",
            "opens_at": (now - dt.timedelta(hours=1)).isoformat(),
            "closes_at": (now + dt.timedelta(hours=3)).isoformat(),
            "review_policy": "after_submit",
        },
    )
    assert r.status_code == 201, r.text
    session_id = r.json()["id"]
    r = await client.post(
        f"/api/exams/sessions/{session_id}/enrolments", json={"officer_ids": [world.officer_a.id]}
    )
    assert r.status_code == 200 and r.json()["added"] == 1, r.text
    return session_id, {p["part"]: p["id"] for p in exam["parts"]}


# ---------------------------------------------------------------- retakes (补考)


@pytest.mark.parametrize(
    "policy_retakes,exam_retakes,attempts_allowed",
    [
        (0, None, 1),  # the policy allows no retake: one attempt
        (1, None, 2),  # the default
        (2, None, 3),
        (2, 0, 1),  # the exam's own number wins over the policy's
        (0, 2, 3),
    ],
)
async def test_retakes_follow_the_policy_unless_the_exam_sets_them(
    client: Client,
    db: AsyncSession,
    world: World,
    policy_retakes: int,
    exam_retakes: int | None,
    attempts_allowed: int,
) -> None:
    await _world_with(db, world, Policy(exam_retakes=policy_retakes))
    await client.login("sfj_admin")
    body: dict[str, Any] = {"title": "补考次数", "parts": [PUBLIC_PART]}
    if exam_retakes is not None:
        body["retakes"] = exam_retakes
    r = await client.post("/api/exams", json=body)
    assert r.status_code == 201, r.text
    exam = r.json()
    assert exam["retakes"] == (policy_retakes if exam_retakes is None else exam_retakes)
    session_id, part_ids = await _open_session(client, world, exam)

    await client.login("officer_a")
    start = f"/api/my/exams/sessions/{session_id}/parts/{part_ids['public']}/start"
    for number in range(1, attempts_allowed + 1):
        r = await client.post(start)
        assert r.status_code == 200, (number, r.text)
        assert r.json()["number"] == number
        r = await client.post(f"/api/my/exams/attempts/{r.json()['id']}/submit")
        assert r.json()["result"]["passed"] is False  # nothing answered: 0 points
    r = await client.post(start)
    assert r.status_code == 409 and "次数已用完" in r.json()["detail"]
    mine = (await client.get("/api/my/exams")).json()[0]
    assert mine["retakes"] == attempts_allowed - 1
    assert mine["parts"][0]["can_start"] is False
    assert len(mine["parts"][0]["attempts"]) == attempts_allowed


# ---------------------------------------------------------------- how long a pass counts


@pytest.mark.parametrize("years", [3, 1, 5])
async def test_a_pass_counts_for_the_policys_years(
    client: Client, db: AsyncSession, world: World, years: int
) -> None:
    await _world_with(db, world, Policy(exam_result_valid_years=years))
    await client.login("sfj_admin")
    r = await client.post("/api/exams", json={"title": "有效期", "parts": [PUBLIC_PART]})
    assert r.status_code == 201, r.text
    session_id, part_ids = await _open_session(client, world, r.json())

    await client.login("officer_a")
    r = await client.post(f"/api/my/exams/sessions/{session_id}/parts/{part_ids['public']}/start")
    paper = r.json()
    await client.put(
        f"/api/my/exams/attempts/{paper['id']}/answers",
        json={"answers": await correct_answers(db, paper["id"])},
    )
    result = (await client.post(f"/api/my/exams/attempts/{paper['id']}/submit")).json()["result"]
    qual = result["qualification"]
    assert qual is not None, result
    passed_on = dt.date.fromisoformat(qual["passed_on"])
    expected = passed_on.replace(year=passed_on.year + years) - dt.timedelta(days=1)
    assert dt.date.fromisoformat(qual["valid_until"]) == expected
    grant = await db.scalar(
        select(ExamQualification).where(ExamQualification.officer_id == world.officer_a.id)
    )
    assert grant is not None and grant.valid_until == expected


# ---------------------------------------------------------------- the parts and their order


@pytest.mark.parametrize(
    "policy_parts,exam_parts,order,source",
    [
        # the policy's default, public law first
        ([PUBLIC_PART, SPECIAL_PART], None, ["public", "specialised"], "policy"),
        # a province that examines the officer's field first
        ([SPECIAL_PART, PUBLIC_PART], None, ["specialised", "public"], "policy"),
        # a province with one part only
        ([PUBLIC_PART], None, ["public"], "policy"),
        # an exam's own parts and order override the policy's
        ([PUBLIC_PART, SPECIAL_PART], [SPECIAL_PART, PUBLIC_PART], ["specialised", "public"], "exam"),
        ([SPECIAL_PART, PUBLIC_PART], [PUBLIC_PART], ["public"], "exam"),
    ],
)
async def test_exam_parts_come_from_the_policy_unless_the_exam_sets_its_own(
    client: Client,
    db: AsyncSession,
    world: World,
    policy_parts: list[dict[str, Any]],
    exam_parts: list[dict[str, Any]] | None,
    order: list[str],
    source: str,
) -> None:
    await _world_with(db, world, Policy(exam_parts=[_plan(p) for p in policy_parts]))
    await client.login("sfj_admin")
    body: dict[str, Any] = {"title": "考试部分"}
    if exam_parts is not None:
        body["parts"] = exam_parts
    r = await client.post("/api/exams", json=body)
    assert r.status_code == 201, r.text
    exam = r.json()
    assert [p["part"] for p in exam["parts"]] == order
    assert [p["position"] for p in exam["parts"]] == list(range(1, len(order) + 1))
    assert exam["parts_source"] == source
    wanted = {p["part"]: p for p in (exam_parts or policy_parts)}
    for part in exam["parts"]:
        assert part["duration_minutes"] == wanted[part["part"]]["duration_minutes"]
        assert [(b["category"], b["type"], b["count"]) for b in part["blueprint"]] == [
            (b["category"], b["type"], b["count"]) for b in wanted[part["part"]]["blueprint"]
        ]
    html = (await client.get(f"/exams/{exam['id']}", headers={"accept": "text/html"})).text
    assert ("按发证机关政策" if source == "policy" else "本考试单独设置") in html

    # the candidate sees the parts in that order
    await _open_session(client, world, exam)
    await client.login("officer_a")
    mine = (await client.get("/api/my/exams")).json()[0]
    assert [p["part"] for p in mine["parts"]] == order


async def test_policy_parts_the_banks_cannot_serve_are_refused_with_the_reason(
    client: Client, db: AsyncSession, world: World
) -> None:
    greedy = {
        **PUBLIC_PART,
        "blueprint": [{"category": "public_law", "type": "single", "count": 20, "points": 5}],
    }
    await _world_with(db, world, Policy(exam_parts=[_plan(greedy)]))
    await client.login("sfj_admin")
    r = await client.post("/api/exams", json={"title": "题库不够"})
    assert r.status_code == 400
    assert "发证机关规定的公共法律知识" in r.json()["detail"] and "只有 8 题" in r.json()["detail"]
    # the exam's own parts still work where the policy's cannot
    r = await client.post("/api/exams", json={"title": "自定部分", "parts": [PUBLIC_PART]})
    assert r.status_code == 201 and r.json()["parts_source"] == "exam"
    assert await db.scalar(select(func.count()).select_from(Exam)) == 1


async def test_the_form_offers_the_policys_parts_and_an_own_order(
    client: Client, db: AsyncSession, world: World
) -> None:
    await _world_with(
        db,
        world,
        Policy(exam_parts=[_plan(SPECIAL_PART), _plan(PUBLIC_PART)], exam_retakes=2, exam_pass_mark=75),
    )
    await client.login("sfj_admin")
    page = (await client.get("/exams/new", headers={"accept": "text/html"})).text
    assert "按发证机关的规定" in page and "专门法律知识：30 分钟" in page
    assert "（2 次）" in page and "（75 分）" in page  # the hints give the authority's numbers
    assert 'value="specialised,public" selected' in page

    base = {"title": "页面定义", "pass_mark": "", "retakes": "", "multiple_scoring": "all_or_nothing"}
    r = await client.form("/exams/new", {**base, "parts_mode": "policy"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    by_policy = (
        await client.get(r.headers["location"].split("?")[0].replace("/exams/", "/api/exams/"))
    ).json()
    assert [p["part"] for p in by_policy["parts"]] == ["specialised", "public"]
    assert (
        by_policy["parts_source"] == "policy" and by_policy["retakes"] == 2 and by_policy["pass_mark"] == 75
    )

    own = {
        **base,
        "parts_mode": "exam",
        "parts_order": "public,specialised",
        "public_on": "1",
        "public_minutes": "50",
        "public_blueprint": "公共法律知识 单选题 6 10\n公共法律知识 判断题 4 10",
        "specialised_on": "1",
        "specialised_minutes": "20",
        "specialised_blueprint": "专门法律知识 单选题 4 15\n专门法律知识 判断题 2 20",
    }
    r = await client.form("/exams/new", {**own, "parts_order": "public"})
    assert r.status_code == 400 and "请选择考试部分的顺序" in r.text
    r = await client.form("/exams/new", {**own, "public_minutes": "0"})
    assert r.status_code == 400 and "考试时长应为 1 到 600 之间的整数" in r.text
    assert await db.scalar(select(func.count()).select_from(Exam)) == 1
    r = await client.form("/exams/new", own, follow_redirects=False)
    assert r.status_code == 303, r.text
    mine = (await client.get(r.headers["location"].split("?")[0].replace("/exams/", "/api/exams/"))).json()
    assert [(p["part"], p["duration_minutes"]) for p in mine["parts"]] == [
        ("public", 50),
        ("specialised", 20),
    ]
    assert mine["parts_source"] == "exam"
