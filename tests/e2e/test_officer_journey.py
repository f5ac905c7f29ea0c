"""An officer from first login to a downloaded card, in Chromium, with every person at their own screen:

1. the city's administrator creates the officer's account → a one-time initial password;
2. the issuing authority enrols the officer in the open exam session;
3. the officer signs in on a phone with that password, is made to set their own, takes both parts of
   the qualification exam in the browser and passes (执法资格 granted);
4. the administrator sees the officer eligible now and applies for the card; the authority approves;
5. the officer downloads the card PDF from 我的证件: a PDF of their card number.

The officer is a demo officer whose only missing condition is the exam (in post, civil servant, last
year's training hours met, no card, no account, a specialised bank for their field): the apply page
says so before the exam, which the journey checks.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import ARTIFACTS, AUTHORITY, CITY_ADMIN, Server, another_page, apply_row, login, shot

pytestmark = pytest.mark.e2e

NO_EXAM = "没有在有效期内的执法资格考试合格成绩"


def _candidate(server: Server) -> tuple[int, str, int, str]:
    """(officer id, name, agency id, ID number) of the officer the journey follows."""
    rows = server.query(
        """
        SELECT o.id, o.name, o.agency_id, o.id_number FROM officers o JOIN agencies g ON g.id = o.agency_id
        WHERE g.path LIKE (SELECT a.path FROM agencies a JOIN accounts u ON u.agency_id = a.id
                           WHERE u.username = ?) || '%'
          AND o.employment_status = 'active' AND o.staff_type = 'civil_servant'
          AND o.field IN (SELECT field FROM exam_banks WHERE part = 'specialised')
          AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.officer_id = o.id)
          AND NOT EXISTS (SELECT 1 FROM exam_qualifications q WHERE q.officer_id = o.id)
          AND NOT EXISTS (SELECT 1 FROM accounts u WHERE u.officer_id = o.id)
          AND NOT EXISTS (SELECT 1 FROM certificate_applications p WHERE p.officer_id = o.id)
          AND NOT EXISTS (SELECT 1 FROM exam_enrolments e WHERE e.officer_id = o.id)
        ORDER BY (SELECT t.general_law + t.special_law + t.new_law FROM training_year_totals t
                  WHERE t.officer_id = o.id AND t.year = CAST(strftime('%Y', 'now') AS INTEGER) - 1) DESC,
                 o.id
        LIMIT 1
        """,
        CITY_ADMIN[0],
    )
    assert rows, "the demo data has no officer who lacks only the exam"
    oid, name, agency_id, id_number = rows[0]
    return int(oid), str(name), int(agency_id), str(id_number)  # type: ignore[call-overload]


def _keys(server: Server, attempt_id: int) -> dict[int, list[int]]:
    """The right options of each question of the paper, as displayed (positions → displayed indexes)."""
    (paper_json,) = server.query("SELECT paper_json FROM exam_attempts WHERE id = ?", attempt_id)[0]
    keys: dict[int, list[int]] = {}
    for position, (qid, order, _points, _category, qtype) in enumerate(json.loads(str(paper_json))):
        answer_json, weights_json = server.query(
            "SELECT answer_json, weights_json FROM exam_questions WHERE id = ?", qid
        )[0]
        answer = json.loads(str(answer_json))
        if qtype == "judge":
            keys[position] = [0 if answer else 1]  # 正确 is shown first, 错误 second
            continue
        right = set(answer)
        if weights_json is not None:
            right = {i for i, w in enumerate(json.loads(str(weights_json))) if w > 0}
        keys[position] = [shown for shown, bank in enumerate(order) if bank in right]
    return keys


def _take_part(page: Page, server: Server, title: str, label: str) -> float:
    """Starts the part from 我的考试, ticks the right answers, submits; returns the score shown."""
    page.goto("/my/exams")
    page.get_by_role("button", name=re.compile(f"开始考试：{title}")).click()
    expect(page).to_have_url(re.compile(r"/my/exams/attempts/\d+$"))
    expect(page.locator("#countdown")).not_to_have_text("--:--")
    attempt_id = int(page.url.rsplit("/", 1)[1])
    keys = _keys(server, attempt_id)
    assert len(keys) == page.locator("fieldset.question").count()
    for position, shown in sorted(keys.items()):
        for index in shown:
            page.locator(f"#q{position} input").nth(index).check()
    expect(page.locator("#answered-count")).to_have_text(f"已答 {len(keys)} / {len(keys)} 题")
    expect(page.locator("#save-status")).to_contain_text("已自动保存")
    shot(page, f"officer-04-exam-{label}")
    page.get_by_role("button", name="交卷").click()
    expect(page.get_by_role("region", name="成绩")).to_contain_text("通过")
    score = float(page.locator("#score").inner_text())
    assert server.query("SELECT status, passed FROM exam_attempts WHERE id = ?", attempt_id)[0] == (
        "closed",
        1,
    )
    return score


def test_officer_from_first_login_to_a_downloaded_card(
    browser: Browser, desktop: Page, phone: Page, server: Server, tmp_path: Path
) -> None:
    officer_id, name, agency_id, id_number = _candidate(server)
    username = f"zf{secrets.token_hex(3)}"

    # 1. The city's administrator creates the account and reads out the one-time password.
    admin = desktop
    login(admin, *CITY_ADMIN)
    admin.goto("/certificates/apply")
    row = apply_row(admin, name)
    expect(row).to_contain_text(NO_EXAM)  # before the exam, the exam is all that is missing
    expect(row.locator("div.field-error")).to_have_count(1)
    admin.goto("/accounts/new")
    admin.get_by_label(re.compile("^用户名")).fill(username)
    admin.get_by_label(re.compile("^姓名")).fill(name)
    admin.get_by_label(re.compile("^角色")).select_option("officer")
    admin.get_by_label(re.compile("^所属单位")).select_option(str(agency_id))
    admin.get_by_label(re.compile("^关联执法人员编号")).fill(str(officer_id))
    admin.get_by_role("button", name="创建").click()
    expect(admin.get_by_role("heading", name="账号已创建")).to_be_visible()
    initial = admin.locator("p.secret").inner_text().strip()
    assert len(initial) >= 10
    shot(admin, "officer-01-admin-account-created")

    # 2. The authority enrols the officer in the open session of the qualification exam.
    with another_page(browser, server) as authority:
        login(authority, *AUTHORITY)
        (session_id,) = server.query(
            "SELECT id FROM exam_sessions WHERE opens_at <= datetime('now') AND closes_at > datetime('now') "
            "ORDER BY id LIMIT 1"
        )[0]
        authority.goto(f"/exams/sessions/{session_id}")
        authority.get_by_label("身份证号码（每行一个）").fill(id_number)
        authority.get_by_role("button", name="安排").click()
        expect(authority.get_by_role("status")).to_contain_text("已安排 1 名考生")
        shot(authority, "officer-02-authority-enrolled")

        # 3. The officer's first login: the initial password only opens the password page.
        officer = phone
        officer.goto("/login")
        officer.get_by_label("用户名").fill(username)
        officer.get_by_label("密码").fill(initial)
        officer.get_by_role("button", name="登录").click()
        expect(officer).to_have_url(re.compile(r"/account/password$"))
        expect(officer.get_by_text("您正在使用管理员设置的初始密码")).to_be_visible()
        shot(officer, "officer-03-forced-password-change")
        resp = officer.goto("/my/exams")  # nothing else until the password is changed
        assert resp is not None and resp.status == 403
        expect(officer.locator("main")).to_contain_text("请先修改初始密码")
        officer.goto("/account/password")
        own = f"Mine-{secrets.token_hex(4)}-2026"
        officer.get_by_label("当前密码").fill(initial)
        officer.get_by_label("新密码", exact=True).fill(own)
        officer.get_by_label("确认新密码").fill(own)
        officer.get_by_role("button", name="保存").click()
        expect(officer).to_have_url(re.compile(r"/\?msg=password_changed$"))
        assert (
            server.query("SELECT must_change_password FROM accounts WHERE username = ?", username)[0][0] == 0
        )

        # The exam, both parts, in the browser; passing the second grants the qualification.
        officer.locator("nav.nav").get_by_role("link", name="我的考试").click()
        expect(officer.get_by_role("heading", name="我的考试")).to_be_visible()
        assert _take_part(officer, server, "公共法律知识", "public") >= 60
        expect(officer.get_by_text("取得执法资格")).to_have_count(0)  # one part passed: no qualification yet
        assert _take_part(officer, server, "专门法律知识", "specialised") >= 60
        expect(officer.get_by_role("status").filter(has_text="取得执法资格")).to_be_visible()
        shot(officer, "officer-05-exam-passed")
        assert (
            server.query(
                "SELECT count(*) FROM exam_qualifications WHERE officer_id = ? AND status = 'valid' AND source = 'exam'",
                officer_id,
            )[0][0]
            == 1
        )

        # 4. The administrator applies (the officer is eligible now), the authority approves.
        row = apply_row(admin, name)
        expect(row).to_contain_text("符合条件")
        row.get_by_label(f"选择 {name}").check()
        admin.get_by_label("备注").fill("新取得执法资格，首次申领")
        admin.get_by_role("button", name="提交申领").click()
        expect(admin.locator(".alert-ok")).to_contain_text("申领已提交，等待发证机关审批")
        expect(admin.get_by_role("row").filter(has_text=name)).to_contain_text("待审批")
        shot(admin, "officer-06-admin-applied")

        authority.goto("/certificates/applications?status=pending")
        authority.get_by_label(f"选择 {name}").check()
        authority.get_by_label("审批意见（驳回时必填）").fill("材料齐全，同意发证")
        authority.get_by_role("button", name="批准并发证").click()
        expect(authority.locator(".alert-ok")).to_contain_text("已批准并发证")
        shot(authority, "officer-07-authority-approved")

    (number,) = server.query(
        "SELECT number FROM certificates WHERE officer_id = ? AND status = 'valid'", officer_id
    )[0]

    # 5. The officer downloads the card from 我的证件.
    officer.locator("nav.nav").get_by_role("link", name="我的证件").click()
    expect(officer.get_by_role("heading", name="我的证件")).to_be_visible()
    mine = officer.get_by_role("row").filter(has_text=str(number))
    expect(mine).to_contain_text("有效")
    expect(officer.locator("tbody tr")).to_have_count(1)  # their own card only
    shot(officer, "officer-08-my-certificate")
    with officer.expect_download() as info:
        mine.get_by_role("link", name="PDF").click()
    download = info.value
    assert download.suggested_filename == f"{number}.pdf"
    pdf = tmp_path / download.suggested_filename
    download.save_as(pdf)
    data = pdf.read_bytes()
    assert data[:5] == b"%PDF-"
    text = subprocess.run(  # noqa: S603 - poppler's pdftotext on our own file
        ["pdftotext", str(pdf), "-"],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    compact = re.sub(r"\s+", "", text)
    assert str(number) in compact and name in compact
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "officer-09-downloaded-card.pdf").write_bytes(data)
