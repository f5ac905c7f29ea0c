"""The indicator dashboard and the ready-made lists: figures, their roster links, the SVG charts."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency, Officer
from app.exams.models import Exam, ExamAttempt, ExamPartRow, ExamSession
from app.lib.policy import CIVIL_SERVICE_GRADES, DEFAULT_POLICY, policy_to_json
from tests.factories import World
from tests.integration.conftest import Client
from tests.integration.rosters.conftest import YEAR, rate


def by_key(indicators: list[dict]) -> dict[str, dict]:
    return {i["key"]: i for i in indicators}


async def test_dashboard_figures_of_the_province(
    client: Client, world: World, people: dict[str, Officer]
) -> None:
    await client.login("sfj_admin")
    r = await client.get(f"/api/rosters/dashboard?year={YEAR}")
    assert r.status_code == 200
    board = r.json()
    assert board["agency_id"] == world.province.id and board["year"] == YEAR
    ind = by_key(board["indicators"])
    # In post: 李明 赵一 钱二 周四 吴五 王芳 (孙三 retired); eligible staff types: the same six.
    assert (ind["certified"]["numerator"], ind["certified"]["denominator"]) == (2, 6)
    assert ind["certified"]["percent"] == 33.3
    assert (ind["training"]["numerator"], ind["training"]["denominator"]) == (3, 6)
    # Enforcement posts: 李明 赵一 周四 吴五 王芳 = 5; legal review: 钱二 = 1 → 20 % ≥ 5 %.
    lr = ind["legal_review"]
    assert (lr["numerator"], lr["denominator"], lr["percent"], lr["target"], lr["ok"]) == (
        1,
        5,
        20.0,
        5.0,
        True,
    )
    # Each figure links to the roster rows behind it, and those rows are its numerator.
    assert (ind["unqualified"]["numerator"], ind["exit"]["numerator"]) == (2, 1)
    for key in ("certified", "training", "legal_review", "unqualified", "exit"):
        href = ind[key]["href"]
        assert href.startswith("/rosters?")
        query = urlsplit(href).query
        body = (await client.get(f"/api/rosters?{query}")).json()
        assert body["total"] == ind[key]["numerator"], (key, href)
        if key in ("certified", "training", "legal_review"):
            assert dict(parse_qsl(query))["status"] == "active"
    # One row per city (and the province's own officers, none here).
    children = {c["agency_name"]: by_key(c["indicators"]) for c in board["children"]}
    assert set(children) == {world.city_a.name, world.city_b.name}
    assert children[world.city_b.name]["certified"]["numerator"] == 1
    assert children[world.city_a.name]["legal_review"]["denominator"] == 4


async def test_dashboard_scope_and_page(client: Client, world: World, people: dict[str, Officer]) -> None:
    await client.login("admin_a")
    board = (await client.get(f"/api/rosters/dashboard?year={YEAR}")).json()
    assert board["agency_id"] == world.city_a.id
    assert by_key(board["indicators"])["certified"]["denominator"] == 5  # 王芳 of city B is not counted
    r = await client.get(f"/rosters/dashboard?year={YEAR}")
    assert r.status_code == 200
    html = r.text
    assert html.count("<svg") == 4 and "<script" not in html
    assert "年度资格考试通过率" in html
    assert "持证率" in html and "法制审核人员占执法岗位人员比例" in html
    assert f"/rosters?agency_id={world.dept_a.id}" in html  # a bar links to its agency's rows


async def test_ready_made_lists_open_their_roster_views(
    client: Client, world: World, people: dict[str, Officer]
) -> None:
    await client.login("sfj_admin")
    r = await client.get("/rosters/lists")
    assert r.status_code == 200
    assert "年度培训学时不足" in r.text and "无有效执法资格的在岗人员" in r.text
    assert "/rosters?status=active&amp;exam=none" in r.text
    assert "年度考核不合格（风险人员）" in r.text and "exit=open" in r.text
    assert "cert=duplicate" in r.text and "cert=expiring" in r.text


async def test_exam_pass_rate_counts_candidates_who_passed_every_part(
    client: Client, db: AsyncSession, world: World, people: dict[str, Officer]
) -> None:
    """考试通过率: per officer and session, every part passed (a passed retake counts); by the
    agency the officer was in when sitting; only results closed in the year."""
    exam = Exam(agency_id=world.province.id, title="执法资格考试", created_by_name="t")
    db.add(exam)
    await db.flush()
    parts = [
        ExamPartRow(exam_id=exam.id, position=i, part=p, title=p, duration_minutes=60, blueprint_json="[]")
        for i, p in enumerate(("public", "specialised"), start=1)
    ]
    at = dt.datetime(YEAR, 6, 1, 9, tzinfo=dt.UTC)
    session = ExamSession(
        exam_id=exam.id,
        agency_id=world.province.id,
        title="上半年",
        opens_at=at,
        closes_at=at + dt.timedelta(hours=4),
        created_by_name="t",
    )
    db.add_all([*parts, session])
    await db.flush()

    def attempt(
        officer: Officer, part: ExamPartRow, passed: bool, *, number: int = 1, year: int = YEAR
    ) -> None:
        closed = dt.datetime(year, 6, 1, 10, tzinfo=dt.UTC)
        db.add(
            ExamAttempt(
                session_id=session.id,
                part_id=part.id,
                officer_id=officer.id,
                agency_id=officer.agency_id,
                number=number,
                seed=1,
                paper_json="[]",
                question_count=0,
                status="closed",
                started_at=closed - dt.timedelta(minutes=50),
                deadline_at=closed,
                closed_at=closed,
                score=80.0 if passed else 40.0,
                passed=passed,
            )
        )

    general, special = parts
    attempt(people["李明"], general, True)  # city A: both parts passed
    attempt(people["李明"], special, True)
    attempt(people["赵一"], general, True)  # city A: special failed, then passed at the retake
    attempt(people["赵一"], special, False)
    attempt(people["赵一"], special, True, number=2)
    attempt(people["钱二"], general, False)  # city A: failed one part, sat only that one
    attempt(people["王芳"], general, True)  # city B: general passed, special failed
    attempt(people["王芳"], special, False)
    attempt(people["吴五"], general, True, year=YEAR - 1)  # closed the year before: not this year's
    await db.commit()

    await client.login("sfj_admin")
    board = (await client.get(f"/api/rosters/dashboard?year={YEAR}")).json()
    rate = by_key(board["indicators"])["exam_pass"]
    assert (rate["numerator"], rate["denominator"], rate["percent"]) == (2, 4, 50.0)
    assert rate["href"] == "/exams"  # the authority's exam results behind the figure
    children = {c["agency_name"]: by_key(c["indicators"])["exam_pass"] for c in board["children"]}
    assert (children[world.city_a.name]["numerator"], children[world.city_a.name]["denominator"]) == (2, 3)
    assert (children[world.city_b.name]["numerator"], children[world.city_b.name]["denominator"]) == (0, 1)
    await client.login("admin_b")  # a city sees its own candidates only
    own = by_key((await client.get(f"/api/rosters/dashboard?year={YEAR}")).json()["indicators"])["exam_pass"]
    assert (own["numerator"], own["denominator"], own["href"]) == (0, 1, None)  # no exam pages for a city


async def test_the_dashboard_counts_the_failing_grade_of_the_authoritys_scale(
    client: Client, db: AsyncSession, world: World, people: dict[str, Officer]
) -> None:
    """On the civil-service scale (优秀 / 称职 / 基本称职 / 不称职) 不称职 fails and 基本称职 does not:
    the dashboard figure, its link and the ready-made list follow the authority's policy, not a
    hard-coded 不合格."""
    policy = DEFAULT_POLICY.with_grades(CIVIL_SERVICE_GRADES)
    await db.execute(
        update(Agency).where(Agency.id == world.province.id).values(policy_json=policy_to_json(policy))
    )
    await rate(db, people["李明"], YEAR, "不称职")
    await rate(db, people["周四"], YEAR, "基本称职")
    await db.commit()
    await client.login("sfj_admin")
    board = (await client.get(f"/api/rosters/dashboard?year={YEAR}")).json()
    ind = by_key(board["indicators"])["unqualified"]
    assert ind["numerator"] == 1 and "不称职" in ind["label"]
    query = urlsplit(ind["href"]).query
    assert dict(parse_qsl(query))["rating"] == "failing"
    rows = (await client.get(f"/api/rosters?{query}")).json()["items"]
    assert [row["name"] for row in rows] == ["李明"]
    # The filter by name still works for any grade of the scale; an unknown grade is refused.
    basic = (await client.get(f"/api/rosters?rating=基本称职&rating_year={YEAR}")).json()["items"]
    assert [row["name"] for row in basic] == ["周四"]
    r = await client.get("/api/rosters?rating=差")
    assert r.status_code == 400 and "考核等次" in r.text
