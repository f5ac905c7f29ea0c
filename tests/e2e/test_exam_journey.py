"""执法资格考试 in the browser: an officer on a phone starts the exam, answers, loses the network,
reloads mid-exam, resumes the same paper with the server's time, submits and sees the result."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import OFFICER, Server, login, shot

pytestmark = pytest.mark.e2e


def _clock_seconds(page: Page) -> int:
    text = page.locator("#countdown").inner_text()
    parts = [int(p) for p in text.split(":")]
    return parts[-1] + 60 * parts[-2] + (3600 * parts[-3] if len(parts) == 3 else 0)


def _option(page: Page, position: int, index: int = 0):  # type: ignore[no-untyped-def]
    return page.locator(f"#q{position} input").nth(index)


def test_officer_takes_the_exam_with_a_reload_and_a_network_loss(phone: Page, server: Server) -> None:
    page = phone
    login(page, *OFFICER)
    page.get_by_role("link", name="我的考试").first.click()
    expect(page.get_by_role("heading", name="我的考试")).to_be_visible()
    page.get_by_role("button", name=re.compile("开始考试：公共法律知识")).click()
    expect(page).to_have_url(re.compile(r"/my/exams/attempts/\d+$"))
    attempt_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#countdown")).to_have_text(re.compile(r"^(59|60):\d\d$"))
    questions = page.locator("fieldset.question")
    assert questions.count() == 60
    stems = [questions.nth(i).locator(".stem").inner_text() for i in range(5)]

    for position in range(3):
        _option(page, position).check()
    expect(page.locator("#save-status")).to_contain_text("已自动保存")
    expect(page.locator("#answered-count")).to_have_text("已答 3 / 60 题")
    shot(page, "exam-phone-answering")

    # The network drops: the change is kept in the browser and sent when it comes back.
    page.context.set_offline(True)
    _option(page, 3).check()
    expect(page.locator("#save-status")).to_contain_text("保存失败", timeout=5000)
    page.context.set_offline(False)
    expect(page.locator("#save-status")).to_contain_text("已自动保存", timeout=10_000)

    # An unsaved change right before a reload survives it too (localStorage), then is saved.
    _option(page, 4).check()
    before = _clock_seconds(page)
    page.reload()
    expect(page.locator("#countdown")).not_to_have_text("--:--")
    assert _clock_seconds(page) <= before
    assert [questions.nth(i).locator(".stem").inner_text() for i in range(5)] == stems  # the same paper
    for position in range(5):
        expect(_option(page, position)).to_be_checked()
    # Sent either as the page went away (keepalive) or by the reloaded page from localStorage.
    saved = 0
    for _ in range(50):
        saved = server.query(
            "SELECT COUNT(DISTINCT position) FROM exam_answers WHERE attempt_id = ?", attempt_id
        )[0][0]
        if saved == 5:
            break
        page.wait_for_timeout(200)
    assert saved == 5
    # A reload is not leaving the exam: nothing logged (a session may submit on leaving).
    assert server.query("SELECT leave_count FROM exam_attempts WHERE id = ?", attempt_id)[0][0] == 0
    # Switching to another app hides the page: that is logged (this session does not submit on it).
    page.evaluate(
        """() => {
        Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true });
        document.dispatchEvent(new Event("visibilitychange"));
        Object.defineProperty(document, "visibilityState", { value: "visible", configurable: true });
        document.dispatchEvent(new Event("visibilitychange"));
    }"""
    )
    left = 0
    for _ in range(50):
        left = server.query("SELECT leave_count FROM exam_attempts WHERE id = ?", attempt_id)[0][0]
        if left:
            break
        page.wait_for_timeout(100)
    assert left == 1
    expect(page.locator("#countdown")).not_to_have_text("--:--")

    # A multiple-choice question: two options.
    multiple = page.locator("fieldset.question[data-type=multiple]").first
    multiple.locator("input").nth(0).check()
    multiple.locator("input").nth(1).check()
    # The page submits through the JSON API asking for no paper back, then loads the result page.
    with page.expect_response(re.compile(rf"/api/my/exams/attempts/{attempt_id}/submit$")) as submitted:
        page.get_by_role("button", name="交卷").click()
    assert submitted.value.status == 200
    assert submitted.value.request.headers["prefer"] == "return=minimal"
    assert submitted.value.headers["preference-applied"] == "return=minimal"
    expect(page.get_by_role("heading", level=1)).to_contain_text("公共法律知识")
    expect(page.get_by_role("region", name="成绩")).to_be_visible()
    score_text = page.locator("#score").inner_text()
    (score, status, closed_by) = server.query(
        "SELECT score, status, closed_by FROM exam_attempts WHERE id = ?", attempt_id
    )[0]
    assert status == "closed" and closed_by == "candidate" and float(score_text) == pytest.approx(score)
    assert (
        server.query("SELECT COUNT(DISTINCT position) FROM exam_answers WHERE attempt_id = ?", attempt_id)[0][
            0
        ]
        == 6
    )
    # The demo session shows the answers after submitting: keys and the articles they rest on.
    expect(page.get_by_role("region", name="答案与解析")).to_contain_text("依据：《中华人民共和国")
    expect(page.locator("text=正确答案").first).to_be_visible()
    shot(page, "exam-phone-result")

    page.goto("/my/exams")
    expect(page.get_by_text(re.compile(r"第 1 次：\d+(\.\d+)? 分"))).to_be_visible()

    # The retake (one is allowed), with the JSON submit failing: the page falls back to the form
    # post, which closes the attempt and shows the result all the same.
    page.get_by_role("button", name=re.compile("开始补考：公共法律知识")).click()
    expect(page).to_have_url(re.compile(r"/my/exams/attempts/\d+$"))
    retake = int(page.url.rsplit("/", 1)[1])
    assert retake != attempt_id
    page.route(
        re.compile(r"/api/my/exams/attempts/\d+/submit$"),
        lambda route: route.fulfill(status=503, content_type="application/json", body="{}"),
    )
    _option(page, 0).check()
    expect(page.locator("#save-status")).to_contain_text("已自动保存")
    with page.expect_request(re.compile(rf"^https?://[^/]+/my/exams/attempts/{retake}/submit$")) as posted:
        page.get_by_role("button", name="交卷").click()
    assert posted.value.method == "POST" and "/api/" not in posted.value.url
    expect(page.get_by_role("region", name="成绩")).to_be_visible()
    assert server.query("SELECT status, closed_by FROM exam_attempts WHERE id = ?", retake)[0] == (
        "closed",
        "candidate",
    )
