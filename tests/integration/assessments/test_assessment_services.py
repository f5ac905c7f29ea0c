"""Ratings, the year-end close and the due process of an exit case, through the services."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.accounts.models import Agency
from app.accounts.selectors import agency_policies
from app.assessments import selectors
from app.assessments.models import AssessmentFlag, AssessmentRating, ExitCase, ExitCaseEvent, YearClosing
from app.assessments.rules import Decision, ExitOutcome, Remedy, ReviewResult
from app.assessments.schemas import (
    CloseYearOut,
    CorrectionIn,
    DecisionIn,
    RatingIn,
    ReviewDecisionIn,
    ReviewRequestIn,
    StatementIn,
)
from app.assessments.services import cases, closing, ratings
from app.audit.models import AuditEvent
from app.audit.services import audit_verify
from app.certificates.models import Certificate, ReapplicationBar
from app.cli import cli
from app.cli.assessments import close_year_lines, command_close_year
from app.db import make_sessionmaker
from app.exams.models import ExamQualification
from app.lib.errors import Conflict, DomainError, Forbidden, NotFound
from app.lib.policy import Policy, policy_to_json
from app.lib.security import system_principal
from app.settings import load_settings
from app.training.models import TrainingYearTotal
from tests.factories import World, add_certificate, add_officer
from tests.integration.assessments.conftest import (
    TODAY,
    add_qualification,
    add_rating,
    count,
    principal,
    set_today,
)

# ---------------------------------------------------------------- ratings


async def test_rating_draft_confirm_lock_and_correct(db: AsyncSession, world: World) -> None:
    admin = await principal(db, world.admin_a)
    r = await ratings.rating_save(
        db,
        principal=admin,
        data=RatingIn(
            officer_id=world.officer_a.id, year=2026, grade="合格", daily_score=80, legal_test_score=75
        ),
    )
    assert r.status == "draft" and not r.excellent_barred
    # A draft may be edited in place: still one live rating of the year.
    r2 = await ratings.rating_save(
        db,
        principal=admin,
        data=RatingIn(
            officer_id=world.officer_a.id, year=2026, grade="不合格", remedy=Remedy.OFF_POST_TRAINING
        ),
    )
    assert r2.id == r.id and r2.grade == "不合格" and r2.excellent_barred and r2.remedy == "off_post_training"
    await ratings.rating_confirm(db, principal=admin, rating_id=r.id)
    with pytest.raises(Conflict):
        await ratings.rating_confirm(db, principal=admin, rating_id=r.id)
    with pytest.raises(Conflict, match="更正"):
        await ratings.rating_save(
            db, principal=admin, data=RatingIn(officer_id=world.officer_a.id, year=2026, grade="合格")
        )
    with pytest.raises(DomainError, match="原因"):
        await ratings.rating_correct(
            db, principal=admin, rating_id=r.id, data=CorrectionIn(grade="合格", reason=" ")
        )
    new = await ratings.rating_correct(
        db, principal=admin, rating_id=r.id, data=CorrectionIn(grade="合格", reason="案卷评查分数录入错误")
    )
    assert new.status == "confirmed" and new.corrects_id == r.id and not new.excellent_barred
    old = await db.get(AssessmentRating, r.id)
    await db.refresh(old)
    assert old is not None and old.status == "superseded" and old.grade == "不合格"  # kept on record
    actions = (
        await db.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.action.startswith("assessment."))
            .order_by(AuditEvent.id)
        )
    ).all()
    assert actions == [
        "assessment.rating_created",
        "assessment.rating_updated",
        "assessment.rating_confirmed",
        "assessment.rating_corrected",
    ]
    assert (await audit_verify(db)).ok


async def test_grade_must_be_on_the_authority_list(db: AsyncSession, world: World) -> None:
    admin = await principal(db, world.admin_a)
    province_id = world.province.id
    data = RatingIn(officer_id=world.officer_a.id, year=2026, grade="基本合格")
    with pytest.raises(DomainError, match="等次列表"):
        await ratings.rating_save(db, principal=admin, data=data)
    await db.rollback()
    province = await db.get(Agency, province_id)
    assert province is not None
    province.policy_json = policy_to_json(Policy(grades=["优秀", "合格", "基本合格", "不合格"]))
    await db.commit()
    r = await ratings.rating_save(db, principal=admin, data=data)
    assert r.grade == "基本合格" and not r.excellent_barred


async def test_ratings_are_scoped(db: AsyncSession, world: World) -> None:
    admin_b = await principal(db, world.admin_b)
    with pytest.raises(NotFound):
        await ratings.rating_save(
            db, principal=admin_b, data=RatingIn(officer_id=world.officer_a.id, year=2026, grade="合格")
        )
    r = await add_rating(db, world.officer_a, 2026, "合格")
    await db.commit()
    with pytest.raises(NotFound):
        await selectors.rating_get(db, admin_b, r.id)
    officer = await principal(db, world.officer_account)
    with pytest.raises(Forbidden):
        await ratings.rating_confirm(db, principal=officer, rating_id=r.id)


async def test_confirm_all_drafts_of_a_year(db: AsyncSession, world: World) -> None:
    await add_rating(db, world.officer_a, 2026, "合格", status="draft")
    await add_rating(db, world.officer_b, 2026, "合格", status="draft")
    await db.commit()
    n = await ratings.rating_confirm_all(db, principal=await principal(db, world.admin_a), year=2026)
    assert n == 1  # city B's draft is not admin_a's to confirm
    assert await count(db, AssessmentRating, AssessmentRating.status == "draft") == 1


# ---------------------------------------------------------------- the year-end close


async def test_close_year_opens_cases_once_and_flags_shortfalls(db: AsyncSession, world: World) -> None:
    a, b = world.officer_a, world.officer_b
    gap = await add_officer(db, world.dept_a, "赵六")
    moved = await add_officer(db, world.dept_b, "钱七")
    for officer, grades in (
        (a, {2025: "不合格", 2026: "不合格"}),  # two running: a case
        (b, {2025: "合格", 2026: "不合格"}),  # once: consequences only
        (gap, {2024: "不合格", 2026: "不合格"}),  # a year without rating between: nothing
    ):
        for year, grade in grades.items():
            await add_rating(db, officer, year, grade)
    await add_rating(db, moved, 2025, "不合格", agency_id=world.dept_a.id)  # rated by city A, then moved to B
    await add_rating(db, moved, 2026, "不合格")
    await add_rating(db, gap, 2025, "不合格", status="draft")  # a draft counts for nothing
    await db.commit()
    authority = await principal(db, world.authority)

    out = await closing.close_year(db, principal=authority, year=2026)
    assert out.cases_opened == 2 and out.cases_existing == 0
    cases = (await db.scalars(select(ExitCase).order_by(ExitCase.officer_id))).all()
    assert {c.officer_id for c in cases} == {a.id, moved.id}
    case = next(c for c in cases if c.officer_id == a.id)
    assert case.proposed_outcome == "remove_qualification" and case.status == "open"
    assert case.statement_deadline == TODAY + dt.timedelta(days=7) and case.authority_id == world.province.id
    by_agency = {x.agency_name: x.cases_opened for x in out.agencies}
    assert by_agency == {"甲市市场监督管理局": 1, "乙市生态环境局": 1}
    kinds = (await db.scalars(select(ExitCaseEvent.kind).where(ExitCaseEvent.case_id == case.id))).all()
    assert kinds == ["opened", "notified"]
    # Every officer in post had no 2026 training: all four are flagged with the default consequence.
    assert out.flags_added == 4
    flags = (await db.scalars(select(AssessmentFlag))).all()
    assert {f.consequence for f in flags} == {"warning"} and {f.needed_tenths for f in flags} == {400}

    again = await closing.close_year(db, principal=authority, year=2026)
    assert again.cases_opened == 0 and again.cases_existing == 2 and again.flags_added == 0
    assert await count(db, ExitCase) == 2
    assert await count(db, YearClosing) == 2
    assert await count(db, AuditEvent, AuditEvent.action == "assessment.year_closed") == 2


async def test_concurrent_closes_open_and_flag_once(
    db: AsyncSession, engine: AsyncEngine, world: World
) -> None:
    """Two authorities' staff pressing 年度结转 at once: one waits for the other, then finds its work."""
    for officer in (world.officer_a, world.officer_b):
        await add_rating(db, officer, 2025, "不合格")
        await add_rating(db, officer, 2026, "不合格")
    await db.commit()
    maker = make_sessionmaker(engine)

    async def one() -> CloseYearOut:
        async with maker() as s:
            out = await closing.close_year(s, principal=system_principal(), year=2026)
            await s.commit()  # the edge's commit: the advisory lock is held until here
            return out

    outs = await asyncio.gather(one(), one(), one())
    assert sorted(o.cases_opened for o in outs) == [0, 0, 2]
    assert sorted(o.flags_added for o in outs) == [0, 0, 2]
    assert await count(db, ExitCase) == 2 and await count(db, AssessmentFlag) == 2
    assert await count(db, YearClosing) == 3


async def test_shortfall_flags_in_sql_match_the_training_rules(db: AsyncSession, world: World) -> None:
    """The one-statement flagging (plain yearly totals) flags exactly whom the rules find short, by
    how much and with which consequence, under two authorities with different policies."""
    city_b = await db.get(Agency, world.city_b.id)
    assert city_b is not None
    city_b.is_issuing_authority = True  # its own rules: 50 hours, suspension at annual review
    city_b.policy_json = policy_to_json(
        Policy(training_hours_required=50, training_shortfall_consequence="suspension")
    )
    hours = {  # tenths per category (general, special, new); None: no hours at all that year
        "甲1": (200, 150, 50),  # 40 h in city A: met exactly
        "甲2": (200, 150, 49),  # 39.9 h: 0.1 short
        "甲3": None,  # nothing: 40 short
        "乙1": (400, 0, 0),  # 40 h in city B, which asks 50: 10 short
        "乙2": (300, 200, 0),  # 50 h: met
    }
    officers = {}
    for name, tenths in hours.items():
        officer = await add_officer(db, world.dept_a if name.startswith("甲") else world.dept_b, name)
        officers[name] = officer
        if tenths is not None:
            db.add(
                TrainingYearTotal(
                    year=2026,
                    officer_id=officer.id,
                    general_law=tenths[0],
                    special_law=tenths[1],
                    new_law=tenths[2],
                )
            )
    retired = await add_officer(db, world.dept_a, "甲退")  # short, but not in post: never flagged
    retired.employment_status = "retired"
    await db.commit()
    tree = {a.id: a.path for a in (await db.scalars(select(Agency))).all()}
    policies = await agency_policies(db, tree)
    assert closing._flat_requirements(policies)

    by_rules = {(o, a, n, c) for o, a, n, c in await closing._shortfalls(db, "/", 2026, policies)}
    await closing._flag_in_sql(db, "/", 2026, policies)
    flags = (await db.scalars(select(AssessmentFlag))).all()
    in_sql = {(f.officer_id, f.agency_id, f.needed_tenths, f.consequence) for f in flags}
    assert in_sql == by_rules
    mine = {f.officer_id: (f.needed_tenths, f.consequence) for f in flags}
    assert mine[officers["甲2"].id] == (1, "warning") and mine[officers["甲3"].id] == (400, "warning")
    assert mine[officers["乙1"].id] == (100, "suspension")
    assert not {officers["甲1"].id, officers["乙2"].id, retired.id} & set(mine)
    await closing._flag_in_sql(db, "/", 2026, policies)  # again: the flags' key keeps each officer once
    assert await count(db, AssessmentFlag) == len(flags)
    await db.rollback()


async def test_close_year_respects_scope_and_role(db: AsyncSession, world: World) -> None:
    for officer in (world.officer_a, world.officer_b):
        await add_rating(db, officer, 2025, "不合格")
        await add_rating(db, officer, 2026, "不合格")
    await db.commit()
    with pytest.raises(Forbidden):
        await closing.close_year(db, principal=await principal(db, world.admin_a), year=2026)
    with pytest.raises(DomainError):
        await closing.close_year(db, principal=await principal(db, world.authority), year=2028)
    # The console command runs as the system over the whole tree.
    out = await closing.close_year(db, principal=system_principal(), year=2026)
    assert out.cases_opened == 2 and out.scope == "全部单位"


async def test_policy_outcome_and_deadline(db: AsyncSession, world: World) -> None:
    province = await db.get(type(world.province), world.province.id)
    assert province is not None
    province.policy_json = policy_to_json(
        Policy(two_year_unqualified_outcome="move_off_post", statement_days=3)
    )
    await add_rating(db, world.officer_a, 2025, "不合格")
    await add_rating(db, world.officer_a, 2026, "不合格")
    await db.commit()
    await closing.close_year(db, principal=await principal(db, world.authority), year=2026)
    case = await db.scalar(select(ExitCase))
    assert case is not None and case.proposed_outcome == "move_off_post"
    assert case.statement_deadline == TODAY + dt.timedelta(days=3)


# ---------------------------------------------------------------- due process


async def _open_case(db: AsyncSession, world: World) -> ExitCase:
    await add_rating(db, world.officer_a, 2025, "不合格")
    await add_rating(db, world.officer_a, 2026, "不合格")
    await db.commit()
    await closing.close_year(db, principal=await principal(db, world.authority), year=2026)
    case = await db.scalar(select(ExitCase))
    assert case is not None
    return case


# Rolling back a failed use case expires every loaded object: the tests keep plain ids.


async def test_statement_decision_and_review(
    db: AsyncSession, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_id = (await _open_case(db, world)).id
    qualification = await add_qualification(db, world.officer_a)
    supervision_id = world.cert_a.id
    card_id = (
        await add_certificate(
            db, world.officer_a, world.dept_a, world.province, "A2024000009", kind="enforcement"
        )
    ).id
    await db.commit()
    authority = await principal(db, world.authority)
    officer = await principal(db, world.officer_account)
    admin_a = await principal(db, world.admin_a)
    confirm = DecisionIn(decision=Decision.CONFIRM, reason="连续两年不合格，事实清楚")

    with pytest.raises(DomainError, match="未届满"):
        await cases.case_decide(db, principal=authority, case_id=case_id, data=confirm)
    await db.rollback()
    with pytest.raises(Forbidden):
        await cases.case_decide(db, principal=admin_a, case_id=case_id, data=confirm)
    with pytest.raises(Forbidden):  # an administrator cannot speak for the officer
        await cases.case_statement(db, principal=admin_a, case_id=case_id, data=StatementIn(statement="代写"))
    await cases.case_statement(
        db, principal=officer, case_id=case_id, data=StatementIn(statement="2025年我长期病假")
    )
    await db.commit()  # each use case is its own request: the edge commits it
    with pytest.raises(DomainError, match="复核"):
        await cases.case_request_review(
            db, principal=officer, case_id=case_id, data=ReviewRequestIn(request="太早")
        )
    await db.rollback()

    await cases.case_decide(db, principal=authority, case_id=case_id, data=confirm)
    await db.refresh(qualification)
    assert qualification.status == "removed" and qualification.removed_on == TODAY
    detail = await selectors.case_detail(db, officer, case_id)
    assert detail.status.value == "decided" and detail.decided_outcome is ExitOutcome.REMOVE_QUALIFICATION
    assert detail.review_deadline == TODAY + dt.timedelta(days=30)
    assert [e.kind for e in detail.timeline] == [
        "opened",
        "notified",
        "statement",
        "decision",
        "qualification_removed",
        "bar_recorded",
        "certificates",
    ]
    # The officer's enforcement card is revoked in the same transaction, with the reapplication bar;
    # the supervision card is not an exit's by default (policy exit_certificate_kinds).
    card = await db.get(Certificate, card_id)
    supervision = await db.get(Certificate, supervision_id)
    assert card is not None and supervision is not None
    await db.refresh(card)
    await db.refresh(supervision)
    assert card.status == "revoked" and supervision.status == "valid"
    bar = await db.scalar(select(ReapplicationBar).where(ReapplicationBar.officer_id == world.officer_a.id))
    assert bar is not None and bar.revoked_on == TODAY
    assert card.number in detail.timeline[-1].note
    await db.commit()
    with pytest.raises(DomainError, match="不能重复"):
        await cases.case_decide(db, principal=authority, case_id=case_id, data=confirm)
    await db.rollback()

    set_today(monkeypatch, TODAY + dt.timedelta(days=31))
    with pytest.raises(DomainError, match="届满"):
        await cases.case_request_review(
            db, principal=officer, case_id=case_id, data=ReviewRequestIn(request="请求复核")
        )
    await db.rollback()
    set_today(monkeypatch, TODAY + dt.timedelta(days=30))
    await cases.case_request_review(
        db, principal=officer, case_id=case_id, data=ReviewRequestIn(request="病假证明附后")
    )
    await cases.case_review_decide(
        db,
        principal=authority,
        case_id=case_id,
        data=ReviewDecisionIn(result=ReviewResult.OVERTURNED, reason="病假属实，2025年度考核另行处理"),
    )
    await db.refresh(qualification)
    assert qualification.status == "valid" and qualification.removed_on is None
    actions = (
        await db.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.action.startswith("assessment.case_"))
            .order_by(AuditEvent.id)
        )
    ).all()
    assert actions == [
        "assessment.case_statement",
        "assessment.case_decided",
        "assessment.case_review_requested",
        "assessment.case_review_decided",
    ]
    assert (await audit_verify(db)).ok


async def test_decision_after_the_deadline_without_statement_and_change(
    db: AsyncSession, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_id = (await _open_case(db, world)).id
    qualification = await add_qualification(db, world.officer_a)
    q_id = qualification.id
    await db.commit()
    authority = await principal(db, world.authority)
    set_today(monkeypatch, TODAY + dt.timedelta(days=8))
    with pytest.raises(DomainError, match="届满"):
        await cases.case_statement(
            db,
            principal=await principal(db, world.officer_account),
            case_id=case_id,
            data=StatementIn(statement="迟"),
        )
    await db.rollback()
    await cases.case_decide(
        db,
        principal=authority,
        case_id=case_id,
        data=DecisionIn(decision=Decision.CHANGE, outcome=ExitOutcome.MOVE_OFF_POST, reason="情节较轻"),
    )
    qualification = await db.get(ExamQualification, q_id)
    assert qualification is not None
    await db.refresh(qualification)
    # moved off post: the qualification is suspended until a return and a new pass
    assert qualification.status == "removed" and "暂停" in qualification.removed_reason
    case = await db.get(ExitCase, case_id)
    assert case is not None
    await db.refresh(case)
    assert case.decided_outcome == "move_off_post" and case.decision == "change"


async def test_dropped_case_touches_nothing(db: AsyncSession, world: World) -> None:
    case = await _open_case(db, world)
    qualification = await add_qualification(db, world.officer_a)
    await db.commit()
    await cases.case_statement(
        db,
        principal=await principal(db, world.officer_account),
        case_id=case.id,
        data=StatementIn(statement="有异议"),
    )
    await cases.case_decide(
        db,
        principal=await principal(db, world.authority),
        case_id=case.id,
        data=DecisionIn(decision=Decision.DROP, reason="考核程序不规范"),
    )
    await db.refresh(qualification)
    assert qualification.status == "valid"
    kinds = (await db.scalars(select(ExitCaseEvent.kind).where(ExitCaseEvent.case_id == case.id))).all()
    assert "qualification_removed" not in kinds and "certificates" not in kinds
    card = await db.get(Certificate, world.cert_a.id)
    assert card is not None
    await db.refresh(card)
    assert card.status == "valid"


async def test_cases_are_scoped(db: AsyncSession, world: World) -> None:
    case = await _open_case(db, world)
    with pytest.raises(NotFound):
        await selectors.case_detail(db, await principal(db, world.admin_b), case.id)
    other = await add_officer(db, world.dept_a, "孙八")
    from app.lib.enums import Role
    from tests.factories import add_account

    acct = await add_account(db, "officer_other", Role.OFFICER, world.dept_a, officer=other)
    await db.commit()
    with pytest.raises(NotFound):
        await selectors.case_detail(db, await principal(db, acct), case.id)
    items, total = await selectors.case_list(db, await principal(db, world.admin_b))
    assert total == 0 and items == []
    items, total = await selectors.case_list(db, await principal(db, world.admin_a))
    assert total == 1 and items[0].officer_name == "李明"


async def test_correcting_the_evidence_is_on_the_timeline(db: AsyncSession, world: World) -> None:
    case = await _open_case(db, world)
    new = await ratings.rating_correct(
        db,
        principal=await principal(db, world.admin_a),
        rating_id=case.first_rating_id,
        data=CorrectionIn(grade="合格", reason="复查发现评分错误"),
    )
    detail = await selectors.case_detail(db, await principal(db, world.authority), case.id)
    assert detail.first_rating.id == new.id and detail.first_rating.grade == "合格"
    assert detail.timeline[-2].kind == "evidence_corrected" and "更正为“合格”" in detail.timeline[-2].note
    # The two years no longer both fail: the undecided case closes on withdrawn evidence.
    assert detail.timeline[-1].kind == "evidence_withdrawn" and detail.status.value == "evidence_withdrawn"


async def test_console_command(
    db: AsyncSession, world: World, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_rating(db, world.officer_a, 2025, "不合格")
    await add_rating(db, world.officer_a, 2026, "不合格")
    await db.commit()
    settings = load_settings({"APP_ENV": "test", "DATABASE_URL": database_url, "SECRET_KEY": "t" * 40})
    monkeypatch.setattr("app.settings.get_settings", lambda: settings)
    out = await command_close_year(year=2026, progress=False)
    assert out.cases_opened == 1 and out.scope == "全部单位"
    lines = close_year_lines(out)
    assert "新开立退出案件 1 件" in lines[0] and any(
        "甲市市场监督管理局：退出案件 1" in line for line in lines
    )
    again = await command_close_year(year=2026, progress=True)
    assert again.cases_opened == 0 and again.cases_existing == 1
    # The console command itself: its session commits what the close did, and a re-run opens nothing.
    r = await asyncio.to_thread(CliRunner().invoke, cli, ["assessments", "close-year", "2026", "--json"])
    assert r.exit_code == 0, r.output
    assert '"cases_opened":0' in r.output and '"cases_existing":1' in r.output
    assert await count(db, YearClosing) == 3


async def test_officers_no_longer_in_post_get_no_case(db: AsyncSession, world: World) -> None:
    retired = await add_officer(db, world.dept_a, "吴九")
    retired.employment_status = "retired"
    for officer in (retired, world.officer_a):
        await add_rating(db, officer, 2025, "不合格")
        await add_rating(db, officer, 2026, "不合格")
    await db.commit()
    out = await closing.close_year(db, principal=await principal(db, world.authority), year=2026)
    assert out.case_ids and out.cases_opened == 1
    case = await db.get(ExitCase, out.case_ids[0])
    assert case is not None and case.officer_id == world.officer_a.id


async def test_shortfall_flags_follow_the_training_rules(db: AsyncSession, world: World) -> None:
    """Enough hours in total but short of a category minimum is a shortfall; 40 hours of everything is not."""
    from tests.factories import add_course, add_record

    province = await db.get(Agency, world.province.id)
    assert province is not None
    province.policy_json = policy_to_json(
        Policy(training_category_minimums={"special_law": 10}, training_shortfall_consequence="suspension")
    )
    general = await add_course(
        db, world.dept_a, "2026公共法律", starts_on=dt.date(2026, 3, 1), hours_tenths=400
    )
    special = await add_course(
        db,
        world.dept_b,
        "2026专门法律",
        starts_on=dt.date(2026, 4, 1),
        hours_tenths=400,
        category="special_law",
    )
    await add_record(db, world.officer_a, general)  # 40 h, none of them special law: short 10 h
    await add_record(db, world.officer_b, special)  # 40 h of special law: met
    await db.commit()
    out = await closing.close_year(db, principal=await principal(db, world.authority), year=2026)
    flags = (await db.scalars(select(AssessmentFlag))).all()
    assert [(f.officer_id, f.needed_tenths, f.consequence) for f in flags] == [
        (world.officer_a.id, 100, "suspension")
    ]
    assert out.flags_added == 1
