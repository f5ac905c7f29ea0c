"""The autosave fast lane (app.exams.fastlane): on PostgreSQL it answers the ordinary save itself,
with the same body, headers and rows as the normal route; every other case is handed to the route,
which answers exactly as before (the status, the field, the reason) with nothing stored."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account
from app.audit.models import AuditOutbox
from app.db import DriverPool
from app.exams import pages
from app.exams.models import ExamAnswer, ExamAttempt
from app.exams.rules import ReviewPolicy
from app.exams.schemas import EnrolIn
from app.exams.services import answers, attempts
from app.exams.services.sessions import session_enrol
from app.lib import guards
from app.lib.enums import Role
from tests.factories import World, add_account
from tests.integration.conftest import AppWith, Client, Connect
from tests.integration.exams.conftest import (
    ExamSetup,
    authority,
    correct_answers,
    make_exam,
    move_deadline,
)


@pytest.fixture(autouse=True)
def renew_every_response(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both paths renew the session cookie on every response here, so that the comparisons cover
    the renewal (in service it moves at most once a minute: ``guards.RENEW_AFTER_SECONDS``)."""
    monkeypatch.setattr(guards, "RENEW_AFTER_SECONDS", 0)


@pytest.fixture
async def clients(app_with: AppWith, connect: Connect) -> AsyncIterator[dict[str, Client]]:
    """Two apps on the same database: the fast lane on, and off."""
    async with (
        connect(await app_with(EXAM_FAST_LANE="1"), "http://t.local") as a,
        connect(await app_with(EXAM_FAST_LANE="0"), "http://t.local") as b,
    ):
        yield {"fast": a, "normal": b}


def _counted(monkeypatch: pytest.MonkeyPatch, service: str) -> list[int]:
    """The attempt of each call of a normal route's service (the fast lane never calls it)."""
    calls: list[int] = []
    module = {"answers_save": answers, "attempt_submit": attempts, "attempt_start": pages}[service]
    real = getattr(module, service)

    async def counted(*args: Any, **kw: Any) -> Any:
        calls.append(kw.get("attempt_id", kw.get("part_id")))
        return await real(*args, **kw)

    monkeypatch.setattr(module, service, counted)
    return calls


@pytest.fixture
def route_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    return _counted(monkeypatch, "answers_save")


async def _start(client: Client, setup: ExamSetup) -> dict[str, Any]:
    r = await client.post(f"/api/my/exams/sessions/{setup.session_id}/parts/{setup.public_part_id}/start")
    assert r.status_code == 200, r.text
    return r.json()


async def _rows(db: AsyncSession) -> tuple[list[tuple[Any, ...]], list[str]]:
    await db.commit()
    answers = (
        await db.execute(
            select(ExamAnswer.attempt_id, ExamAnswer.position, ExamAnswer.seq, ExamAnswer.choice).order_by(
                ExamAnswer.attempt_id, ExamAnswer.position, ExamAnswer.seq
            )
        )
    ).all()
    events = (
        await db.scalars(
            select(AuditOutbox.data).where(AuditOutbox.action == "exam.answers.save").order_by(AuditOutbox.id)
        )
    ).all()
    await db.commit()
    return [tuple(a) for a in answers], list(events)


async def _started(clients: dict[str, Client], setup: ExamSetup) -> tuple[Client, dict[str, Any]]:
    """officer_a logged in on the fast-lane app, with the public part started."""
    fast = clients["fast"]
    await fast.login("officer_a")
    return fast, await _start(fast, setup)


def _one(position: int, choice: list[int], seq: int) -> dict[str, Any]:
    return {"answers": [{"position": position, "choice": choice, "seq": seq}]}


async def test_the_ordinary_save_is_answered_by_the_fast_lane_as_the_route_would(
    backend: str, clients: dict[str, Client], db: AsyncSession, setup: ExamSetup, route_calls: list[int]
) -> None:
    fast, normal = clients["fast"], clients["normal"]
    for c in (fast, normal):
        await c.login("officer_a")
    paper = await _start(fast, setup)
    url = f"/api/my/exams/attempts/{paper['id']}/answers"

    r_fast = await fast.put(url, json={"answers": [{"position": 0, "choice": [1], "seq": 1}]})
    r_norm = await normal.put(url, json={"answers": [{"position": 1, "choice": [1], "seq": 2}]})
    assert r_fast.status_code == r_norm.status_code == 200, (r_fast.text, r_norm.text)
    # The fast lane answered (the route ran once, for the normal app): PostgreSQL's driver pool,
    # SQLite's exam writer.
    assert route_calls == [paper["id"]]
    body_fast, body_norm = r_fast.json(), r_norm.json()
    assert body_fast["saved"] == [0] and body_norm["saved"] == [1]
    for key in ("server_now", "seconds_left"):
        body_fast.pop(key), body_norm.pop(key)
    assert body_fast == {**body_norm, "saved": [0]}
    assert r_fast.headers["content-type"] == r_norm.headers["content-type"]

    def without_varying(headers: Any) -> dict[str, str]:
        return {k: v for k, v in headers.items() if k not in ("content-length", "date", "set-cookie")}

    assert without_varying(r_fast.headers) == without_varying(r_norm.headers)

    def cookie_attributes(r: Any) -> tuple[str, list[str]]:
        [cookie] = r.headers.get_list("set-cookie")
        name_value, *attributes = [p.strip() for p in cookie.split(";")]
        return name_value.split("=", 1)[0], sorted(a for a in attributes if not a.startswith("Expires"))

    assert cookie_attributes(r_fast) == cookie_attributes(r_norm)
    # The renewed cookie is a live session: the next request with it works on either app.
    assert (await fast.get(f"/api/my/exams/attempts/{paper['id']}")).status_code == 200

    answers, events = await _rows(db)
    assert answers == [(paper["id"], 0, 1, "1"), (paper["id"], 1, 2, "1")]
    assert [json.loads(e) for e in events] == [{"answers": [[0, 1, "1"]]}, {"answers": [[1, 2, "1"]]}]

    # A repeat stores nothing more and answers 200 with the position saved.
    r = await fast.put(url, json={"answers": [{"position": 0, "choice": [1], "seq": 1}]})
    assert r.status_code == 200 and r.json()["saved"] == [0]
    # A stale save is stored beside the newer one; grading takes the highest seq.
    r = await fast.put(url, json={"answers": [{"position": 1, "choice": [2], "seq": 1}]})
    assert r.status_code == 200 and r.json()["saved"] == [1]
    answers, events = await _rows(db)
    assert len(answers) == 3 and len(events) == 3
    r = await fast.get(f"/api/my/exams/attempts/{paper['id']}")
    assert {a["position"]: a["choice"] for a in r.json()["answers"]} == {0: [1], 1: [1]}


# (the case, the body, status, a word of the answer, whether the save reached the route's service)
DECLINED: list[tuple[str, Any, int, str, bool]] = [
    ("a position not on the paper", _one(99, [0], 1), 400, "不在本试卷中", True),
    (
        "one bad position among good ones stores none of them",
        {"answers": [{"position": 0, "choice": [0], "seq": 5}, {"position": 99, "choice": [0], "seq": 6}]},
        400,
        "不在本试卷中",
        True,
    ),
    ("a choice given twice", _one(0, [1, 1], 1), 400, "答案无效", True),
    ("an option index out of range", _one(0, [9], 1), 400, "", False),
    ("no answers", {"answers": []}, 400, "", False),
    (
        "a string where a number belongs",
        {"answers": [{"position": "x", "choice": [0], "seq": 1}]},
        400,
        "",
        False,
    ),
    ("an unknown field", {"answers": [{"position": 0, "choice": [0], "seq": 1, "x": 1}]}, 400, "", False),
]


@pytest.mark.parametrize(
    ("body", "status", "word", "reaches_route"),
    [c[1:] for c in DECLINED],
    ids=[c[0] for c in DECLINED],
)
async def test_bad_saves_get_the_routes_answer_and_store_nothing(
    clients: dict[str, Client],
    db: AsyncSession,
    setup: ExamSetup,
    route_calls: list[int],
    body: Any,
    status: int,
    word: str,
    reaches_route: bool,
) -> None:
    fast, paper = await _started(clients, setup)
    r = await fast.put(f"/api/my/exams/attempts/{paper['id']}/answers", json=body)
    assert r.status_code == status, r.text
    assert word in r.json()["detail"]
    assert route_calls == ([paper["id"]] if reaches_route else [])
    assert await _rows(db) == ([], [])


async def _deactivate(db: AsyncSession, world: World) -> None:
    await db.execute(update(Account).where(Account.id == world.officer_account.id).values(is_active=False))


async def _new_epoch(db: AsyncSession, world: World) -> None:
    await db.execute(
        update(Account)
        .where(Account.id == world.officer_account.id)
        .values(auth_epoch=Account.auth_epoch + 1)
    )


async def _must_change(db: AsyncSession, world: World) -> None:
    await db.execute(
        update(Account).where(Account.id == world.officer_account.id).values(must_change_password=True)
    )


SESSION_CASES: list[tuple[str, Any, int]] = [
    ("the account was deactivated", _deactivate, 401),
    ("the password was changed elsewhere (new epoch)", _new_epoch, 401),
    ("the initial password must be changed first", _must_change, 403),
]


@pytest.mark.parametrize(
    ("change", "status"), [c[1:] for c in SESSION_CASES], ids=[c[0] for c in SESSION_CASES]
)
async def test_a_session_that_no_longer_holds_is_refused_as_before(
    clients: dict[str, Client], db: AsyncSession, world: World, setup: ExamSetup, change: Any, status: int
) -> None:
    fast, paper = await _started(clients, setup)
    await change(db, world)
    await db.commit()
    r = await fast.put(f"/api/my/exams/attempts/{paper['id']}/answers", json=_one(0, [1], 1))
    assert r.status_code == status, r.text
    assert await _rows(db) == ([], [])


async def test_csrf_cookie_and_session_forgeries_are_refused(
    clients: dict[str, Client], db: AsyncSession, setup: ExamSetup, route_calls: list[int]
) -> None:
    fast, paper = await _started(clients, setup)
    url = f"/api/my/exams/attempts/{paper['id']}/answers"
    raw = fast.raw
    token = await fast.csrf()
    session = raw.cookies.get("zf_session")
    assert session

    def jar(session_cookie: str) -> None:
        raw.cookies.clear()
        raw.cookies.set("zf_session", session_cookie)
        raw.cookies.set("zf_csrf", token)

    # No token, a token of another secret, a token whose MAC is off by one character.
    for header in (
        {},
        {"x-csrftoken": "a" * 64},
        {"x-csrftoken": token[:-1] + ("0" if token[-1] != "0" else "1")},
    ):
        r = await raw.put(url, json=_one(0, [1], 1), headers=header)
        assert r.status_code == 403, (header, r.text)
    # A session cookie with one byte changed is no session at all.
    jar(session[:20] + ("A" if session[20] != "A" else "B") + session[21:])
    r = await fast.put(url, json=_one(0, [1], 1))
    assert r.status_code == 401, r.text
    # Not JSON: the route says what is wrong with the body.
    jar(session)
    r = await raw.put(
        url, content=b"position=0", headers={"x-csrftoken": token, "content-type": "text/plain"}
    )
    assert r.status_code == 400, r.text
    assert route_calls == []  # every one was refused before the service
    assert await _rows(db) == ([], [])


async def test_a_login_older_than_the_absolute_limit_is_refused(
    clients: dict[str, Client], db: AsyncSession, setup: ExamSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, paper = await _started(clients, setup)
    later = time.time() + 13 * 3600  # past the 12-hour absolute timeout
    monkeypatch.setattr(time, "time", lambda: later)
    r = await fast.put(f"/api/my/exams/attempts/{paper['id']}/answers", json=_one(0, [1], 1))
    assert r.status_code == 401, r.text
    assert await _rows(db) == ([], [])


async def test_another_officers_attempt_a_closed_one_and_one_past_time_up(
    clients: dict[str, Client], db: AsyncSession, world: World, setup: ExamSetup
) -> None:
    fast, paper = await _started(clients, setup)
    url = f"/api/my/exams/attempts/{paper['id']}/answers"
    # Another officer's session: the attempt does not exist for them.
    await add_account(db, "officer_b", Role.OFFICER, world.dept_b, officer=world.officer_b)
    await db.commit()
    await fast.login("officer_b")
    r = await fast.put(url, json=_one(0, [1], 1))
    assert r.status_code == 404, r.text
    assert "答卷不存在" in r.json()["detail"]
    await fast.login("officer_a")
    # An attempt that nobody closed past its deadline and grace: the save closes it (time-up).
    await move_deadline(db, paper["id"], seconds_ago=600)
    r = await fast.put(url, json=_one(0, [1], 1))
    assert r.status_code == 409 and "考试时间已到" in r.json()["detail"]
    status, closed_by = (
        await db.execute(
            select(ExamAttempt.status, ExamAttempt.closed_by).where(ExamAttempt.id == paper["id"])
        )
    ).one()
    assert (status, closed_by) == ("closed", "timeout")
    # Closed: refused again, nothing stored.
    r = await fast.put(url, json=_one(1, [1], 2))
    assert r.status_code == 409
    assert await db.scalar(select(func.count()).select_from(ExamAnswer)) == 0


async def test_an_oversized_body_goes_to_the_route(
    clients: dict[str, Client], db: AsyncSession, setup: ExamSetup, route_calls: list[int]
) -> None:
    fast, paper = await _started(clients, setup)
    answers = [{"position": i % 9, "choice": [0], "seq": i + 1} for i in range(2000)]
    r = await fast.put(f"/api/my/exams/attempts/{paper['id']}/answers", json={"answers": answers})
    assert r.status_code == 400, r.text
    assert await _rows(db) == ([], [])


async def test_a_save_just_inside_the_grace_is_stored_by_the_fast_lane(
    backend: str, clients: dict[str, Client], db: AsyncSession, setup: ExamSetup, route_calls: list[int]
) -> None:
    fast, paper = await _started(clients, setup)
    await move_deadline(db, paper["id"], seconds_ago=5)  # past the deadline, within the grace
    r = await fast.put(f"/api/my/exams/attempts/{paper['id']}/answers", json=_one(0, [1], 1))
    assert r.status_code == 200 and r.json()["seconds_left"] == 0
    assert route_calls == []
    assert (await _rows(db))[0] == [(paper["id"], 0, 1, "1")]


# ---------------------------------------------------------------- the submit


@pytest.fixture
def submit_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    return _counted(monkeypatch, "attempt_submit")


@pytest.fixture
async def later_review(db: AsyncSession, world: World) -> ExamSetup:
    """An exam whose session shows the correct answers only once it has closed (the usual policy)."""
    return await make_exam(db, world, review=ReviewPolicy.AFTER_CLOSE)


async def _closed(db: AsyncSession, attempt_id: int) -> tuple[Any, ...]:
    await db.commit()
    row = (
        await db.execute(
            select(
                ExamAttempt.status,
                ExamAttempt.closed_by,
                ExamAttempt.score,
                ExamAttempt.passed,
                ExamAttempt.result_json,
            ).where(ExamAttempt.id == attempt_id)
        )
    ).one()
    await db.commit()
    return tuple(row)


async def _close_events(db: AsyncSession) -> list[tuple[str, str, Any]]:
    await db.commit()
    rows = (
        await db.execute(
            select(AuditOutbox.entity_id, AuditOutbox.actor_name, AuditOutbox.data)
            .where(AuditOutbox.action == "exam.attempt.close")
            .order_by(AuditOutbox.id)
        )
    ).all()
    await db.commit()
    return [(e, a, json.loads(d)) for e, a, d in rows]


async def _answer(client: Client, db: AsyncSession, attempt_id: int, *, wrong: set[int]) -> None:
    answers = await correct_answers(db, attempt_id, wrong=wrong)
    r = await client.put(f"/api/my/exams/attempts/{attempt_id}/answers", json={"answers": answers})
    assert r.status_code == 200, r.text


FAIL = {5, 6, 7, 8}
"""Wrong at these positions: the five single-choice questions right, 50 of 100 points, a fail."""


async def _two_failing_candidates(
    fast: Client, normal: Client, db: AsyncSession, world: World, setup: ExamSetup
) -> tuple[dict[str, Any], dict[str, Any]]:
    """officer_a on the app with the lane, officer_b on the one without, each with an attempt of
    ``setup``'s session answered to fail: (officer_a's paper, officer_b's paper)."""
    await add_account(db, "officer_b", Role.OFFICER, world.dept_b, officer=world.officer_b)
    await session_enrol(
        db,
        principal=authority(world),
        session_id=setup.session_id,
        data=EnrolIn(officer_ids=[world.officer_b.id]),
    )
    await db.commit()
    await fast.login("officer_a")
    await normal.login("officer_b")
    mine, theirs = await _start(fast, setup), await _start(normal, setup)
    for client, paper in ((fast, mine), (normal, theirs)):
        await _answer(client, db, paper["id"], wrong=FAIL)
    return mine, theirs


async def test_the_ordinary_submit_is_answered_by_the_fast_lane_as_the_route_would(
    backend: str,
    clients: dict[str, Client],
    db: AsyncSession,
    world: World,
    later_review: ExamSetup,
    submit_calls: list[int],
) -> None:
    fast, normal = clients["fast"], clients["normal"]
    mine, theirs = await _two_failing_candidates(fast, normal, db, world, later_review)

    r_fast = await fast.post(f"/api/my/exams/attempts/{mine['id']}/submit")
    r_norm = await normal.post(f"/api/my/exams/attempts/{theirs['id']}/submit")
    assert r_fast.status_code == r_norm.status_code == 200, (r_fast.text, r_norm.text)
    # PostgreSQL: the fast lane answered (the route ran once, for the normal app); SQLite: no lane.
    assert submit_calls == [theirs["id"]]

    # The same answer apart from what differs between two candidates: the ids, the clock, the draw.
    def comparable(body: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in body.items() if k not in ("id", "started_at", "deadline_at", "server_now")}
        out["questions"] = [
            {k: v for k, v in q.items() if k not in ("stem", "options")} for q in body["questions"]
        ]
        out["answers"] = [a["position"] for a in body["answers"]]
        out["result"] = {k: v for k, v in body["result"].items() if k != "closed_at"}
        return out

    body_fast, body_norm = r_fast.json(), r_norm.json()
    assert comparable(body_fast) == comparable(body_norm)
    assert body_fast["result"]["score"] == 50 and body_fast["result"]["passed"] is False
    assert body_fast["status"] == "closed" and body_fast["seconds_left"] == 0
    assert body_fast["review"] is None and "考试场次结束后" in body_fast["review_note"]
    # The questions as the paper showed them, the answers as saved.
    assert [(q["stem"], q["options"]) for q in body_fast["questions"]] == [
        (q["stem"], q["options"]) for q in mine["questions"]
    ]
    assert body_fast["answers"] == (await fast.get(f"/api/my/exams/attempts/{mine['id']}")).json()["answers"]

    def without_varying(headers: Any) -> dict[str, str]:
        return {k: v for k, v in headers.items() if k not in ("content-length", "date", "set-cookie")}

    assert without_varying(r_fast.headers) == without_varying(r_norm.headers)
    [cookie] = r_fast.headers.get_list("set-cookie")
    assert cookie.startswith("zf_session=") and "HttpOnly" in cookie

    # The same rows: the close, and its audit event.
    assert (await _closed(db, mine["id"]))[:4] == ("closed", "candidate", 50.0, False)
    assert await _closed(db, mine["id"]) == await _closed(db, theirs["id"])
    events = await _close_events(db)
    assert [(e, a) for e, a, _d in events] == [
        (str(mine["id"]), "officer_a"),
        (str(theirs["id"]), "officer_b"),
    ]
    assert events[0][2] == events[1][2] == {"by": "candidate", "score": 50.0, "passed": False, "answered": 9}

    # A second submit: the same result, from the route.
    again = await fast.post(f"/api/my/exams/attempts/{mine['id']}/submit")
    assert again.status_code == 200
    assert {k: v for k, v in again.json().items() if k != "server_now"} == {
        k: v for k, v in body_fast.items() if k != "server_now"
    }
    assert len(await _close_events(db)) == 2


@pytest.mark.parametrize("prefer", ["return=minimal", 'handling=lenient, RETURN="minimal"; x=1'])
async def test_a_submit_asking_for_no_paper_back_gets_the_result_alone_from_lane_and_route(
    backend: str,
    clients: dict[str, Client],
    db: AsyncSession,
    world: World,
    later_review: ExamSetup,
    submit_calls: list[int],
    prefer: str,
) -> None:
    """``Prefer: return=minimal`` (RFC 7240), as the exam page submits: the same result without the
    questions, the saved answers and the review, from the lane and the route alike."""
    fast, normal = clients["fast"], clients["normal"]
    mine, theirs = await _two_failing_candidates(fast, normal, db, world, later_review)

    headers = {"prefer": prefer}
    r_fast = await fast.post(f"/api/my/exams/attempts/{mine['id']}/submit", headers=headers)
    r_norm = await normal.post(f"/api/my/exams/attempts/{theirs['id']}/submit", headers=headers)
    assert r_fast.status_code == r_norm.status_code == 200, (r_fast.text, r_norm.text)
    assert submit_calls == [theirs["id"]]
    for r in (r_fast, r_norm):
        body = r.json()
        assert r.headers["preference-applied"] == "return=minimal"
        assert body["questions"] == [] and body["answers"] == [] and body["review"] is None
        assert body["status"] == "closed" and body["question_count"] == len(mine["questions"])
        assert body["result"]["score"] == 50 and body["result"]["passed"] is False
        assert {c["label"] for c in body["result"]["categories"]}
    # A second submit (the route: the attempt is closed) gives the same result, minimal or not.
    again = await fast.post(f"/api/my/exams/attempts/{mine['id']}/submit", headers=headers)
    assert again.status_code == 200 and again.json()["result"] == r_fast.json()["result"]
    assert again.json()["questions"] == []
    full = await fast.post(f"/api/my/exams/attempts/{mine['id']}/submit")
    assert "preference-applied" not in full.headers and len(full.json()["questions"]) == len(
        mine["questions"]
    )
    # Without the paper the answer is a fraction of the full one.
    assert len(r_fast.content) * 3 < len(full.content)


async def test_a_submit_past_time_up_is_closed_as_timeout_by_the_fast_lane(
    backend: str,
    clients: dict[str, Client],
    db: AsyncSession,
    later_review: ExamSetup,
    submit_calls: list[int],
) -> None:
    fast, paper = await _started(clients, later_review)
    await _answer(fast, db, paper["id"], wrong=FAIL)
    await move_deadline(db, paper["id"], seconds_ago=600)
    r = await fast.post(f"/api/my/exams/attempts/{paper['id']}/submit")
    assert r.status_code == 200, r.text
    assert r.json()["result"]["closed_by"] == "timeout" and r.json()["result"]["score"] == 50
    assert submit_calls == []
    assert (await _closed(db, paper["id"]))[:3] == ("closed", "timeout", 50.0)


async def _uncached(clients: dict[str, Client]) -> None:
    for client in clients.values():
        assert client.app is not None
        client.app.state.exam_cache.clear()


async def _nothing(clients: dict[str, Client]) -> None:
    return None


# (the case, the review policy, wrong positions, what to do before the submit, a word of the answer)
HANDED_OVER: list[tuple[str, ReviewPolicy, set[int], Any, str]] = [
    ("a pass (the route grants the qualification)", ReviewPolicy.AFTER_CLOSE, set(), _nothing, "passed"),
    ("the answers are shown right after submit", ReviewPolicy.AFTER_SUBMIT, FAIL, _nothing, "review"),
    ("a question version this process has not cached", ReviewPolicy.AFTER_CLOSE, FAIL, _uncached, "result"),
]


@pytest.mark.parametrize(
    ("review", "wrong", "before", "word"), [c[1:] for c in HANDED_OVER], ids=[c[0] for c in HANDED_OVER]
)
async def test_submits_that_need_more_go_to_the_route(
    clients: dict[str, Client],
    db: AsyncSession,
    world: World,
    submit_calls: list[int],
    review: ReviewPolicy,
    wrong: set[int],
    before: Any,
    word: str,
) -> None:
    setup = await make_exam(db, world, review=review)
    fast, paper = await _started(clients, setup)
    await _answer(fast, db, paper["id"], wrong=wrong)
    await before(clients)
    r = await fast.post(f"/api/my/exams/attempts/{paper['id']}/submit")
    assert r.status_code == 200, r.text
    body = r.json()
    assert submit_calls == [paper["id"]]
    assert body["result"]["passed"] is (not wrong)
    if word == "review":
        assert len(body["review"]) == len(paper["questions"])
    assert (await _closed(db, paper["id"]))[0] == "closed"
    assert len(await _close_events(db)) == 1


async def test_refused_submits_get_the_routes_answer_and_close_nothing(
    clients: dict[str, Client],
    db: AsyncSession,
    world: World,
    later_review: ExamSetup,
    submit_calls: list[int],
) -> None:
    fast, paper = await _started(clients, later_review)
    url = f"/api/my/exams/attempts/{paper['id']}/submit"
    token = await fast.csrf()
    # No CSRF token, a forged one.
    for header in ({}, {"x-csrftoken": token[:-1] + ("0" if token[-1] != "0" else "1")}):
        r = await fast.raw.post(url, headers=header)
        assert r.status_code == 403, (header, r.text)
    # Another officer: the attempt does not exist for them.
    await add_account(db, "officer_b", Role.OFFICER, world.dept_b, officer=world.officer_b)
    await db.commit()
    await fast.login("officer_b")
    r = await fast.post(url)
    assert r.status_code == 404 and "答卷不存在" in r.json()["detail"]
    # The account deactivated after login.
    await fast.login("officer_a")
    await _deactivate(db, world)
    await db.commit()
    r = await fast.post(url)
    assert r.status_code == 401, r.text
    assert submit_calls == [paper["id"]]  # only the other officer's reached the service
    assert (await _closed(db, paper["id"]))[0] == "open"
    assert await _close_events(db) == []


@pytest.mark.commits  # concurrent requests: each needs a connection of its own
async def test_saves_racing_the_fast_submit_lose_no_acknowledged_answer(
    clients: dict[str, Client], db: AsyncSession, later_review: ExamSetup
) -> None:
    fast, paper = await _started(clients, later_review)
    answers = await correct_answers(db, paper["id"])
    url = f"/api/my/exams/attempts/{paper['id']}"
    acknowledged: list[int] = []

    async def save(a: dict[str, Any]) -> None:
        r = await fast.put(f"{url}/answers", json={"answers": [a]})
        if r.status_code == 200:
            acknowledged.extend(r.json()["saved"])
        else:
            assert r.status_code == 409, r.text  # refused after the close: not acknowledged

    results = await asyncio.gather(
        *(save(a) for a in answers[:4]), fast.post(f"{url}/submit"), *(save(a) for a in answers[4:])
    )
    submitted = next(r for r in results if r is not None)
    assert submitted.status_code == 200, submitted.text
    status, _by, _score, _passed, result_json = await _closed(db, paper["id"])
    assert status == "closed"
    fractions = json.loads(result_json)["fractions"]
    for position in acknowledged:
        assert fractions[position] == 1.0, f"acknowledged answer {position} not graded"


def _save_in_flight(
    database_url: str, attempt_id: int, choice: list[int]
) -> tuple[threading.Thread, threading.Event, list[BaseException]]:
    """A save as ``_SAVE`` makes it, on its own thread and connection: the attempt share-locked and
    position 5 answered, committed only once another statement waits for that lock (whatever the
    test's loop is doing meanwhile).
    Returns the thread, an event set once the lock is held, and the thread's errors."""
    locked = threading.Event()
    errors: list[BaseException] = []

    async def save() -> None:
        import asyncpg

        conn = await asyncpg.connect(DriverPool(database_url).dsn)
        try:
            async with conn.transaction():
                await conn.execute("SELECT id FROM exam_attempts WHERE id = $1 FOR SHARE", attempt_id)
                await conn.execute(
                    "INSERT INTO exam_answers (attempt_id, position, seq, choice, saved_at) "
                    "VALUES ($1, 5, 500, $2, now())",
                    attempt_id,
                    ",".join(map(str, choice)),
                )
                locked.set()
                for _ in range(500):
                    waiting = await conn.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()"
                    )
                    if waiting:
                        return  # commits
                    await asyncio.sleep(0.01)
                raise AssertionError("no submit waited for the save's lock")
        finally:
            await conn.close()

    def run() -> None:
        try:
            asyncio.run(save())
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            locked.set()  # never leave the test waiting

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, locked, errors


async def test_a_save_that_commits_while_the_fast_submit_waits_for_the_lock_is_graded(
    backend: str,
    clients: dict[str, Client],
    db: AsyncSession,
    database_url: str,
    later_review: ExamSetup,
    submit_calls: list[int],
) -> None:
    """The lane reads the answers in its locking statement, whose snapshot predates the lock. A save
    that held the share lock and commits while the submit waits is not in that snapshot: the lane's
    close must see that and leave the submit to the route, which grades the saved answer."""
    fast, paper = await _started(clients, later_review)
    await _answer(fast, db, paper["id"], wrong=FAIL)
    correct = {a["position"]: a["choice"] for a in await correct_answers(db, paper["id"])}
    if backend == "postgresql":
        saver, locked, errors = _save_in_flight(database_url, paper["id"], correct[5])
        assert await asyncio.to_thread(locked.wait, 10)  # the save holds its lock before the submit
        r = await fast.post(f"/api/my/exams/attempts/{paper['id']}/submit")
        saver.join(10)
        assert not errors, errors
    else:  # one writer at a time: the save commits, then the submit
        r = await fast.put(f"/api/my/exams/attempts/{paper['id']}/answers", json=_one(5, correct[5], 500))
        assert r.status_code == 200, r.text
        r = await fast.post(f"/api/my/exams/attempts/{paper['id']}/submit")
    assert r.status_code == 200, r.text
    # The lane declined: on PostgreSQL for the slipped-in save; on SQLite (the save committed in
    # an earlier batch of the writer) because the attempt now passes, which the route grants.
    assert submit_calls == [paper["id"]]
    expected = 50 + paper["questions"][5]["points"]  # and the slipped-in answer's points
    assert r.json()["result"]["score"] == expected
    status, _by, score, _passed, result_json = await _closed(db, paper["id"])
    assert (status, score) == ("closed", expected)
    assert json.loads(result_json)["fractions"][5] == 1.0
    assert len(await _close_events(db)) == 1


# A save names each answer by (position, seq): the browser numbers its saves. A repeat of a stored
# one is a no-op (a retry after a lost answer); the same (position, seq) with another choice is a
# client bug or a replay, and is refused with nothing of that save stored.
SEQ_CASES = [
    # (what is sent, status, what stands stored afterwards at (position, seq))
    ([(0, [1], 1)], 200, {(0, 1): "1"}),
    ([(0, [2], 1)], 409, {(0, 1): "1"}),
    ([(0, [1], 1)], 200, {(0, 1): "1"}),
    ([(0, [2], 2), (1, [3], 1)], 200, {(0, 1): "1", (0, 2): "2", (1, 1): "3"}),
    ([(2, [1], 1), (1, [1], 1)], 409, {(0, 1): "1", (0, 2): "2", (1, 1): "3"}),
]


@pytest.mark.parametrize("app", ["fast", "normal"])
async def test_a_repeated_seq_with_another_answer_is_refused_and_stores_nothing(
    clients: dict[str, Client], db: AsyncSession, setup: ExamSetup, app: str
) -> None:
    client = clients[app]
    await client.login("officer_a")
    paper = await _start(client, setup)
    url = f"/api/my/exams/attempts/{paper['id']}/answers"
    for sent, status, stored in SEQ_CASES:
        body = {"answers": [{"position": p, "choice": c, "seq": s} for p, c, s in sent]}
        r = await client.put(url, json=body)
        assert r.status_code == status, (sent, r.text)
        if status == 409:
            assert r.json()["errors"][0]["field"] == "answers" and "不同的答案" in r.json()["detail"]
        rows, _events = await _rows(db)
        assert {(p, s): c for _a, p, s, c in rows} == stored, sent


async def test_the_page_start_on_sqlite_goes_through_the_writer_and_writes_what_the_route_writes(
    backend: str,
    clients: dict[str, Client],
    db: AsyncSession,
    setup: ExamSetup,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The start form's ordinary case (a first start) is inserted by the SQLite exam writer, the
    reads and the draw made without the write lock; the attempt and its audit event are the route's.
    A second post of the form resumes the same attempt (the route)."""
    route = _counted(monkeypatch, "attempt_start")
    fast = clients["fast"]
    await fast.login("officer_a")
    url = f"/my/exams/sessions/{setup.session_id}/parts/{setup.public_part_id}/start"
    r = await fast.form(url, {}, follow_redirects=False)
    assert r.status_code == 303, r.text
    attempt_id = int(r.headers["location"].rsplit("/", 1)[1])
    assert len(route) == (0 if backend == "sqlite" else 1)  # the route's service, called or not
    page = await fast.get(r.headers["location"])
    assert page.status_code == 200 and f'data-attempt="{attempt_id}"' in page.text
    again = await fast.form(url, {}, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == r.headers["location"]
    await db.commit()
    attempt = await db.scalar(select(ExamAttempt).where(ExamAttempt.id == attempt_id))
    assert attempt is not None and (attempt.status, attempt.number) == ("open", 1)
    assert len(json.loads(attempt.paper_json)) == attempt.question_count > 0
    (event,) = (await db.scalars(select(AuditOutbox).where(AuditOutbox.action == "exam.attempt.start"))).all()
    assert (event.entity_id, event.actor_name) == (str(attempt_id), "officer_a")
    assert json.loads(event.data) == {
        "session_id": setup.session_id,
        "part": "public",
        "number": 1,
        "seed": attempt.seed,
        "questions": attempt.question_count,
        "deadline_at": attempt.deadline_at.isoformat(),
    }
