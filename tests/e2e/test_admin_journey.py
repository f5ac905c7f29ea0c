"""An administrator from officer import to an issued card to a suspension, in Chromium:

1. the city's administrator uploads a CSV of two new officers, reads the preview and commits it;
2. one of them holds a 执法资格 from a paper exam before the system (a legacy qualification, which the
   fixture enters: the system has no page for it); having just joined, they owe no training hours
   for last year, so they are eligible; the administrator applies for their card;
3. the authority approves (the card is issued), then suspends it (暂扣) with a ground and evidence;
4. a citizen checking the card on a phone sees 有效 before and 暂扣 after, on the public page.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import secrets
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from app.accounts.rules import id_check_digit
from tests.e2e.conftest import AUTHORITY, CITY_ADMIN, Server, another_page, apply_row, login, shot

pytestmark = pytest.mark.e2e

HEADER = ["姓名", "身份证号码", "单位", "人员性质", "岗位", "执法类别", "执法区域", "联系电话"]
NAMES = ("欧阳明哲", "司马静怡")


def _new_id_numbers(server: Server, n: int) -> list[str]:
    taken = {str(r[0]) for r in server.query("SELECT id_number FROM officers")}
    out: list[str] = []
    while len(out) < n:
        first17 = f"320102199{secrets.randbelow(10)}0{secrets.randbelow(9) + 1}1{secrets.randbelow(9)}{secrets.randbelow(1000):03d}"
        number = first17 + id_check_digit(first17)
        if number not in taken and number not in out:
            out.append(number)
    return out


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows([HEADER, *rows])
    return path


def test_admin_imports_officers_issues_a_card_and_suspends_it(
    browser: Browser, desktop: Page, phone: Page, server: Server, tmp_path: Path
) -> None:
    (agency,) = server.query(
        "SELECT a.name FROM agencies a WHERE a.kind = 'department' AND a.parent_id = "
        "(SELECT agency_id FROM accounts WHERE username = ?) AND a.name LIKE '%生态环境%'",
        CITY_ADMIN[0],
    )[0]
    ids = _new_id_numbers(server, 2)
    sheet = _write_csv(
        tmp_path / "新进人员.csv",
        [
            [NAMES[0], ids[0], str(agency), "行政编制", "执法岗位", "生态环境", "全市", "0574-88990011"],
            [NAMES[1], ids[1], str(agency), "行政编制", "执法岗位", "生态环境", "", ""],
        ],
    )

    # 1. Import: upload, check, preview, commit.
    admin = desktop
    login(admin, *CITY_ADMIN)
    admin.locator("nav.nav").get_by_role("link", name="批量导入").click()
    expect(admin.get_by_role("heading", name="批量导入执法人员")).to_be_visible()
    admin.get_by_label("选择文件").set_input_files(str(sheet))
    shot(admin, "admin-01-import-form")
    admin.get_by_role("button", name="上传并检查").click()
    expect(admin.get_by_role("heading", name="导入检查结果")).to_be_visible()
    expect(admin.get_by_role("status")).to_contain_text("全部 2 行检查通过")
    preview = admin.locator("section:has(h2:has-text('预览')) tbody tr")
    expect(preview).to_have_count(2)
    expect(preview.nth(0)).to_contain_text(NAMES[0])
    expect(preview.nth(0)).to_contain_text(str(agency))
    assert not server.query("SELECT id FROM officers WHERE id_number IN (?, ?)", *ids)  # nothing written yet
    shot(admin, "admin-02-import-preview")
    admin.get_by_role("button", name="确认导入 2 人").click()
    expect(admin.get_by_role("status")).to_contain_text("导入成功：已登记 2 名执法人员")
    shot(admin, "admin-03-import-committed")
    rows = server.query("SELECT id, name FROM officers WHERE id_number = ?", ids[0])
    assert len(rows) == 1
    officer_id, name = int(rows[0][0]), str(rows[0][1])  # type: ignore[call-overload]
    assert name == NAMES[0]

    # 2. Without a qualification the card is refused; with the legacy one the officer is eligible.
    row = apply_row(admin, name)
    expect(row).to_contain_text("没有在有效期内的执法资格考试合格成绩")
    passed_on = dt.date.today() - dt.timedelta(days=200)
    server.query(
        "INSERT INTO exam_qualifications (officer_id, field, passed_on, valid_until, score, source, status, "
        "removed_reason, created_at) VALUES (?, '生态环境', ?, ?, NULL, 'legacy', 'valid', '', datetime('now'))",
        officer_id,
        passed_on.isoformat(),
        passed_on.replace(year=passed_on.year + 3).isoformat(),
    )
    row = apply_row(admin, name)
    expect(row).to_contain_text("符合条件")
    row.get_by_label(f"选择 {name}").check()
    admin.get_by_role("button", name="提交申领").click()
    expect(admin.locator(".alert-ok")).to_contain_text("申领已提交")
    shot(admin, "admin-04-applied")

    with another_page(browser, server) as authority:
        # 3. The authority approves, then opens the card and suspends it with a ground.
        login(authority, *AUTHORITY)
        authority.goto("/certificates/applications?status=pending")
        authority.get_by_label(f"选择 {name}").check()
        authority.get_by_role("button", name="批准并发证").click()
        expect(authority.locator(".alert-ok")).to_contain_text("已批准并发证")
        authority.goto("/certificates/applications?status=approved")
        issued = authority.get_by_role("row").filter(has_text=name).filter(has_text="已批准")
        issued.get_by_role("link").first.click()
        expect(authority.get_by_role("heading", level=1)).to_contain_text("行政执法证")
        number = authority.get_by_role("heading", level=1).inner_text().split()[-1]
        assert server.query("SELECT status FROM certificates WHERE number = ?", number)[0][0] == "valid"
        shot(authority, "admin-05-card-issued")

        # The card is valid on the public page before the suspension.
        phone.goto(f"/v/{number}")
        expect(phone.locator("#status-word")).to_have_text("有效")
        expect(phone.locator(".v-number")).to_have_text(number)
        shot(phone, "admin-06-public-valid-phone")

        authority.get_by_label(re.compile("^变更事项")).select_option(label="暂扣")
        authority.get_by_label(re.compile("^依据")).fill("涉嫌违法执法，立案调查期间暂扣执法证件")
        authority.get_by_label(re.compile("^证据")).fill("宁环立〔2026〕12号")
        authority.get_by_role("button", name="提交").click()
        expect(authority.locator(".alert-ok")).to_contain_text("操作已完成")
        expect(authority.locator("dt:has-text('状态') + dd")).to_contain_text("暂扣")
        history = authority.locator("section:has(h2:has-text('变更记录')) tbody tr")
        expect(history.filter(has_text="涉嫌违法执法")).to_contain_text("暂扣")
        shot(authority, "admin-07-card-suspended")

    # 4. The same page, reloaded by the citizen, now says 暂扣.
    phone.reload()
    expect(phone.locator("#status-word")).to_have_text("暂扣")
    expect(phone.locator("#status")).to_have_class("v-status s-suspended")
    body = phone.locator("body").inner_text()
    assert ids[0] not in body and "涉嫌违法执法" not in body  # no ID number, no ground in public
    shot(phone, "admin-08-public-suspended-phone")
