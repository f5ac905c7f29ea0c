"""年度考核与退出 in the browser: ratings corrected to 不合格 → the authority closes the year → a case
opens; the demo officer answers their own case with a statement → the authority confirms the removal
of the qualification → the card is revoked and the public verification page says so.

The demo load already closed 2025 once, so zhifa01's officer (不合格 in 2024 and 2025) has an open
case when the journey starts. The other journeys do not need that officer's card or qualification:
the exam journey grants a new one, the training journey reads hours only, and the public-verification
journey picks cards by their status at the time it runs.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import CITY_ADMIN, OFFICER, Server, login, shot

pytestmark = pytest.mark.e2e

AUTHORITY = ("sfj_admin", "Demo-2026-admin")
YEAR = 2025


def _correct_to_unqualified(page: Page, rating_id: int, reason: str) -> None:
    page.goto(f"/assessments/ratings/{rating_id}")
    page.get_by_label("更正后的等次").select_option("不合格")
    page.get_by_label("更正原因").fill(reason)
    page.get_by_role("button", name="更正").click()
    expect(page.get_by_role("status")).to_contain_text("已更正")


def test_ratings_open_a_case_and_the_officer_is_heard_before_the_decision(
    desktop: Page, phone: Page, server: Server
) -> None:
    # A colleague of 林志强's rated 合格 in both years (the demo's generated officers).
    lin_id = int(server.query("SELECT id FROM officers WHERE name = '林志强'")[0][0])  # type: ignore[arg-type]
    colleague, name = server.query(
        "SELECT o.id, o.name FROM officers o JOIN assessment_ratings r ON r.officer_id = o.id "
        "WHERE o.agency_id = (SELECT agency_id FROM officers WHERE id = ?) AND o.id <> ? "
        "AND o.employment_status = 'active' AND o.staff_type = 'civil_servant' "
        "AND r.status = 'confirmed' AND r.year IN (?, ?) "
        "GROUP BY o.id, o.name HAVING count(*) = 2 AND sum(r.grade = '不合格') = 0 ORDER BY o.id LIMIT 1",
        lin_id,
        lin_id,
        YEAR - 1,
        YEAR,
    )[0]
    ratings = dict(
        server.query(
            "SELECT year, id FROM assessment_ratings WHERE officer_id = ? AND status = 'confirmed'", colleague
        )
    )

    # 1. The city's administrator corrects both locked ratings to 不合格, with reasons.
    page = desktop
    login(page, *CITY_ADMIN)
    _correct_to_unqualified(page, int(ratings[YEAR - 1]), "案卷评查复查：重大执法过错")  # type: ignore[arg-type]
    _correct_to_unqualified(page, int(ratings[YEAR]), "执法规范测试两次未达标")  # type: ignore[arg-type]
    page.goto(f"/assessments/officers/{colleague}")
    expect(page.locator(f"#consequence-{YEAR}")).to_contain_text("不得评为优秀")
    shot(page, "assessment-01-officer-consequences")
    page.get_by_role("button", name="退出").click()

    # 2. The authority closes the year: exactly the colleague's case is new (zhifa01's exists already).
    login(page, *AUTHORITY)
    page.goto("/assessments/close-year")
    page.get_by_label("结转年度").select_option(str(YEAR))
    page.get_by_role("button", name="执行年度结转").click()
    latest = page.locator("details").first
    expect(latest).to_contain_text(f"{YEAR} 年度")
    expect(latest).to_contain_text("新开立退出案件 1 件")
    shot(page, "assessment-02-close-year")
    page.goto("/assessments/cases?status=open")
    expect(page.get_by_role("cell", name=str(name), exact=True)).to_be_visible()
    # Nobody decides before the officer has been heard or the deadline has passed.
    page.get_by_role("row").filter(has_text=str(name)).get_by_role("link").first.click()
    page.locator("#f-decision").select_option("confirm")
    page.get_by_label("理由").fill("连续两年考核不合格")
    page.get_by_role("button", name="作出决定").click()
    expect(page.get_by_role("alert")).to_contain_text("未届满")

    # 3. The officer reads the notice of their own case on the phone and makes a statement.
    login(phone, *OFFICER)
    phone.goto("/my/assessments")
    expect(phone.get_by_role("heading", name="退出案件")).to_be_visible()
    phone.locator("a[href^='/my/assessments/cases/']").first.click()
    expect(phone.locator("#case-status")).to_have_text("待陈述申辩")
    case_id = int(re.search(r"/cases/(\d+)", phone.url).group(1))  # type: ignore[union-attr]
    phone.get_by_label(re.compile("陈述申辩")).fill(
        "2024 年度本人长期病休，考核期间实际在岗不足半年，请予考虑。"
    )
    phone.get_by_role("button", name="提交陈述申辩").click()
    expect(phone.get_by_role("status")).to_contain_text("陈述申辩已提交")
    expect(phone.locator("#case-statement")).to_contain_text("长期病休")
    shot(phone, "assessment-03-officer-statement")

    # 4. The legal-affairs office confirms, with reasons; the timeline shows every step and the effect.
    page.goto(f"/assessments/cases/{case_id}")
    expect(page.locator("#case-statement")).to_contain_text("长期病休")
    page.locator("#f-decision").select_option("confirm")
    page.get_by_label("理由").fill("病休已在考核中扣除，连续两年考核不合格的事实清楚")
    page.get_by_role("button", name="作出决定").click()
    expect(page.get_by_role("status")).to_contain_text("决定已作出")
    expect(page.locator("#case-decision")).to_contain_text("维持拟处理意见")
    timeline = page.locator("#timeline li")
    expect(timeline).to_have_count(7)  # … qualification removed, bar recorded, card revoked
    expect(timeline.nth(0)).to_contain_text("立案")
    expect(timeline.nth(2)).to_contain_text("当事人陈述申辩")
    expect(timeline.nth(3)).to_contain_text("法制机构作出决定")
    shot(page, "assessment-04-decision-timeline")

    # 5. Anyone checking the officer's card sees it revoked (吊销) on the public page.
    (number,) = server.query(
        "SELECT number FROM certificates WHERE officer_id = ? ORDER BY id DESC LIMIT 1", lin_id
    )[0]
    citizen = phone.context.browser.new_context(  # type: ignore[union-attr]
        base_url=server.base_url, locale="zh-CN", viewport={"width": 390, "height": 844}
    )
    try:
        public = citizen.new_page()
        public.goto(f"/v/{number}")
        expect(public.locator("#status-word")).to_have_text("吊销")
        shot(public, "assessment-05-public-page-revoked")
    finally:
        citizen.close()

    # The officer sees the decision and the right to ask for a review.
    phone.reload()
    expect(phone.locator("#case-status")).to_have_text("已作出决定")
    expect(phone.get_by_role("button", name="申请复核")).to_be_visible()
