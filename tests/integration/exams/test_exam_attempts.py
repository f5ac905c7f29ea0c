"""A candidate's attempts through the JSON API and the pages: paper without keys, autosave order,
submit, time-up (lazily and by the sweep), retakes, review policy, leaving, the qualification grant."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.audit.models import AuditEvent, AuditOutbox
from app.audit.services import audit_verify
from app.audit.tasks import audit_drain_all
from app.exams.models import ExamAnswer, ExamAttempt, ExamQualification
from app.exams.rules import ReviewPolicy
from app.exams.services.answers import answers_save
from app.exams.services.attempts import attempt_start, attempt_submit
from app.exams.services.grading import attempts_sweep
from app.exams.tasks import sweep_forever
from app.lib.static import static_url
from tests.factories import World
from tests.integration.conftest import Client
from tests.integration.exams.conftest import (
    ExamSetup,
    correct_answers,
    make_exam,
    move_deadline,
    officer_principal,
)

SECRET_WORDS = (
    '"answer"',
    '"basis"',
    '"explanation"',
    '"correct"',
    "解析之秘密文字",
    "《测试法》",
    "weights",
)


async def _start(client: Client, setup: ExamSetup, part_id: int | None = None) -> dict:
    r = await client.post(
        f"/api/my/exams/sessions/{setup.session_id}/parts/{part_id or setup.public_part_id}/start"
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_paper_has_no_keys_and_a_full_journey_grants_the_qualification(
    client: Client, db: AsyncSession, world: World, setup: ExamSetup
) -> None:
    await client.login("officer_a")
    r = await client.get("/api/my/exams")
    assert r.status_code == 200
    (mine,) = r.json()
    assert [p["can_start"] for p in mine["parts"]] == [True, True]

    paper = await _start(client, setup)
    assert paper["status"] == "open" and paper["question_count"] == 9
    assert 3590 <= paper["seconds_left"] <= 3600
    for word in SECRET_WORDS:
        assert word not in json.dumps(paper, ensure_ascii=False), word
    allowed = {"position", "type", "type_label", "category_label", "points", "stem", "options"}
    assert all(set(q) == allowed for q in paper["questions"])
    types = [q["type"] for q in paper["questions"]]
    assert types == ["single"] * 5 + ["multiple"] * 2 + ["judge"] * 2
    assert [q["options"] for q in paper["questions"] if q["type"] == "judge"] == [["正确", "错误"]] * 2
    # Starting again resumes the same paper.
    again = await _start(client, setup)
    assert again["id"] == paper["id"] and again["questions"] == paper["questions"]

    html = (await client.get(f"/my/exams/attempts/{paper['id']}", headers={"accept": "text/html"})).text
    assert 'id="countdown"' in html and "/static/js/exam.js" in html
    for word in ("解析之秘密文字", "《测试法》"):
        assert word not in html

    answers = await correct_answers(db, paper["id"], wrong={0})
    r = await client.put(f"/api/my/exams/attempts/{paper['id']}/answers", json={"answers": answers})
    assert r.status_code == 200, r.text
    assert r.json()["saved"] == list(range(9))
    # Now answer question 0 correctly with a newer seq, then a stale (older) save arrives late.
    right0 = (await correct_answers(db, paper["id"]))[0]
    newer = {**right0, "seq": 100}
    stale = {**answers[0], "seq": 50}
    assert (
        await client.put(f"/api/my/exams/attempts/{paper['id']}/answers", json={"answers": [newer]})
    ).status_code == 200
    r = await client.put(f"/api/my/exams/attempts/{paper['id']}/answers", json={"answers": [stale]})
    assert r.status_code == 200
    # A repeated save is a no-op, reported as saved.
    r = await client.put(f"/api/my/exams/attempts/{paper['id']}/answers", json={"answers": [newer]})
    assert r.status_code == 200 and r.json()["saved"] == [0]
    view = (await client.get(f"/api/my/exams/attempts/{paper['id']}")).json()
    assert {a["position"]: a["seq"] for a in view["answers"]}[0] == 100 and view["max_seq"] == 100
    rows = await db.scalar(
        select(func.count()).select_from(ExamAnswer).where(ExamAnswer.attempt_id == paper["id"])
    )
    assert rows == 11  # every save is kept

    result = (await client.post(f"/api/my/exams/attempts/{paper['id']}/submit")).json()
    assert result["status"] == "closed"
    assert result["result"]["score"] == 100 and result["result"]["passed"] is True
    assert result["result"]["closed_by"] == "candidate"
    assert result["result"]["qualification"] is None  # the specialised part is still to come
    # review allowed after submit: the keys are there now, with the basis
    assert result["review"] and result["review"][0]["correct"] == right0["choice"]
    assert result["review"][0]["basis"].startswith("《测试法》")
    double = (await client.post(f"/api/my/exams/attempts/{paper['id']}/submit")).json()
    assert double["result"] == result["result"]
    # closed: saves are refused and change nothing
    r = await client.put(
        f"/api/my/exams/attempts/{paper['id']}/answers", json={"answers": [{**newer, "seq": 101}]}
    )
    assert r.status_code == 409

    special = await _start(client, setup, setup.special_part_id)
    answers = await correct_answers(db, special["id"], wrong={0})
    await client.put(f"/api/my/exams/attempts/{special['id']}/answers", json={"answers": answers})
    result = (await client.post(f"/api/my/exams/attempts/{special['id']}/submit")).json()
    assert result["result"]["score"] == 85 and result["result"]["passed"] is True
    cats = {c["category"]: c for c in result["result"]["categories"]}
    assert cats["specialised_law"]["earned"] == 85 and cats["specialised_law"]["correct"] == 5
    qual = result["result"]["qualification"]
    assert qual is not None and qual["field"] == "市场监管"
    passed_on = dt.date.fromisoformat(qual["passed_on"])
    assert dt.date.fromisoformat(qual["valid_until"]) == passed_on.replace(
        year=passed_on.year + 5
    ) - dt.timedelta(days=1)
    grants = (
        await db.scalars(select(ExamQualification).where(ExamQualification.officer_id == world.officer_a.id))
    ).all()
    assert len(grants) == 1 and grants[0].score == 85 and grants[0].attempt_id == special["id"]
    await db.commit()
    await audit_drain_all(db)  # a server's drain task does this every second
    actions = set((await db.scalars(select(AuditEvent.action))).all())
    assert {
        "exam.attempt.start",
        "exam.answers.save",
        "exam.attempt.close",
        "exam.qualification.grant",
    } <= actions

    html = (await client.get(f"/my/exams/attempts/{special['id']}", headers={"accept": "text/html"})).text
    assert "取得执法资格" in html and "正确答案" in html
    page = (await client.get("/my/exams", headers={"accept": "text/html"})).text
    assert "本部分考试" in page or "通过" in page
    # The exam page's script is fetched while the candidate waits here (in the cache at the start).
    assert f'<link rel="prefetch" href="{static_url("js/exam.js")}" as="script">' in page


async def test_time_up_closes_lazily_with_saved_answers(
    client: Client, db: AsyncSession, world: World, setup: ExamSetup
) -> None:
    await client.login("officer_a")
    paper = await _start(client, setup)
    answers = await correct_answers(db, paper["id"])
    r = await client.put(f"/api/my/exams/attempts/{paper['id']}/answers", json={"answers": answers[:5]})
    assert r.status_code == 200
    # Within the grace a save still counts.
    await move_deadline(db, paper["id"], seconds_ago=5)
    r = await client.put(f"/api/my/exams/attempts/{paper['id']}/answers", json={"answers": answers[5:6]})
    assert r.status_code == 200 and r.json()["seconds_left"] == 0
    await move_deadline(db, paper["id"], seconds_ago=60)
    r = await client.put(f"/api/my/exams/attempts/{paper['id']}/answers", json={"answers": answers[6:]})
    assert r.status_code == 409 and "考试时间已到" in r.json()["detail"]
    view = (await client.get(f"/api/my/exams/attempts/{paper['id']}")).json()
    assert view["status"] == "closed" and view["result"]["closed_by"] == "timeout"
    assert view["result"]["score"] == 5 * 10 + 15  # five singles and one multiple were saved in time


async def test_sweep_closes_attempts_nobody_comes_back_to(
    db: AsyncSession, world: World, setup: ExamSetup
) -> None:
    officer = officer_principal(world)
    attempt = await attempt_start(
        db, principal=officer, session_id=setup.session_id, part_id=setup.public_part_id
    )
    attempt_id = attempt.id
    answers = await correct_answers(db, attempt_id)
    from app.exams.schemas import AnswerIn

    await answers_save(db, principal=officer, attempt_id=attempt_id, answers=[AnswerIn(**a) for a in answers])
    assert await attempts_sweep(db) == 0  # not yet due
    await move_deadline(db, attempt_id, seconds_ago=120)
    assert await attempts_sweep(db) == 1
    assert await attempts_sweep(db) == 0
    row = await db.scalar(
        select(ExamAttempt).where(ExamAttempt.id == attempt_id).execution_options(populate_existing=True)
    )
    assert row is not None and row.status == "closed" and row.closed_by == "timeout" and row.score == 100


@pytest.mark.commits  # the sweeper task's transactions run beside the test's
async def test_the_server_sweeper_task_runs(
    db: AsyncSession, world: World, setup: ExamSetup, app: object
) -> None:
    officer = officer_principal(world)
    attempt = await attempt_start(
        db, principal=officer, session_id=setup.session_id, part_id=setup.public_part_id
    )
    attempt_id = attempt.id
    await move_deadline(db, attempt_id, seconds_ago=120)
    task = asyncio.create_task(sweep_forever(app.state.db_write_sessionmaker, interval=0.05))  # type: ignore[attr-defined]
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            status = await db.scalar(
                select(ExamAttempt.status)
                .where(ExamAttempt.id == attempt_id)
                .execution_options(populate_existing=True)
            )
            await db.commit()
            if status == "closed":
                break
        assert status == "closed"
    finally:
        task.cancel()


async def test_one_retake_after_a_fail_then_no_more(
    client: Client, db: AsyncSession, setup: ExamSetup
) -> None:
    await client.login("officer_a")
    first = await _start(client, setup)
    r = await client.post(f"/api/my/exams/attempts/{first['id']}/submit")
    assert r.json()["result"]["score"] == 0 and r.json()["result"]["passed"] is False
    second = await _start(client, setup)
    assert second["id"] != first["id"] and second["number"] == 2
    await client.post(f"/api/my/exams/attempts/{second['id']}/submit")
    r = await client.post(f"/api/my/exams/sessions/{setup.session_id}/parts/{setup.public_part_id}/start")
    assert r.status_code == 409 and "次数已用完" in r.json()["detail"]
    mine = (await client.get("/api/my/exams")).json()[0]
    public = mine["parts"][0]
    assert public["can_start"] is False and "次数已用完" in public["refusal"]
    assert [a["number"] for a in public["attempts"]] == [1, 2]


async def test_a_passed_part_is_not_taken_again(client: Client, db: AsyncSession, setup: ExamSetup) -> None:
    await client.login("officer_a")
    paper = await _start(client, setup)
    await client.put(
        f"/api/my/exams/attempts/{paper['id']}/answers",
        json={"answers": await correct_answers(db, paper["id"])},
    )
    await client.post(f"/api/my/exams/attempts/{paper['id']}/submit")
    r = await client.post(f"/api/my/exams/sessions/{setup.session_id}/parts/{setup.public_part_id}/start")
    assert r.status_code == 409 and "已通过" in r.json()["detail"]


async def test_review_policies(client: Client, db: AsyncSession, world: World) -> None:
    setup = await make_exam(db, world, review=ReviewPolicy.AFTER_CLOSE)
    await client.login("officer_a")
    paper = await _start(client, setup)
    closed = (await client.post(f"/api/my/exams/attempts/{paper['id']}/submit")).json()
    assert closed["review"] is None and "结束后" in closed["review_note"]
    text = json.dumps(closed, ensure_ascii=False)
    assert "解析之秘密文字" not in text and "basis" not in text
    html = (await client.get(f"/my/exams/attempts/{paper['id']}", headers={"accept": "text/html"})).text
    assert "解析之秘密文字" not in html and "✔ 正确答案" not in html
    # The result page: the score and the note, and (its review not shown) no question of the paper.
    assert 'id="score"' in html and "考试场次结束后可查看正确答案" in html
    assert 'class="question' not in html and paper["questions"][0]["stem"] not in html


async def test_leaving_is_logged_and_submits_when_the_session_says_so(
    client: Client, db: AsyncSession, world: World
) -> None:
    setup = await make_exam(db, world, submit_on_leave=True)
    await client.login("officer_a")
    paper = await _start(client, setup)
    r = await client.post(f"/api/my/exams/attempts/{paper['id']}/leave")
    assert r.status_code == 200 and r.json() == {"submitted": True}
    view = (await client.get(f"/api/my/exams/attempts/{paper['id']}")).json()
    assert view["status"] == "closed" and view["result"]["closed_by"] == "leave"
    await db.commit()
    await audit_drain_all(db)
    assert (
        await db.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "exam.attempt.leave")
        )
        == 1
    )


async def test_leaving_without_submit_only_logs(client: Client, db: AsyncSession, setup: ExamSetup) -> None:
    await client.login("officer_a")
    paper = await _start(client, setup)
    r = await client.post(f"/api/my/exams/attempts/{paper['id']}/leave")
    assert r.json() == {"submitted": False}
    row = await db.scalar(select(ExamAttempt).where(ExamAttempt.id == paper["id"]))
    assert row is not None and row.leave_count == 1 and row.status == "open"


async def test_other_officers_and_the_unenrolled_are_refused(
    client: Client, db: AsyncSession, world: World, setup: ExamSetup
) -> None:
    attempt = await attempt_start(
        db, principal=officer_principal(world), session_id=setup.session_id, part_id=setup.public_part_id
    )
    attempt_id = attempt.id
    from app.lib.enums import Role
    from tests.factories import add_account

    await add_account(db, "officer_b", Role.OFFICER, world.dept_b, officer=world.officer_b)
    await db.commit()
    await client.login("officer_b")
    assert (await client.get(f"/api/my/exams/attempts/{attempt_id}")).status_code == 404
    r = await client.put(
        f"/api/my/exams/attempts/{attempt_id}/answers",
        json={"answers": [{"position": 0, "choice": [0], "seq": 1}]},
    )
    assert r.status_code == 404
    assert (await client.post(f"/api/my/exams/attempts/{attempt_id}/submit")).status_code == 404
    r = await client.post(f"/api/my/exams/sessions/{setup.session_id}/parts/{setup.public_part_id}/start")
    assert r.status_code == 404
    assert (await client.get("/api/my/exams")).json() == []
    assert await db.scalar(select(func.count()).select_from(ExamAnswer)) == 0


async def test_bad_saves_are_refused_with_reasons(client: Client, setup: ExamSetup) -> None:
    await client.login("officer_a")
    paper = await _start(client, setup)
    url = f"/api/my/exams/attempts/{paper['id']}/answers"
    r = await client.put(url, json={"answers": [{"position": 99, "choice": [0], "seq": 1}]})
    assert r.status_code == 400 and "不在本试卷中" in r.json()["detail"]
    r = await client.put(url, json={"answers": [{"position": 0, "choice": [1, 1], "seq": 2}]})
    assert r.status_code == 400
    r = await client.put(url, json={"answers": [{"position": 0, "choice": [9], "seq": 3}]})
    assert r.status_code == 400
    r = await client.put(url, json={"answers": []})
    assert r.status_code == 400


@pytest.mark.commits  # concurrent transactions, each on its own connection
async def test_concurrent_saves_and_submit_lose_no_acknowledged_answer(
    app: object, client: Client, db: AsyncSession, world: World, setup: ExamSetup
) -> None:
    from app.exams.schemas import AnswerIn

    officer = officer_principal(world)
    attempt = await attempt_start(
        db, principal=officer, session_id=setup.session_id, part_id=setup.public_part_id
    )
    attempt_id = attempt.id
    answers = [AnswerIn(**a) for a in await correct_answers(db, attempt_id)]
    maker = app.state.db_write_sessionmaker  # type: ignore[attr-defined]
    acknowledged: list[int] = []

    async def save(a: AnswerIn) -> None:
        async with maker() as s:
            try:
                out = await answers_save(s, principal=officer, attempt_id=attempt_id, answers=[a])
                await s.commit()  # the edge: acknowledged once committed
                acknowledged.extend(out.saved)
            except Exception:  # refused after the close: not acknowledged
                await s.rollback()

    async def submit() -> None:
        async with maker() as s:
            await attempt_submit(s, principal=officer, attempt_id=attempt_id)
            await s.commit()

    await asyncio.gather(*(save(a) for a in answers[:5]), submit(), *(save(a) for a in answers[5:]))
    row = await db.scalar(
        select(ExamAttempt).where(ExamAttempt.id == attempt_id).execution_options(populate_existing=True)
    )
    assert row is not None and row.status == "closed"
    fractions = json.loads(row.result_json)["fractions"]
    for position in acknowledged:
        assert fractions[position] == 1.0, f"acknowledged answer {position} not graded"


async def test_every_start_save_and_submit_reaches_the_audit_chain(
    client: Client, db: AsyncSession, world: World, setup: ExamSetup
) -> None:
    """Exam-day events are committed with their change into the outbox (no wait for the chain's
    lock) and chained by the drain: after it, each start, each stored save (exactly the answers
    stored, not the repeats or the refused) and each submit is a verified event of the chain."""
    await client.login("officer_a")
    paper = await _start(client, setup)
    url = f"/api/my/exams/attempts/{paper['id']}/answers"
    first = {"answers": [{"position": 0, "choice": [1], "seq": 1}, {"position": 2, "choice": [0], "seq": 2}]}
    assert (await client.put(url, json=first)).status_code == 200
    assert (await client.put(url, json=first)).status_code == 200  # a repeat: stores nothing
    second = {"answers": [{"position": 0, "choice": [0], "seq": 3}]}
    assert (await client.put(url, json=second)).status_code == 200
    bad = {"answers": [{"position": 1, "choice": [0], "seq": 4}, {"position": 99, "choice": [0], "seq": 5}]}
    assert (await client.put(url, json=bad)).status_code == 400  # refused as a whole: not logged
    assert (await client.post(f"/api/my/exams/attempts/{paper['id']}/submit")).status_code == 200
    assert (await client.post(f"/api/my/exams/attempts/{paper['id']}/submit")).status_code == 200

    await db.commit()
    pending = await db.scalar(select(func.count()).select_from(AuditOutbox))
    assert pending == 4  # start, two stored saves, close: committed, waiting for the drain
    assert await audit_drain_all(db) == 4
    assert await db.scalar(select(func.count()).select_from(AuditOutbox)) == 0
    events = (
        await db.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_type == "exam_attempt", AuditEvent.entity_id == str(paper["id"]))
            .order_by(AuditEvent.id)
        )
    ).all()
    assert [e.action for e in events] == [
        "exam.attempt.start",
        "exam.answers.save",
        "exam.answers.save",
        "exam.attempt.close",
    ]
    assert all(e.actor_name == "officer_a" for e in events)
    assert json.loads(events[1].data) == {"answers": [[0, 1, "1"], [2, 2, "0"]]}
    assert json.loads(events[2].data) == {"answers": [[0, 3, "0"]]}
    assert json.loads(events[3].data)["by"] == "candidate"
    stored = (await db.execute(select(ExamAnswer.position, ExamAnswer.seq, ExamAnswer.choice))).all()
    assert sorted(stored) == [(0, 1, "1"), (0, 3, "0"), (2, 2, "0")]
    report = await audit_verify(db)
    assert report.ok and report.checked >= 4
    await db.commit()
    assert await audit_drain_all(db) == 0  # drained once: never chained twice


async def test_the_drain_task_chains_the_outbox_and_two_drains_never_fork_the_chain(
    client: Client, db: AsyncSession, engine: AsyncEngine, setup: ExamSetup
) -> None:
    from app.audit.tasks import drain_forever
    from app.db import make_sessionmaker

    await client.login("officer_a")
    for part_id in (setup.public_part_id, setup.special_part_id):
        await _start(client, setup, part_id)
    await db.commit()
    assert await db.scalar(select(func.count()).select_from(AuditOutbox)) == 2
    maker = make_sessionmaker(engine)  # two drains on connections of their own, as in two processes
    tasks = [asyncio.create_task(drain_forever(maker, interval=0.05)) for _ in range(2)]
    try:
        for _ in range(100):
            await db.commit()
            if not await db.scalar(select(func.count()).select_from(AuditOutbox)):
                break
            await asyncio.sleep(0.05)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await db.commit()
    assert await db.scalar(select(func.count()).select_from(AuditOutbox)) == 0
    starts = await db.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "exam.attempt.start")
    )
    assert starts == 2
    assert (await audit_verify(db)).ok
