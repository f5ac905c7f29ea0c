"""The result page after a submit, read straight on the driver (``views.closed_result_on_driver``:
SQLite's in-place reader, PostgreSQL's pool): the same view as the ORM's path whenever it answers,
and no answer (the ORM's path then) whenever the page needs more than the attempt's row: a pass (its
qualification), a review shown, an attempt not closed, or not the principal's."""

from __future__ import annotations

import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from app.exams.rules import ReviewPolicy
from app.exams.services.views import attempt_view, closed_result_on_driver
from app.lib.clock import utcnow
from tests.factories import World
from tests.integration.conftest import Client
from tests.integration.exams.conftest import correct_answers, make_exam, officer_principal

CASES = [
    # (review policy, answered wrongly at, served in place)
    pytest.param(ReviewPolicy.NEVER, set(range(9)), True, id="failed-no-review"),
    pytest.param(ReviewPolicy.AFTER_CLOSE, set(range(9)), True, id="failed-review-after-the-session"),
    pytest.param(ReviewPolicy.NEVER, {0, 1, 2, 3, 4}, True, id="failed-by-some-answers"),
    pytest.param(ReviewPolicy.AFTER_SUBMIT, set(range(9)), False, id="review-shown-now"),
    pytest.param(ReviewPolicy.NEVER, set(), False, id="passed-names-its-qualification"),
]


@pytest.mark.parametrize(("review", "wrong", "in_place"), CASES)
async def test_the_result_read_in_place_is_the_orm_paths_view_or_nothing(
    client: Client,
    app: Litestar,
    db: AsyncSession,
    world: World,
    review: ReviewPolicy,
    wrong: set[int],
    in_place: bool,
) -> None:
    drivers = {"reader": app.state.sqlite_reader, "driver": app.state.driver}
    assert any(drivers.values())  # SQLite's file reader, or PostgreSQL's pool
    setup = await make_exam(db, world, review=review)
    await client.login("officer_a")
    r = await client.post(f"/api/my/exams/sessions/{setup.session_id}/parts/{setup.public_part_id}/start")
    assert r.status_code == 200, r.text
    attempt_id = r.json()["id"]
    principal = officer_principal(world)
    assert await closed_result_on_driver(principal, attempt_id, utcnow(), **drivers) is None  # open
    answers = await correct_answers(db, attempt_id, wrong=wrong)
    r = await client.put(f"/api/my/exams/attempts/{attempt_id}/answers", json={"answers": answers})
    assert r.status_code == 200, r.text
    r = await client.post(f"/api/my/exams/attempts/{attempt_id}/submit", headers={"prefer": "return=minimal"})
    assert r.status_code == 200 and r.json()["status"] == "closed", r.text

    now = utcnow()
    expected = await attempt_view(db, principal, attempt_id, now=now, paper_if_shown=True)
    assert expected.result is not None and expected.result.passed is (not wrong)
    got = await closed_result_on_driver(principal, attempt_id, now, **drivers)
    if in_place:
        assert got == expected
        assert got is not None and got.questions == [] and got.answers == [] and got.review is None
    else:
        assert got is None
    # Not theirs, or no such attempt: nothing (the ORM's path answers 404).
    other = officer_principal(world, b=True)
    assert await closed_result_on_driver(other, attempt_id, now, **drivers) is None
    assert await closed_result_on_driver(principal, 2**63, now, **drivers) is None
    assert await closed_result_on_driver(principal, attempt_id + 1, now, **drivers) is None

    page = await client.get(f"/my/exams/attempts/{attempt_id}", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert f"{expected.result.score:g}" in page.text
    assert ("未通过" in page.text) is bool(wrong)


async def test_the_result_page_is_the_same_with_and_without_the_driver(
    client: Client, app: Litestar, db: AsyncSession, world: World
) -> None:
    setup = await make_exam(db, world, review=ReviewPolicy.NEVER)
    await client.login("officer_a")
    r = await client.post(f"/api/my/exams/sessions/{setup.session_id}/parts/{setup.public_part_id}/start")
    attempt_id = r.json()["id"]
    answers = await correct_answers(db, attempt_id, wrong=set(range(9)))
    await client.put(f"/api/my/exams/attempts/{attempt_id}/answers", json={"answers": answers})
    r = await client.post(f"/my/exams/attempts/{attempt_id}/submit", follow_redirects=False)
    assert r.status_code == 303

    def body(page: object) -> str:
        text: str = page.text  # type: ignore[attr-defined]
        return "\n".join(line for line in text.splitlines() if "csrf" not in line.lower())

    with_driver = await client.get(f"/my/exams/attempts/{attempt_id}")
    reader, driver = app.state.sqlite_reader, app.state.driver
    app.state.sqlite_reader = app.state.driver = None  # the ORM's path
    try:
        without = await client.get(f"/my/exams/attempts/{attempt_id}")
    finally:
        app.state.sqlite_reader, app.state.driver = reader, driver
    assert with_driver.status_code == without.status_code == 200
    assert body(with_driver) == body(without)
    assert "本场考试不公布答案" in with_driver.text and "未通过" in with_driver.text
