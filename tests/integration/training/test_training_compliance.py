"""Yearly compliance of an agency tree: who is short, by how much, per category, who is behind pace."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency, Officer, PostingHistory
from app.cli import cli
from app.lib.policy import Policy, policy_to_json
from app.lib.security import system_principal
from app.settings import load_settings
from app.training.models import TrainingYearTotal
from app.training.selectors.records import officer_year
from tests.factories import World, add_course, add_officer, add_record
from tests.integration.conftest import Client
from tests.integration.training.conftest import YEAR, assert_totals_match_ledger, day


async def build(db: AsyncSession, world: World, *, policy: Policy | None = None) -> dict[str, Officer]:
    """dept A: 李明 40 h (specialised law), 全勤 20 + 30 h, 缺课 12 h, 新人 (joined 15 July) 20 h,
    退休 (retired); dept B: 王芳 8 h. 缺课 also has 40 h on the last day of the year before."""
    if policy is not None:
        await db.execute(
            update(Agency).where(Agency.id == world.province.id).values(policy_json=policy_to_json(policy))
        )
    general = await add_course(
        db, world.dept_a, "公共法律知识讲座", starts_on=day(1, 5), ends_on=day(12, 20), hours_tenths=500
    )
    special = await add_course(
        db,
        world.dept_a,
        "市场监管专门法律",
        starts_on=day(2, 1),
        ends_on=day(12, 20),
        hours_tenths=500,
        category="special_law",
    )
    new_law = await add_course(
        db,
        world.dept_b,
        "新法速递",
        starts_on=day(3, 1),
        ends_on=day(12, 20),
        hours_tenths=500,
        category="new_law",
    )
    last_year = await add_course(
        db, world.dept_a, "年末集中培训", starts_on=dt.date(YEAR - 1, 12, 31), hours_tenths=400
    )
    people = {
        "李明": world.officer_a,
        "全勤": await add_officer(db, world.dept_a, "全勤"),
        "缺课": await add_officer(db, world.dept_a, "缺课"),
        "新人": await add_officer(db, world.dept_a, "新人"),
        "退休": await add_officer(db, world.dept_a, "退休"),
        "王芳": world.officer_b,
    }
    await db.execute(
        update(PostingHistory)
        .where(PostingHistory.officer_id == people["新人"].id)
        .values(started_on=dt.date(YEAR, 7, 15))
    )
    await db.execute(
        update(Officer).where(Officer.id == people["退休"].id).values(employment_status="retired")
    )
    await add_record(db, people["李明"], special, attended_on=day(3, 1), hours_tenths=400)
    await add_record(db, people["全勤"], general, attended_on=day(3, 1), hours_tenths=200)
    await add_record(db, people["全勤"], special, attended_on=day(4, 1), hours_tenths=300)
    await add_record(db, people["缺课"], general, attended_on=day(5, 1), hours_tenths=120)
    await add_record(db, people["缺课"], last_year)
    await add_record(db, people["新人"], general, attended_on=day(9, 1), hours_tenths=200)
    await add_record(db, people["退休"], general, attended_on=day(2, 1), hours_tenths=100)
    await add_record(db, people["王芳"], new_law, attended_on=day(6, 1), hours_tenths=80)
    await db.commit()
    return people


async def test_a_finished_year_default_policy(client: Client, world: World, db: AsyncSession) -> None:
    people = await build(db, world)
    await client.login("admin_a")
    # A reversal counts: 全勤's 30 hours of specialised law were never attended.
    view = (await client.get(f"/api/training/officers/{people['全勤'].id}", params={"year": YEAR})).json()
    special = next(r for r in view["records"] if r["category"] == "special_law")
    r = await client.post(f"/api/training/records/{special['id']}/reversal", json={"reason": "未实际参训"})
    assert r.status_code == 201, r.text

    r = await client.get("/api/training/compliance", params={"year": YEAR})
    assert r.status_code == 200, r.text
    page = r.json()
    s = page["summary"]
    # dept A's four officers in post (the retired one is not counted; city B is not in scope).
    assert (s["officers"], s["met"], s["short"], s["agency_name"], s["required"]) == (
        4,
        1,
        3,
        "江南省甲市",
        40,
    )
    assert s["met_percent"] == 25.0
    await assert_totals_match_ledger(db)
    rows = {i["name"]: i for i in page["items"]}
    assert [i["name"] for i in page["items"]] == ["缺课", "全勤", "新人", "李明"]  # most missing first
    assert (rows["缺课"]["total"], rows["缺课"]["needed"], rows["缺课"]["status"]) == (12, 28, "short")
    assert (
        rows["缺课"]["status_label"] == "未达标" and rows["缺课"]["general_law"] == 12
    )  # not last year's 40
    assert (rows["全勤"]["total"], rows["全勤"]["special_law"], rows["全勤"]["needed"]) == (20, 0, 20)
    assert (rows["新人"]["required"], rows["新人"]["needed"]) == (40, 20)  # not prorated by default
    assert rows["李明"]["special_law"] == 40 and rows["李明"]["status_label"] == "已达标"

    short = (await client.get("/api/training/compliance", params={"year": YEAR, "status": "short"})).json()
    assert [i["name"] for i in short["items"]] == ["缺课", "全勤", "新人"] and short["total"] == 3
    met = (
        await client.get("/api/training/compliance", params={"year": YEAR, "status": "met", "per_page": 1})
    ).json()
    assert met["total"] == 1 and met["items"][0]["name"] == "李明" and met["summary"]["officers"] == 4
    by_dept = (
        await client.get("/api/training/compliance", params={"year": YEAR, "agency_id": world.dept_a.id})
    ).json()
    assert by_dept["summary"]["officers"] == 4 and by_dept["summary"]["agency_name"] == "甲市市场监督管理局"
    last_year = (await client.get("/api/training/compliance", params={"year": YEAR - 1})).json()
    assert {i["name"]: i["total"] for i in last_year["items"]}["缺课"] == 40
    # The province sees both cities; city B's administrator is refused city A.
    await client.login("sfj_admin")
    everyone = (await client.get("/api/training/compliance", params={"year": YEAR})).json()
    assert everyone["summary"]["officers"] == 5
    wang = next(i for i in everyone["items"] if i["name"] == "王芳")
    assert (wang["new_law"], wang["needed"], wang["agency_name"]) == (8, 32, "乙市生态环境局")
    await client.login("admin_b")
    r = await client.get("/api/training/compliance", params={"year": YEAR, "agency_id": world.dept_a.id})
    assert r.status_code == 404


async def test_category_minimums_and_prorated_joiners(client: Client, world: World, db: AsyncSession) -> None:
    policy = Policy(
        training_hours_required=40,
        training_category_minimums={"公共法律知识": 10, "新法律法规": 4},
        training_prorate_joiners=True,
    )
    await build(db, world, policy=policy)
    await client.login("admin_a")
    page = (await client.get("/api/training/compliance", params={"year": YEAR})).json()
    rows = {i["name"]: i for i in page["items"]}
    # 40 hours of specialised law only: the total is met, but general law and new law are not.
    assert rows["李明"]["short_categories"] == {"general_law": 10, "new_law": 4}
    assert (rows["李明"]["needed"], rows["李明"]["status"]) == (14, "short")
    assert rows["全勤"]["short_categories"] == {"new_law": 4}
    # Joined on 15 July: 6 of 12 months, so 20 hours (and 5 general, 2 new law) are owed.
    assert rows["新人"]["required"] == 20 and rows["新人"]["short_categories"] == {"new_law": 2}
    assert rows["新人"]["needed"] == 2
    view = (
        await client.get(f"/api/training/officers/{rows['新人']['officer_id']}", params={"year": YEAR})
    ).json()
    assert (view["required"], view["prorated"], view["start_month"], view["needed"]) == (20, True, 7, 2)
    cats = {c["category"]: c for c in view["categories"]}
    assert (cats["general_law"]["minimum"], cats["new_law"]["minimum"], cats["new_law"]["short"]) == (5, 2, 2)
    assert page["summary"]["met"] == 0
    # The year before the joiner joined: not owed, not listed.
    before = (await client.get("/api/training/compliance", params={"year": YEAR - 1})).json()
    assert "新人" not in {i["name"] for i in before["items"]} and before["summary"]["officers"] == 3


async def test_behind_pace_during_the_year(client: Client, world: World, db: AsyncSession) -> None:
    await build(db, world)
    await client.login("admin_a")
    # As of 1 July half the year's hours are expected: 20. (``as_of`` sets the expected share only.)
    params = {"year": YEAR, "as_of": f"{YEAR}-07-01"}
    page = (await client.get("/api/training/compliance", params={**params, "status": "behind"})).json()
    assert [(i["name"], i["status"], i["expected"]) for i in page["items"]] == [("缺课", "behind", 20)]
    assert (page["summary"]["behind"], page["summary"]["short"]) == (1, 2)
    everyone = {
        i["name"]: i for i in (await client.get("/api/training/compliance", params=params)).json()["items"]
    }
    assert (everyone["新人"]["status"], everyone["新人"]["status_label"]) == ("on_track", "进度正常")
    # An officer's own page shows the same pace.
    view = await officer_year(db, system_principal(), world.officer_a.id, YEAR, as_of=dt.date(YEAR, 2, 15))
    assert (view.expected, view.behind_pace, view.status.value) == (3.4, False, "met")


async def test_compliance_page_and_export(client: Client, world: World, db: AsyncSession) -> None:
    await build(db, world)
    await client.login("admin_a")
    html = {"accept": "text/html"}
    page = await client.get(f"/training?year={YEAR}&status=all", headers=html)
    assert page.status_code == 200
    for text in ("2025 年度培训学时达标情况", "缺课", "新人", "全勤", "已达标", "未达标", "<progress"):
        assert text in page.text, text
    assert "王芳" not in page.text
    short = await client.get(f"/training?year={YEAR}", headers=html)  # default: who is short
    assert "缺课" in short.text and "全勤" not in short.text
    officer = await client.get(f"/training/officers/{world.officer_a.id}?year={YEAR}", headers=html)
    assert (
        officer.status_code == 200
        and "市场监管专门法律" in officer.text
        and "本年度学时已达标" in officer.text
    )

    csv_file = await client.get("/training/compliance.csv", params={"year": YEAR})
    assert csv_file.status_code == 200 and csv_file.headers["content-type"].startswith("text/csv")
    text = csv_file.content.decode("utf-8-sig")
    lines = text.strip().splitlines()
    assert lines[0] == "姓名,单位,应修学时,已修学时,公共法律知识,专门法律知识,新法律法规,尚差学时,状态"
    assert len(lines) == 5 and "缺课,甲市市场监督管理局,40,12,12,0,0,28,未达标" in lines


async def test_yearly_totals_follow_the_ledger_and_can_be_rebuilt(
    client: Client, world: World, db: AsyncSession, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = await build(db, world)
    await assert_totals_match_ledger(db)
    settings = load_settings({"APP_ENV": "test", "DATABASE_URL": database_url, "SECRET_KEY": "t" * 40})
    monkeypatch.setattr("app.settings.get_settings", lambda: settings)

    def run(*args: str) -> Any:
        return asyncio.to_thread(CliRunner().invoke, cli, ["training", "totals", *args])

    r = await run("--check")
    assert r.exit_code == 0 and "match the ledger" in r.output
    # Damage the projection behind the application's back: the check names it, a rebuild repairs it.
    await db.execute(
        update(TrainingYearTotal)
        .where(TrainingYearTotal.officer_id == people["缺课"].id, TrainingYearTotal.year == YEAR)
        .values(general_law=999)
    )
    await db.commit()
    r = await run("--check", "--year", str(YEAR))
    assert (
        r.exit_code == 1
        and f"{YEAR} officer {people['缺课'].id} general_law: totals 99.9 h, ledger 12 h" in r.output
    )
    r = await run()
    assert r.exit_code == 0 and "1 differed" in r.output
    await assert_totals_match_ledger(db)
    await client.login("admin_a")
    rows = (await client.get("/api/training/compliance", params={"year": YEAR})).json()["items"]
    assert {i["name"]: i["total"] for i in rows}["缺课"] == 12
