"""The exit rules a province varies, driven through the JSON API: its grade scale and failing grades,
corrections while a case runs, what 调离 and 取消 leave behind, who decides, officers back in post,
and every assessment setting of the policy with a value other than its default."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.assessments.models import ExitCase
from app.audit.models import AuditEvent
from app.certificates.models import Certificate, CertificateEvent, ExitBar, ReapplicationBar
from app.exams.models import ExamQualification
from app.lib.enums import Post, Role
from app.lib.policy import CIVIL_SERVICE_GRADES
from tests.factories import World, add_account, add_certificate, add_officer
from tests.integration.assessments.conftest import TODAY, add_qualification, count, set_today
from tests.integration.conftest import Client

CIVIL = {
    "grades": list(CIVIL_SERVICE_GRADES.grades),
    "failing_grades": list(CIVIL_SERVICE_GRADES.failing),
    "excellent_barring_grades": list(CIVIL_SERVICE_GRADES.failing),
}
HEARD = TODAY + dt.timedelta(days=8)  # the statement period (7 days) is over: the office may decide


async def _policy(client: Client, world: World, **settings: Any) -> Any:
    await client.login("sfj_admin")
    return await client.put(f"/api/agencies/{world.province.id}/policy", json=settings)


async def _close(client: Client, year: int = 2026) -> Any:
    await client.login("sfj_admin")
    r = await client.post("/api/assessments/close-year", json={"year": year})
    assert r.status_code == 200, r.text
    return r.json()


async def _decide(client: Client, case_id: int, user: str = "sfj_admin", **body: Any) -> Any:
    await client.login(user)
    data = {"decision": "confirm", "reason": "连续两年考核不合格，事实清楚", **body}
    return await client.post(f"/api/assessments/cases/{case_id}/decision", json=data)


async def _case_of(client: Client, world: World) -> int:
    await add_rating_pair(client, world)
    out = await _close(client)
    (case_id,) = out["case_ids"]
    return int(case_id)


async def add_rating_pair(client: Client, world: World) -> None:
    await client.login("admin_a")
    for year in (2025, 2026):
        r = await client.post(
            "/api/assessments/ratings",
            json={"officer_id": world.officer_a.id, "year": year, "grade": "不合格", "confirm": True},
        )
        assert r.status_code == 201, r.text


# ---------------------------------------------------------------- 1. failing grades are the policy's


async def test_a_province_on_the_civil_service_scale(client: Client, db: AsyncSession, world: World) -> None:
    r = await _policy(client, world, failing_grades=["不称职"])
    assert r.status_code == 400 and "“不称职”不在考核等次列表（优秀、合格、不合格）中" in r.text
    r = await client.get(f"/api/agencies/{world.province.id}/policy")
    assert r.json()["policy"]["failing_grades"] == ["不合格"]  # unchanged
    assert r.json()["grade_presets"]["civil_service"]["failing"] == ["不称职"]
    r = await _policy(client, world, **CIVIL)
    assert r.status_code == 200, r.text

    other = await add_officer(db, world.dept_a, "周八")
    await db.commit()
    await client.login("admin_a")
    rated: dict[tuple[int, int], dict[str, Any]] = {}
    for officer_id, grades in (
        (world.officer_a.id, ("不称职", "不称职")),
        (other.id, ("基本称职", "不称职")),
    ):
        for year, grade in zip((2025, 2026), grades, strict=True):
            r = await client.post(
                "/api/assessments/ratings",
                json={"officer_id": officer_id, "year": year, "grade": grade, "confirm": True},
            )
            assert r.status_code == 201, r.text
            rated[(officer_id, year)] = r.json()
    r = await client.post(
        "/api/assessments/ratings", json={"officer_id": other.id, "year": 2024, "grade": "不合格"}
    )
    assert r.status_code == 400 and "不在本发证机关的等次列表中" in r.text
    fail, basic = rated[(world.officer_a.id, 2026)], rated[(other.id, 2025)]
    assert (fail["excellent_barred"], fail["remedy"]) == (True, "criticism")
    assert (basic["excellent_barred"], basic["remedy"]) == (False, None)

    r = await client.get("/assessments", params={"year": 2026})
    assert '<option value="基本称职"' in r.text and '<option value="基本合格"' not in r.text
    assert '<span class="badge err">不称职</span>' in r.text
    r = await client.get(f"/assessments/officers/{world.officer_a.id}")
    assert "2026 年度考核不称职：当年公务员年度考核不得评为优秀；须批评教育" in r.text

    out = await _close(client)
    assert out["cases_opened"] == 1  # 不称职 twice; 基本称职 + 不称职 is not two failing years
    case = await db.get(ExitCase, out["case_ids"][0])
    assert case is not None and case.officer_id == world.officer_a.id


# ---------------------------------------------------------------- 2. corrections while a case runs


async def test_correction_before_the_decision_withdraws_the_case(
    client: Client, db: AsyncSession, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_id = await _case_of(client, world)
    case = (await client.get(f"/api/assessments/cases/{case_id}")).json()
    assert (await client.get("/api/rosters", params={"exit": "open"})).json()["total"] == 1
    await client.login("admin_a")
    r = await client.post(
        f"/api/assessments/ratings/{case['first_rating']['id']}/correction",
        json={"grade": "合格", "reason": "复查发现2025年度评分错误"},
    )
    assert r.status_code == 201, r.text
    case = (await client.get(f"/api/assessments/cases/{case_id}")).json()
    assert case["status"] == "evidence_withdrawn" and case["decision"] is None
    kinds = [e["kind"] for e in case["timeline"]]
    assert kinds[-2:] == ["evidence_corrected", "evidence_withdrawn"]
    assert "2025 年度为“合格”" in case["timeline"][-1]["note"]
    r = await client.get("/api/rosters", params={"exit": "open"})
    assert r.status_code == 200 and r.json()["total"] == 0  # the procedure is over: not 未办结
    set_today(monkeypatch, HEARD)
    r = await _decide(client, case_id)
    assert r.status_code == 400 and "证据不再支持而终结" in r.text
    audited = await db.scalar(
        select(AuditEvent).where(AuditEvent.action == "assessment.case_evidence_corrected")
    )
    assert audited is not None and "withdraw" in audited.data


async def test_a_policy_that_no_longer_fails_the_grades_refuses_the_decision(
    client: Client, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_id = await _case_of(client, world)
    assert (await _policy(client, world, **CIVIL)).status_code == 200  # 不合格 is no longer a grade
    set_today(monkeypatch, HEARD)
    r = await _decide(client, case_id)
    assert r.status_code == 400 and "证据不再支持退出决定：2025 年度为“不合格”" in r.text
    r = await _decide(client, case_id, decision="drop", reason="等次调整后不再构成连续两年不称职")
    assert r.status_code == 200 and r.json()["status"] == "decided"


async def test_correction_after_the_decision_opens_the_review(
    client: Client, db: AsyncSession, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    q = await add_qualification(db, world.officer_a)
    q_id = q.id
    await db.commit()
    case_id = await _case_of(client, world)
    set_today(monkeypatch, HEARD)
    assert (await _decide(client, case_id)).status_code == 200
    case = (await client.get(f"/api/assessments/cases/{case_id}")).json()
    await client.login("admin_a")
    r = await client.post(
        f"/api/assessments/ratings/{case['second_rating']['id']}/correction",
        json={"grade": "合格", "reason": "2026年度考核复查改为合格"},
    )
    assert r.status_code == 201, r.text
    case = (await client.get(f"/api/assessments/cases/{case_id}")).json()
    # Not silently undone: the decision stands, the review is open for the office.
    assert case["status"] == "review_requested" and case["decision"] == "confirm"
    assert "依职权启动复核" in case["review_request"]
    qualification = await db.get(ExamQualification, q_id)
    assert qualification is not None
    await db.refresh(qualification)
    assert qualification.status == "removed"
    await client.login("sfj_admin")
    r = await client.post(
        f"/api/assessments/cases/{case_id}/review-decision",
        json={"result": "overturned", "reason": "考核结果已更正，不再连续两年不合格"},
    )
    assert r.status_code == 200, r.text
    assert [e["kind"] for e in r.json()["timeline"]][-3:] == [
        "review_decided",
        "qualification_restored",
        "bar_lifted",
    ]
    await db.refresh(qualification)
    assert qualification.status == "valid"
    bar = await db.scalar(select(ExitBar).where(ExitBar.case_id == case_id))
    assert bar is not None and bar.lifted_on == HEARD


# ---------------------------------------------------------------- 3. and 5. what an exit leaves behind


async def test_moved_off_post_with_a_one_year_bar(
    client: Client, db: AsyncSession, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = await _policy(client, world, two_year_unqualified_outcome="move_off_post", move_off_post_bar_years=1)
    assert r.status_code == 200, r.text
    await add_qualification(db, world.officer_a)
    card = await add_certificate(
        db, world.officer_a, world.dept_a, world.province, "A2024000077", kind="enforcement"
    )
    card_id, supervision_id = card.id, world.cert_a.id
    await db.commit()
    case_id = await _case_of(client, world)
    set_today(monkeypatch, HEARD)
    r = await _decide(client, case_id)
    assert r.status_code == 200, r.text
    assert r.json()["decided_outcome"] == "move_off_post"
    kinds = [e["kind"] for e in r.json()["timeline"]]
    assert {"qualification_removed", "moved_off_post", "bar_recorded", "certificates"} <= set(kinds)

    await client.login("admin_a")
    officer = (await client.get(f"/api/officers/{world.officer_a.id}")).json()
    assert officer["employment_status"] == "transferred"
    assert officer["postings"][-1]["ended_on"] == HEARD.isoformat()
    cards: dict[int, str] = {i: s for i, s in await db.execute(select(Certificate.id, Certificate.status))}
    assert cards[card_id] == "cancelled" and cards[supervision_id] == "valid"  # the enforcement card only
    reason = await db.scalar(
        select(CertificateEvent.cancel_reason).where(CertificateEvent.certificate_id == card_id)
    )
    assert reason == "left_post"  # 调离: left the enforcement post, not a qualification removed
    bar = await db.scalar(select(ExitBar).where(ExitBar.case_id == case_id))
    assert bar is not None and bar.barred_until == dt.date(2028, 1, 18)

    # Back on an enforcement post: still barred for a year, and the suspended qualification is gone.
    r = await client.post(
        f"/api/officers/{world.officer_a.id}/moves",
        json={
            "version": officer["version"],
            "effective_on": HEARD.isoformat(),
            "reason": "返岗",
            "employment_status": "active",
        },
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        "/api/certificates/applications/eligibility",
        json={"officer_ids": [world.officer_a.id], "kind": "enforcement"},
    )
    missing = {m["code"]: m["message"] for m in r.json()[0]["missing"]}
    assert "not_in_post" not in missing and "no_exam" in missing
    assert "2028年01月18日前不得申领" in missing["exit_barred"]
    r = await client.post(
        "/api/certificates/applications", json={"officer_ids": [world.officer_a.id], "kind": "enforcement"}
    )
    assert r.status_code == 422 and "调离执法岗位，2028年01月18日前不得申领" in r.text


BAR_CASES = [
    # (what, policy, card kinds, card statuses after, reapplication bar until, exit bar until, words)
    (
        "revoke, bar 1 year",
        {"revocation_bar_years": 1},
        "revoked",
        "valid",
        dt.date(2028, 1, 18),
        dt.date(2028, 1, 18),
        "2028年01月18日前",
    ),
    (
        "cancel both kinds, barred for ever",
        {
            "revocation_bar_years": None,
            "exit_certificate_action": "cancel",
            "exit_certificate_kinds": ["enforcement", "supervision"],
        },
        "cancelled",
        "cancelled",
        None,
        None,
        "终身不得申领",
    ),
]


@pytest.mark.parametrize(
    "what,settings,enforcement,supervision,reapply,until,words", BAR_CASES, ids=[c[0] for c in BAR_CASES]
)
async def test_qualification_removed_under_the_policy(
    client: Client,
    db: AsyncSession,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    what: str,
    settings: dict[str, Any],
    enforcement: str,
    supervision: str,
    reapply: dt.date | None,
    until: dt.date | None,
    words: str,
) -> None:
    assert (await _policy(client, world, **settings)).status_code == 200
    card = await add_certificate(
        db, world.officer_a, world.dept_a, world.province, "A2024000078", kind="enforcement"
    )
    card_id, supervision_id = card.id, world.cert_a.id
    await db.commit()
    case_id = await _case_of(client, world)
    set_today(monkeypatch, HEARD)
    assert (await _decide(client, case_id)).status_code == 200
    cards: dict[int, str] = {i: s for i, s in await db.execute(select(Certificate.id, Certificate.status))}
    assert (cards[card_id], cards[supervision_id]) == (enforcement, supervision)
    bars = (await db.scalars(select(ReapplicationBar.barred_until))).all()
    assert bars == ([reapply] if enforcement == "revoked" else [])
    bar = await db.scalar(select(ExitBar).where(ExitBar.case_id == case_id))
    assert bar is not None and bar.barred_until == until and words in bar.conditions
    await client.login("admin_a")
    r = await client.post(
        "/api/certificates/applications/eligibility",
        json={"officer_ids": [world.officer_a.id], "kind": "enforcement"},
    )
    assert words in {m["code"]: m["message"] for m in r.json()[0]["missing"]}["exit_barred"]


# ---------------------------------------------------------------- 4. officers back in post


async def test_an_officer_back_in_post_carries_the_two_years(
    client: Client, db: AsyncSession, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_rating_pair(client, world)
    officer = (await client.get(f"/api/officers/{world.officer_a.id}")).json()
    r = await client.post(
        f"/api/officers/{world.officer_a.id}/moves",
        json={
            "version": officer["version"],
            "effective_on": "2026-12-01",
            "reason": "借调外单位",
            "employment_status": "transferred",
        },
    )
    assert r.status_code == 200, r.text
    assert (await _close(client))["cases_opened"] == 0  # not in post at the close: skipped
    await client.login("admin_a")
    officer = (await client.get(f"/api/officers/{world.officer_a.id}")).json()
    r = await client.post(
        f"/api/officers/{world.officer_a.id}/moves",
        json={
            "version": officer["version"],
            "effective_on": "2027-01-05",
            "reason": "借调结束返岗",
            "employment_status": "active",
        },
    )
    assert r.status_code == 200, r.text
    set_today(monkeypatch, dt.date(2028, 1, 10))
    out = await _close(client, 2027)
    assert out["cases_opened"] == 1
    r = await client.get("/api/assessments/cases", params={"returned": "true"})
    assert (
        r.json()["total"] == 1 and r.json()["items"][0]["year"] == 2026 and r.json()["items"][0]["returned"]
    )
    case = (await client.get(f"/api/assessments/cases/{out['case_ids'][0]}")).json()
    assert case["timeline"][0]["kind"] == "returned"
    assert (await _close(client, 2027))["cases_opened"] == 0  # once
    assert (await client.get("/api/assessments/cases", params={"returned": "false"})).json()["total"] == 0
    r = await client.get("/assessments/cases", params={"returned": "true"})
    assert r.status_code == 200 and "返岗后立案</span>" in r.text
    r = await client.get("/assessments/cases", params={"returned": ""})
    assert r.status_code == 200 and "李明" in r.text
    r = await client.get(f"/assessments/cases/{out['case_ids'][0]}")
    assert "2026 年度结转时不在执法岗位，返岗后立案" in r.text


# ---------------------------------------------------------------- 6. who decides


async def test_the_legal_affairs_office_of_the_same_or_a_higher_level_decides(
    client: Client, db: AsyncSession, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_account(db, "dept_admin", Role.AGENCY_ADMIN, world.dept_a)
    await db.commit()
    case_id = await _case_of(client, world)
    set_today(monkeypatch, HEARD)
    r = await _decide(client, case_id, user="admin_a")  # the city government, not marked an office
    assert r.status_code == 403 and "江南省甲市不是法制机构" in r.text
    r = await _decide(client, case_id, user="dept_admin")  # the officer's own bureau
    assert r.status_code == 403 and "甲市市场监督管理局不是法制机构" in r.text
    assert (await client.get(f"/api/assessments/cases/{case_id}")).json()["decider_refusal"]
    r = await client.get(f"/assessments/cases/{case_id}")
    assert "不是法制机构" in r.text and f"/assessments/cases/{case_id}/decision" not in r.text
    r = await _decide(client, case_id, user="admin_b")  # another city's: not even in sight
    assert r.status_code == 404
    # The issuing authority marks the city government as the legal-affairs office of its level (甲市司法局).
    await client.login("sfj_admin")
    city = (await client.get(f"/api/agencies/{world.city_a.id}")).json()
    fields = ("name", "region_code", "level", "kind", "parent_id", "short_name", "is_enforcement_subject")
    fields += ("enforcement_basis", "is_issuing_authority", "authority_name")
    r = await client.put(
        f"/api/agencies/{world.city_a.id}",
        json={**{k: city[k] for k in fields}, "is_legal_affairs_office": True},
    )
    assert r.status_code == 200 and r.json()["is_legal_affairs_office"] is True
    assert '<span class="badge">法制机构</span>' in (await client.get("/agencies")).text
    r = await _decide(client, case_id, user="admin_a")
    assert r.status_code == 200 and r.json()["decided_by_name"] == "admin_a"
    assert r.json()["decider_refusal"] == ""


# ---------------------------------------------------------------- 7. the other settings, not at their default


async def test_review_request_days(client: Client, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (await _policy(client, world, review_request_days=10)).status_code == 200
    case_id = await _case_of(client, world)
    set_today(monkeypatch, HEARD)
    r = await _decide(client, case_id)
    assert r.json()["review_deadline"] == (HEARD + dt.timedelta(days=10)).isoformat()
    set_today(monkeypatch, HEARD + dt.timedelta(days=11))
    await client.login("officer_a")
    r = await client.post(f"/api/assessments/cases/{case_id}/review-request", json={"request": "请求复核"})
    assert r.status_code == 400 and "复核申请期限已于" in r.text


@pytest.mark.parametrize("minimum,ok", [(0.5, True), (0.6, False)])
async def test_legal_review_ratio_min(
    client: Client, db: AsyncSession, world: World, minimum: float, ok: bool
) -> None:
    await add_officer(db, world.dept_a, "法审一", post=Post.LEGAL_REVIEW)
    await db.commit()
    assert (await _policy(client, world, legal_review_ratio_min=minimum)).status_code == 200
    r = await client.get("/api/rosters/dashboard", params={"year": 2026})
    lr = {i["key"]: i for i in r.json()["indicators"]}["legal_review"]
    # Enforcement posts: 李明, 王芳; legal review: 法审一 → 50 %.
    assert (lr["numerator"], lr["denominator"], lr["target"], lr["ok"]) == (1, 2, minimum * 100, ok)


async def test_nothing_is_written_when_the_policy_is_refused(
    client: Client, db: AsyncSession, world: World
) -> None:
    await client.login("sfj_admin")
    before = await count(db, AuditEvent)
    url = f"/api/agencies/{world.province.id}/policy"
    r = await client.put(url, json={"exit_certificate_kinds": ["driving"]})
    assert r.status_code == 400 and "证件种类" in r.text
    r = await client.put(url, json={"unknown": 1})
    assert r.status_code == 400 and "unknown" in r.text
    r = await client.put(f"/api/agencies/{world.dept_a.id}/policy", json={})
    assert r.status_code == 400 and "不是发证机关" in r.text
    assert await count(db, AuditEvent) == before
    assert (await client.get(url)).json()["policy"]["exit_certificate_kinds"] == ["enforcement"]
