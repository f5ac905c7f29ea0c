"""The exit rules a province varies: its failing grades, corrections while a case runs, who decides,
what 调离 and 取消 leave behind, officers back in post, and the policy that holds them together."""

from __future__ import annotations

import datetime as dt

import pytest

from app.assessments import rules
from app.assessments.rules import CaseStatus, Decision, ExitOutcome, RatingRow, RatingStatus, Remedy
from app.lib.policy import CIVIL_SERVICE_GRADES, DEFAULT_POLICY, SEED_GRADES, Policy, policy_error

C, S = RatingStatus.CONFIRMED, RatingStatus.SUPERSEDED
SEEDS = list(SEED_GRADES.failing)
CIVIL = list(CIVIL_SERVICE_GRADES.failing)
_ids = iter(range(1, 10_000))


def r(year: int, grade: str, status: RatingStatus = C, *, officer: int = 1) -> RatingRow:
    return RatingRow(id=next(_ids), officer_id=officer, agency_id=10, year=year, grade=grade, status=status)


# ---------------------------------------------------------------- failing grades are the policy's

FAILING_CASES = [
    # (what, failing grades, ratings, closed year, case opened?)
    ("seeds: 不合格 twice", SEEDS, [r(2025, "不合格"), r(2026, "不合格")], True),
    ("civil scale: 不称职 twice", CIVIL, [r(2025, "不称职"), r(2026, "不称职")], True),
    ("civil scale: 基本称职 is a pass", CIVIL, [r(2025, "基本称职"), r(2026, "不称职")], False),
    ("civil scale: 基本称职 twice", CIVIL, [r(2025, "基本称职"), r(2026, "基本称职")], False),
    ("civil scale: 不合格 is not its failing grade", CIVIL, [r(2025, "不合格"), r(2026, "不合格")], False),
    ("seeds: 不称职 is not its failing grade", SEEDS, [r(2025, "不称职"), r(2026, "不称职")], False),
    ("two failing grades", ["不合格", "基本合格"], [r(2025, "基本合格"), r(2026, "不合格")], True),
]


@pytest.mark.parametrize("what,failing,rows,opened", FAILING_CASES, ids=[c[0] for c in FAILING_CASES])
def test_failing_grades_come_from_the_policy(
    what: str, failing: list[str], rows: list[RatingRow], opened: bool
) -> None:
    assert bool(rules.triggers_for_year(rows, 2026, failing=failing)) is opened


CONSEQUENCE_CASES = [
    # (what, grade, failing, bars 优秀, barred?, remedy)
    ("civil: 不称职 fails", "不称职", CIVIL, CIVIL, True, Remedy.CRITICISM),
    ("civil: 基本称职 passes", "基本称职", CIVIL, CIVIL, False, None),
    ("civil: 称职", "称职", CIVIL, CIVIL, False, None),
    ("a province barring 优秀 after 基本称职 too", "基本称职", CIVIL, ["基本称职", "不称职"], True, None),
    ("seeds: 不合格", "不合格", SEEDS, SEEDS, True, Remedy.CRITICISM),
]


@pytest.mark.parametrize(
    "what,grade,failing,bars,barred,remedy", CONSEQUENCE_CASES, ids=[c[0] for c in CONSEQUENCE_CASES]
)
def test_consequences_under_the_policy(
    what: str, grade: str, failing: list[str], bars: list[str], barred: bool, remedy: Remedy | None
) -> None:
    c = rules.consequences_of(grade, None, failing=failing, bars_excellent=bars)
    assert (c.excellent_barred, c.remedy) == (barred, remedy)


POLICY_CASES = [
    # (what, changes, error fragment or None)
    ("the seeds' default", {}, None),
    ("the civil-service preset", "civil", None),
    (
        "failing grade outside the list",
        {"failing_grades": ["不称职"]},
        "“不称职”不在考核等次列表（优秀、合格、不合格）中",
    ),
    ("优秀 bar outside the list", {"excellent_barring_grades": ["差"]}, "不得评优的等次“差”"),
    ("no failing grade", {"failing_grades": []}, "至少指定一个不合格等次"),
    ("every grade failing", {"grades": ["合格", "不合格"], "failing_grades": ["合格", "不合格"]}, "不能全部"),
    ("duplicate grades", {"grades": ["合格", "合格", "不合格"]}, "不能重复"),
    ("unknown outcome", {"two_year_unqualified_outcome": "fire"}, "处理方式"),
    ("unknown card action", {"exit_certificate_action": "burn"}, "吊销（revoke）或注销（cancel）"),
    ("unknown card kind", {"exit_certificate_kinds": ["driving"]}, "证件种类"),
    ("negative bar", {"revocation_bar_years": -1}, "0–100"),
    ("bar for ever", {"revocation_bar_years": None}, None),
    ("review period of 0 days", {"review_request_days": 0}, "复核申请期限"),
    ("legal-review ratio above 1", {"legal_review_ratio_min": 1.5}, "比例"),
]


@pytest.mark.parametrize("what,changes,error", POLICY_CASES, ids=[c[0] for c in POLICY_CASES])
def test_policy_holds_together(what: str, changes: object, error: str | None) -> None:
    if changes == "civil":
        assert DEFAULT_POLICY.with_grades(CIVIL_SERVICE_GRADES).failing_grades == ["不称职"]
        return
    assert isinstance(changes, dict)
    if error is None:
        assert policy_error(Policy(**changes)) is None
    else:
        with pytest.raises(ValueError, match=error):
            Policy(**changes)


# ---------------------------------------------------------------- corrections while a case runs

GAP_CASES = [
    # (what, first, second, failing, gap fragment or None)
    ("both still fail", (2025, "不合格"), (2026, "不合格"), SEEDS, None),
    ("first corrected to 合格", (2025, "合格"), (2026, "不合格"), SEEDS, "2025 年度为“合格”"),
    ("second corrected to 基本称职", (2025, "不称职"), (2026, "基本称职"), CIVIL, "2026 年度为“基本称职”"),
    (
        "corrected from one failing grade to another",
        (2025, "不合格"),
        (2026, "基本合格"),
        ["不合格", "基本合格"],
        None,
    ),
]


@pytest.mark.parametrize("what,first,second,failing,gap", GAP_CASES, ids=[c[0] for c in GAP_CASES])
def test_evidence_gap(
    what: str, first: tuple[int, str], second: tuple[int, str], failing: list[str], gap: str | None
) -> None:
    got = rules.evidence_gap(first, second, failing=failing)
    assert (got is None) if gap is None else (got is not None and gap in got)


EFFECT_CASES = [
    # (what, status, holds, decided outcome, effect)
    ("still holds: recorded only", CaseStatus.OPEN, True, None, "none"),
    ("undecided: closes on withdrawn evidence", CaseStatus.OPEN, False, None, "withdraw"),
    ("decided 取消: review opens", CaseStatus.DECIDED, False, ExitOutcome.REMOVE_QUALIFICATION, "review"),
    ("decided 调离: review opens", CaseStatus.DECIDED, False, ExitOutcome.MOVE_OFF_POST, "review"),
    (
        "reviewed and closed: review opens again",
        CaseStatus.CLOSED,
        False,
        ExitOutcome.MOVE_OFF_POST,
        "review",
    ),
    ("dropped: nothing to undo", CaseStatus.DECIDED, False, None, "note"),
    (
        "review pending: it sees the correction",
        CaseStatus.REVIEW_REQUESTED,
        False,
        ExitOutcome.MOVE_OFF_POST,
        "note",
    ),
    ("already withdrawn", CaseStatus.EVIDENCE_WITHDRAWN, False, None, "note"),
]


@pytest.mark.parametrize("what,status,holds,outcome,effect", EFFECT_CASES, ids=[c[0] for c in EFFECT_CASES])
def test_correction_effect(
    what: str, status: CaseStatus, holds: bool, outcome: ExitOutcome | None, effect: str
) -> None:
    assert rules.correction_effect(status, holds=holds, decided_outcome=outcome) == effect


DEADLINE = dt.date(2027, 1, 17)
DECISION_GAP_CASES = [
    # (what, status, decision, gap, error fragment or None)
    (
        "evidence gone: confirm refused",
        CaseStatus.OPEN,
        Decision.CONFIRM,
        "2025 年度为“合格”",
        "证据不再支持退出决定",
    ),
    ("evidence gone: change refused", CaseStatus.OPEN, Decision.CHANGE, "2025 年度为“合格”", "证据不再支持"),
    ("evidence gone: dropping is allowed", CaseStatus.OPEN, Decision.DROP, "2025 年度为“合格”", None),
    (
        "withdrawn case: nothing to decide",
        CaseStatus.EVIDENCE_WITHDRAWN,
        Decision.DROP,
        None,
        "已因考核结果更正",
    ),
    ("evidence holds", CaseStatus.OPEN, Decision.CONFIRM, None, None),
]


@pytest.mark.parametrize(
    "what,status,decision,gap,error", DECISION_GAP_CASES, ids=[c[0] for c in DECISION_GAP_CASES]
)
def test_decision_on_evidence_that_changed(
    what: str, status: CaseStatus, decision: Decision, gap: str | None, error: str | None
) -> None:
    got = rules.decision_error(
        status,
        decision=decision,
        outcome=ExitOutcome.MOVE_OFF_POST if decision is Decision.CHANGE else None,
        proposed=ExitOutcome.REMOVE_QUALIFICATION,
        reason="理由",
        deadline=DEADLINE,
        has_statement=True,
        today=DEADLINE,
        evidence_gap=gap,
    )
    assert (got is None) if error is None else (got is not None and error in got)


# ---------------------------------------------------------------- who decides

DECIDER_CASES = [
    # (what, admin?, office path, legal-affairs?, case agency path, error fragment or None)
    ("same-level office (county government over its bureau)", True, "/1/2/3/", True, "/1/2/3/9/", None),
    ("higher-level office (city over a county bureau)", True, "/1/2/", True, "/1/2/3/9/", None),
    ("the office's own officer", True, "/1/2/", True, "/1/2/", None),
    ("a department is no legal-affairs office", True, "/1/2/3/9/", False, "/1/2/3/9/", "不是法制机构"),
    ("a lower-level office", True, "/1/2/3/", True, "/1/2/", "不在"),
    ("a sibling office", True, "/1/4/", True, "/1/2/3/9/", "不在"),
    ("an officer", False, "/1/2/3/9/", False, "/1/2/3/9/", "管理员"),
]


@pytest.mark.parametrize(
    "what,admin,office,legal,agency,error", DECIDER_CASES, ids=[c[0] for c in DECIDER_CASES]
)
def test_who_decides(
    what: str, admin: bool, office: str, legal: bool, agency: str, error: str | None
) -> None:
    got = rules.decider_error(
        is_admin=admin,
        office_name="某单位",
        office_path=office,
        office_is_legal_affairs=legal,
        case_agency_name="当事人单位",
        case_agency_path=agency,
    )
    assert (got is None) if error is None else (got is not None and error in got)


# ---------------------------------------------------------------- officers back in post

RETURN_CASES = [
    # (what, ratings, years with a case, closed year, second year of the case to open or None)
    ("out at the 2025 close, back for 2026", [r(2024, "不合格"), r(2025, "不合格")], [], 2026, 2025),
    (
        "back and rated 合格 in the closed year",
        [r(2024, "不合格"), r(2025, "不合格"), r(2026, "合格")],
        [],
        2026,
        None,
    ),
    ("a case was opened on those years", [r(2024, "不合格"), r(2025, "不合格")], [2025], 2026, None),
    ("one failing year only", [r(2024, "合格"), r(2025, "不合格")], [], 2026, None),
    (
        "the closed year's pair is the ordinary close's",
        [r(2025, "不合格"), r(2026, "不合格")],
        [],
        2026,
        None,
    ),
    (
        "a corrected year does not count",
        [r(2024, "不合格"), r(2025, "不合格", S), r(2025, "合格")],
        [],
        2026,
        None,
    ),
    ("away several years", [r(2021, "不合格"), r(2022, "不合格")], [], 2026, 2022),
]


@pytest.mark.parametrize("what,rows,cased,year,second", RETURN_CASES, ids=[c[0] for c in RETURN_CASES])
def test_the_record_stays_with_the_person(
    what: str, rows: list[RatingRow], cased: list[int], year: int, second: int | None
) -> None:
    t = rules.returned_trigger(rows, 1, year + 1, failing=SEEDS, cased_years=cased)
    got = t.year if t is not None and t.year < year else None
    assert got == second


# ---------------------------------------------------------------- what must happen before a card again

ON = dt.date(2027, 3, 1)
BAR_CASES = [
    # (what, outcome, years, barred until, words)
    (
        "取消, seeds' 2 years",
        ExitOutcome.REMOVE_QUALIFICATION,
        2,
        dt.date(2029, 3, 1),
        "2029年03月01日前不得申领",
    ),
    ("取消, 1 year", ExitOutcome.REMOVE_QUALIFICATION, 1, dt.date(2028, 3, 1), "重新参加执法资格考试合格"),
    ("取消, for ever", ExitOutcome.REMOVE_QUALIFICATION, None, None, "终身不得申领"),
    (
        "调离, no waiting (default)",
        ExitOutcome.MOVE_OFF_POST,
        0,
        ON,
        "须返回执法岗位并重新参加执法资格考试合格",
    ),
    ("调离, 1 year", ExitOutcome.MOVE_OFF_POST, 1, dt.date(2028, 3, 1), "调离执法岗位，2028年03月01日前"),
]


@pytest.mark.parametrize("what,outcome,years,until,words", BAR_CASES, ids=[c[0] for c in BAR_CASES])
def test_exit_bar(
    what: str, outcome: ExitOutcome, years: int | None, until: dt.date | None, words: str
) -> None:
    bar = rules.exit_bar(outcome, ON, bar_years=years)
    assert bar.barred_until == until and words in bar.conditions
