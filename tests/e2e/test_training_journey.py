"""培训学时 in the browser: an agency admin imports a sign-in sheet, an officer reads their year.

Each journey creates its own course (unique title), so they run alone or together in any order.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import secrets
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import CITY_ADMIN, OFFICER, Server, login, shot

pytestmark = pytest.mark.e2e

COURSE_HOURS = 8
HEADER = ["姓名", "身份证号码", "学时"]


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    # UTF-8 with a BOM, as Excel saves "CSV UTF-8".
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows([HEADER, *rows])
    return path


def _create_course(page: Page, title: str, category: str, hours: int) -> int:
    """登记培训课程 through the form; returns the course number shown on its page."""
    page.goto("/training/courses")
    page.get_by_role("link", name="登记课程").click()
    expect(page.get_by_role("heading", name="登记培训课程")).to_be_visible()
    page.get_by_label("课程名称").fill(title)
    page.get_by_label("培训类别").select_option(label=category)
    page.locator("#f-hours").fill(str(hours))
    page.get_by_label("参训核验方式").select_option(label="签到表")
    page.get_by_label("培训机构 / 主讲单位").fill("宁海市司法局")
    page.get_by_role("button", name="保存").click()
    expect(page.get_by_role("status")).to_contain_text("课程已登记")
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    number = page.locator("dt:has-text('课程编号') + dd").inner_text()
    return int(number)


def _tenths(text: str) -> int:
    return round(float(text) * 10)


def test_admin_imports_sign_in_sheet_fixes_bad_rows_and_commits(
    desktop: Page, server: Server, tmp_path: Path
) -> None:
    page = desktop
    lin = server.officer_id_number("林志强")
    zhao = server.officer_id_number("赵思源")
    sun = server.officer_id_number("孙立信")
    # A generated colleague of 林志强's (the named demo people above are fixed; the rest are random).
    other_name, other_id = (
        str(v)
        for v in server.query(
            "SELECT name, id_number FROM officers WHERE employment_status = 'active'"
            " AND agency_id = (SELECT agency_id FROM officers WHERE id_number = ?)"
            " AND name NOT IN ('林志强', '赵思源', '孙立信') ORDER BY id LIMIT 1",
            lin,
        )[0]
    )

    login(page, *CITY_ADMIN)
    shot(page, "01-admin-home")
    title = f"行政处罚法专题培训 {secrets.token_hex(3)}"
    course_id = _create_course(page, title, "公共法律知识", COURSE_HOURS)
    shot(page, "02-admin-course-created")

    # A sheet with three bad rows among good ones. Row 1 is the header, so data starts on row 2.
    bad = _write_csv(
        tmp_path / "签到表-有误.csv",
        [
            ["林志强", lin, ""],
            ["赵四源", zhao, ""],  # 第3行: the name does not match the ID number
            ["孙立信", sun, "9"],  # 第4行: more hours than the course has
            [other_name, other_id[:17], ""],  # 第5行: 17 characters
        ],
    )
    page.get_by_role("link", name="导入签到表").first.click()
    expect(page.get_by_role("heading", name="导入培训签到表")).to_be_visible()
    page.get_by_label("课程编号").fill(str(course_id))
    page.get_by_label("选择文件").set_input_files(str(bad))
    shot(page, "03-admin-import-form")
    page.get_by_role("button", name="上传并检查").click()

    expect(page.get_by_role("heading", name="签到表检查结果")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("未导入任何学时")
    errors = page.locator("section:has(h2:has-text('错误清单')) tbody tr")
    expect(errors).to_have_count(3)
    expect(errors.nth(0)).to_contain_text("第 3 行")
    expect(errors.nth(0)).to_contain_text("姓名")
    expect(errors.nth(0)).to_contain_text("姓名“赵四源”与系统中该身份证号码的人员姓名“赵思源”不一致")
    expect(errors.nth(1)).to_contain_text("第 4 行")
    expect(errors.nth(1)).to_contain_text(f"学时 9 超过课程学时 {COURSE_HOURS}")
    expect(errors.nth(2)).to_contain_text("第 5 行")
    expect(errors.nth(2)).to_contain_text("身份证号码")
    expect(page.locator("dt:has-text('数据行') + dd")).to_have_text("4 行")
    expect(page.locator("dt:has-text('有错误') + dd")).to_have_text("3 行")
    expect(page.locator("dt:has-text('检查通过') + dd")).to_have_text(f"1 行，共 {COURSE_HOURS} 学时")
    expect(page.get_by_role("button", name=re.compile("确认导入"))).to_have_count(0)
    shot(page, "04-admin-import-preview-errors")

    # The corrected sheet passes and is committed only after 确认导入.
    good = _write_csv(
        tmp_path / "签到表-已更正.csv",
        [["林志强", lin, ""], ["赵思源", zhao, ""], ["孙立信", sun, "6"], [other_name, other_id, "7.5"]],
    )
    page.get_by_role("link", name="重新上传").click()
    page.get_by_label("课程编号").fill(str(course_id))
    page.get_by_label("选择文件").set_input_files(str(good))
    page.get_by_role("button", name="上传并检查").click()
    expect(page.get_by_role("status")).to_contain_text("全部 4 行检查通过")
    expect(page.locator("dt:has-text('检查通过') + dd")).to_have_text("4 行，共 29.5 学时")
    sample = page.locator("section:has(h2:has-text('预览')) tbody tr")
    expect(sample).to_have_count(4)
    expect(sample.filter(has_text=other_name)).to_contain_text("7.5")
    shot(page, "05-admin-import-preview-ok")
    page.get_by_role("button", name="确认导入 4 条学时记录").click()

    expect(page.get_by_role("status")).to_contain_text("已登记 4 条学时记录，共 29.5 学时")
    shot(page, "06-admin-import-committed")

    # The ledger behind it: the course lists the four people with their hours.
    page.goto(f"/training/courses/{course_id}")
    expect(page.locator("dt:has-text('本单位参训人数') + dd")).to_have_text("4")
    records = page.locator("section:has(h2:has-text('学时记录')) tbody tr")
    expect(records).to_have_count(4)
    expect(records.filter(has_text="孙立信")).to_contain_text("6")
    expect(records.filter(has_text="林志强")).to_contain_text(str(COURSE_HOURS))
    expect(records.first).to_contain_text("导入批次")
    shot(page, "07-admin-course-records")

    # Uploading the same file again is refused: one file, one import.
    page.goto("/training/import")
    page.get_by_label("课程编号").fill(str(course_id))
    page.get_by_label("选择文件").set_input_files(str(good))
    page.get_by_role("button", name="上传并检查").click()
    expect(page.get_by_role("alert")).to_contain_text("该文件已导入")
    expect(page.get_by_role("alert")).to_contain_text("不会重复计算学时")
    shot(page, "08-admin-import-duplicate")


def test_officer_sees_this_years_hours_as_progress_with_records(
    desktop: Page, phone: Page, server: Server
) -> None:
    # The admin registers 林志强 for a new-law course through the course page.
    lin = server.officer_id_number("林志强")
    login(desktop, *CITY_ADMIN)
    title = f"新修订行政复议法解读 {secrets.token_hex(3)}"
    course_id = _create_course(desktop, title, "新法律法规", 4)
    desktop.get_by_label("身份证号码（每行一个）").fill(lin)
    desktop.locator("#f-hours").fill("3.5")
    desktop.get_by_role("button", name="登记", exact=True).click()
    expect(desktop.get_by_role("status")).to_contain_text("已登记 1 人的学时")
    assert course_id > 0

    # The officer, on a phone, signs in and opens 我的学时.
    page = phone
    login(page, *OFFICER)
    shot(page, "10-officer-home-phone")
    page.locator("nav.nav").get_by_role("link", name="我的学时").click()
    year = dt.date.today().year
    expect(page.get_by_role("heading", level=1)).to_have_text(f"林志强 · {year} 年度培训学时")
    expect(page.get_by_text("宁海市市场监督管理局", exact=True)).to_be_visible()

    figures = page.locator("p.big")
    expect(figures).to_contain_text("已修")
    match = re.search(r"已修\s*([\d.]+)\s*/\s*应修\s*([\d.]+)\s*学时", figures.inner_text())
    assert match, figures.inner_text()
    total, required = _tenths(match[1]), _tenths(match[2])
    assert total >= 35  # at least this journey's 3.5 hours

    bar = page.get_by_role("progressbar", name="年度学时进度")
    expect(bar).to_be_visible()
    expect(bar).to_have_attribute("max", "100")
    expect(bar).to_have_attribute("value", str(min(100, total * 100 // required)))

    # The records behind the figure: the course just registered, and hours that add up to the total.
    records = page.locator("section:has(h2:has-text('学时记录')) tbody tr")
    mine = records.filter(has_text=title)
    expect(mine).to_have_count(1)
    expect(mine).to_contain_text("新法律法规")
    expect(mine).to_contain_text("3.5")
    hours_col = [h.strip() for h in records.locator("xpath=./td[5]").all_inner_texts()]
    counted = records.locator(":scope:not(.void)").locator("xpath=./td[5]").all_inner_texts()
    assert hours_col, "no ledger lines shown"
    assert sum(_tenths(h) for h in counted) == total
    new_law = page.locator("tr", has_text="新法律法规").first
    expect(new_law).to_be_visible()
    shot(page, "11-officer-training-phone")

    # The officer cannot reach the admin pages.
    resp = page.goto("/training/import")
    assert resp is not None and resp.status in (401, 403)
