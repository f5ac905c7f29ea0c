"""The rules of annual assessment and exit, as tables of cases."""

from __future__ import annotations

import datetime as dt

import pytest

from app.assessments import rules
from app.assessments.rules import (
    CaseStatus,
    Decision,
    ExitOutcome,
    RatingRow,
    RatingStatus,
    Remedy,
    ShortfallConsequence,
)
from app.lib.policy import SEED_GRADES

C, D, S = RatingStatus.CONFIRMED, RatingStatus.DRAFT, RatingStatus.SUPERSEDED
BAD, OK, BASIC, TOP = "不合格", "合格", "基本合格", "优秀"
SEED_FAIL = list(SEED_GRADES.failing)
_ids = iter(range(1, 10_000))


def r(
    year: int,
    grade: str,
    status: RatingStatus = C,
    *,
    officer: int = 1,
    agency: int = 10,
    corrects: int | None = None,
) -> RatingRow:
    return RatingRow(
        id=next(_ids),
        officer_id=officer,
        agency_id=agency,
        year=year,
        grade=grade,
        status=status,
        corrects_id=corrects,
    )


# ---------------------------------------------------------------- the two-year rule

TWO_YEAR_CASES = [
    # (what, ratings, closed year, case opened?)
    ("two consecutive unqualified years", [r(2025, BAD), r(2026, BAD)], 2026, True),
    ("only the closed year unqualified", [r(2025, OK), r(2026, BAD)], 2026, False),
    ("only the year before unqualified", [r(2025, BAD), r(2026, OK)], 2026, False),
    ("gap: another grade between", [r(2024, BAD), r(2025, OK), r(2026, BAD)], 2026, False),
    ("gap: a year with no rating between", [r(2024, BAD), r(2026, BAD)], 2026, False),
    ("gap: the year before has only a draft", [r(2025, BAD, D), r(2026, BAD)], 2026, False),
    ("the closed year has only a draft", [r(2025, BAD), r(2026, BAD, D)], 2026, False),
    ("基本合格 is not 不合格", [r(2025, BASIC), r(2026, BAD)], 2026, False),
    ("基本合格 twice is not 不合格", [r(2025, BASIC), r(2026, BASIC)], 2026, False),
    ("closing the earlier year looks one year back", [r(2024, BAD), r(2025, BAD), r(2026, OK)], 2025, True),
    ("closing a later year with a good grade", [r(2024, BAD), r(2025, BAD), r(2026, OK)], 2026, False),
    ("no ratings at all", [], 2026, False),
]


@pytest.mark.parametrize("what,rows,year,opened", TWO_YEAR_CASES, ids=[c[0] for c in TWO_YEAR_CASES])
def test_two_year_rule(what: str, rows: list[RatingRow], year: int, opened: bool) -> None:
    triggers = rules.triggers_for_year(rows, year, failing=SEED_FAIL)
    assert bool(triggers) is opened
    if opened:
        (t,) = triggers
        assert t.year == year and t.first.year == year - 1 and t.second.year == year
        assert rules.is_failing(t.first.grade, SEED_FAIL) and rules.is_failing(t.second.grade, SEED_FAIL)


def test_corrections_after_locking_decide_which_grade_counts() -> None:
    first_bad = r(2025, BAD, S)
    corrected_ok = r(2025, OK, C, corrects=first_bad.id)
    assert rules.triggers_for_year([first_bad, corrected_ok, r(2026, BAD)], 2026, failing=SEED_FAIL) == []
    first_ok = r(2025, OK, S)
    corrected_bad = r(2025, BAD, C, corrects=first_ok.id)
    (t,) = rules.triggers_for_year([first_ok, corrected_bad, r(2026, BAD)], 2026, failing=SEED_FAIL)
    assert t.first.id == corrected_bad.id  # the evidence is the correction, not the locked original


def test_officer_who_changed_agency_between_the_years() -> None:
    rows = [r(2025, BAD, agency=10), r(2026, BAD, agency=20)]
    (t,) = rules.triggers_for_year(rows, 2026, failing=SEED_FAIL)
    assert t.agency_changed and t.first.agency_id == 10 and t.second.agency_id == 20


def test_officers_are_judged_apart() -> None:
    rows = [
        r(2025, BAD, officer=1),
        r(2026, BAD, officer=2),
        r(2025, BAD, officer=3),
        r(2026, BAD, officer=3),
    ]
    assert [t.officer_id for t in rules.triggers_for_year(rows, 2026, failing=SEED_FAIL)] == [3]


def test_rerunning_close_year_opens_nothing_twice() -> None:
    rows = [
        r(2025, BAD, officer=1),
        r(2026, BAD, officer=1),
        r(2025, BAD, officer=2),
        r(2026, BAD, officer=2),
    ]
    first = rules.triggers_for_year(rows, 2026, failing=SEED_FAIL)
    assert {t.officer_id for t in first} == {1, 2}
    again = rules.triggers_for_year(
        rows, 2026, failing=SEED_FAIL, existing={(t.officer_id, t.year) for t in first}
    )
    assert again == []
    # A case of another year does not count as this year's.
    assert len(rules.triggers_for_year(rows, 2026, failing=SEED_FAIL, existing={(1, 2025)})) == 2


# ---------------------------------------------------------------- grades and consequences

GRADE_CASES = [
    (TOP, ["优秀", "合格", "不合格"], None),
    (BASIC, ["优秀", "合格", "不合格"], "不在本发证机关的等次列表中"),
    (BASIC, ["优秀", "合格", "基本合格", "不合格"], None),
    ("", ["优秀", "合格", "不合格"], "须选择考核等次"),
    ("良好", ["优秀", "合格", "基本合格", "不合格"], "不在"),
]


@pytest.mark.parametrize("grade,grades,error", GRADE_CASES)
def test_grade_from_the_authority_list(grade: str, grades: list[str], error: str | None) -> None:
    got = rules.grade_error(grade, grades)
    assert (got is None) if error is None else (got is not None and error in got)


@pytest.mark.parametrize(
    "grade,remedy,barred,expected_remedy",
    [
        (BAD, None, True, Remedy.CRITICISM),
        (BAD, Remedy.OFF_POST_TRAINING, True, Remedy.OFF_POST_TRAINING),
        (BASIC, Remedy.OFF_POST_TRAINING, False, None),
        (OK, None, False, None),
        (TOP, None, False, None),
    ],
)
def test_consequences_of_a_rating(
    grade: str, remedy: Remedy | None, barred: bool, expected_remedy: Remedy | None
) -> None:
    c = rules.consequences_of(grade, remedy, failing=SEED_FAIL, bars_excellent=SEED_FAIL)
    assert c.excellent_barred is barred and c.remedy is expected_remedy


@pytest.mark.parametrize("score,error", [(None, False), (0, False), (100, False), (-1, True), (101, True)])
def test_component_scores(score: int | None, error: bool) -> None:
    assert (rules.score_error(score, "法律知识测试") is not None) is error


@pytest.mark.parametrize(
    "status,reason,error",
    [
        (C, "录入错误", None),
        (C, "  ", "原因"),
        (D, "录入错误", "草稿"),
        (S, "录入错误", "已被更正"),
    ],
)
def test_corrections_only_of_locked_ratings_with_a_reason(
    status: RatingStatus, reason: str, error: str | None
) -> None:
    got = rules.correction_error(status, reason=reason)
    assert (got is None) if error is None else (got is not None and error in got)


def test_year_must_have_begun() -> None:
    today = dt.date(2026, 9, 1)
    assert rules.year_error(2026, today) is None
    assert rules.year_error(2027, today) is not None
    assert rules.year_error(1999, today) is not None


# ---------------------------------------------------------------- due process

NOTICE = dt.date(2027, 1, 5)
DEADLINE = rules.statement_deadline(NOTICE, 7)


def test_deadlines() -> None:
    assert dt.date(2027, 1, 12) == DEADLINE
    assert rules.review_deadline(dt.date(2027, 1, 20), 30) == dt.date(2027, 2, 19)


@pytest.mark.parametrize(
    "status,today,text,error",
    [
        (CaseStatus.OPEN, DEADLINE, "我对考核结果有异议", None),
        (CaseStatus.OPEN, DEADLINE + dt.timedelta(days=1), "迟交", "届满"),
        (CaseStatus.OPEN, NOTICE, " ", "不能为空"),
        (CaseStatus.DECIDED, NOTICE, "太晚了", "已作出决定"),
        (CaseStatus.EVIDENCE_WITHDRAWN, NOTICE, "我有异议", "证据不再支持而终结"),
    ],
)
def test_statement(status: CaseStatus, today: dt.date, text: str, error: str | None) -> None:
    got = rules.statement_error(status, deadline=DEADLINE, today=today, text=text)
    assert (got is None) if error is None else (got is not None and error in got)


DECISION_CASES = [
    # (what, status, decision, outcome, statement given, today, reason, error)
    ("after the statement", CaseStatus.OPEN, Decision.CONFIRM, None, True, NOTICE, "事实清楚", None),
    (
        "after the deadline without statement",
        CaseStatus.OPEN,
        Decision.CONFIRM,
        None,
        False,
        DEADLINE + dt.timedelta(days=1),
        "逾期未陈述",
        None,
    ),
    (
        "before the deadline without statement",
        CaseStatus.OPEN,
        Decision.CONFIRM,
        None,
        False,
        DEADLINE,
        "急",
        "未届满",
    ),
    ("without reasons", CaseStatus.OPEN, Decision.DROP, None, True, NOTICE, "", "理由"),
    (
        "change to the same outcome",
        CaseStatus.OPEN,
        Decision.CHANGE,
        ExitOutcome.REMOVE_QUALIFICATION,
        True,
        NOTICE,
        "改",
        "不同",
    ),
    ("change without an outcome", CaseStatus.OPEN, Decision.CHANGE, None, True, NOTICE, "改", "不同"),
    (
        "change to moving off post",
        CaseStatus.OPEN,
        Decision.CHANGE,
        ExitOutcome.MOVE_OFF_POST,
        True,
        NOTICE,
        "情节较轻",
        None,
    ),
    ("twice", CaseStatus.DECIDED, Decision.CONFIRM, None, True, NOTICE, "再次", "不能重复"),
]


@pytest.mark.parametrize(
    "what,status,decision,outcome,stated,today,reason,error",
    DECISION_CASES,
    ids=[c[0] for c in DECISION_CASES],
)
def test_decision(
    what: str,
    status: CaseStatus,
    decision: Decision,
    outcome: ExitOutcome | None,
    stated: bool,
    today: dt.date,
    reason: str,
    error: str | None,
) -> None:
    got = rules.decision_error(
        status,
        decision=decision,
        outcome=outcome,
        proposed=ExitOutcome.REMOVE_QUALIFICATION,
        reason=reason,
        deadline=DEADLINE,
        has_statement=stated,
        today=today,
    )
    assert (got is None) if error is None else (got is not None and error in got)


@pytest.mark.parametrize(
    "decision,changed,expected",
    [
        (Decision.CONFIRM, None, ExitOutcome.REMOVE_QUALIFICATION),
        (Decision.CHANGE, ExitOutcome.MOVE_OFF_POST, ExitOutcome.MOVE_OFF_POST),
        (Decision.DROP, None, None),
    ],
)
def test_decided_outcome(
    decision: Decision, changed: ExitOutcome | None, expected: ExitOutcome | None
) -> None:
    assert rules.decided_outcome(decision, ExitOutcome.REMOVE_QUALIFICATION, changed) is expected


@pytest.mark.parametrize(
    "status,today,text,error",
    [
        (CaseStatus.DECIDED, dt.date(2027, 2, 19), "请求复核", None),
        (CaseStatus.DECIDED, dt.date(2027, 2, 20), "请求复核", "届满"),
        (CaseStatus.DECIDED, dt.date(2027, 2, 1), "", "理由"),
        (CaseStatus.OPEN, dt.date(2027, 2, 1), "请求复核", "已作出决定的案件"),
        (CaseStatus.REVIEW_REQUESTED, dt.date(2027, 2, 1), "再次", "已申请复核"),
        (CaseStatus.EVIDENCE_WITHDRAWN, dt.date(2027, 2, 1), "请求复核", "没有可复核的决定"),
    ],
)
def test_review_request(status: CaseStatus, today: dt.date, text: str, error: str | None) -> None:
    got = rules.review_request_error(status, deadline=dt.date(2027, 2, 19), today=today, text=text)
    assert (got is None) if error is None else (got is not None and error in got)


# ---------------------------------------------------------------- the effect on certificates

CERT_CASES = [
    # (what, outcome, policy on removal, cards id → status, action, cards withdrawn)
    ("no certificate", ExitOutcome.REMOVE_QUALIFICATION, "revoke", {}, "revoke", []),
    ("one valid card revoked", ExitOutcome.REMOVE_QUALIFICATION, "revoke", {7: "valid"}, "revoke", [7]),
    ("policy cancels instead", ExitOutcome.REMOVE_QUALIFICATION, "cancel", {7: "valid"}, "cancel", [7]),
    (
        "already revoked card left alone",
        ExitOutcome.REMOVE_QUALIFICATION,
        "revoke",
        {7: "revoked"},
        "revoke",
        [],
    ),
    (
        "suspended card revoked, expired one left",
        ExitOutcome.REMOVE_QUALIFICATION,
        "revoke",
        {7: "suspended", 8: "expired"},
        "revoke",
        [7],
    ),
    (
        "moved off post: cancelled",
        ExitOutcome.MOVE_OFF_POST,
        "revoke",
        {7: "valid", 9: "cancelled"},
        "cancel",
        [7],
    ),
    ("dropped: nothing", None, "revoke", {7: "valid"}, None, [7]),
]


@pytest.mark.parametrize(
    "what,outcome,on_removal,cards,action,withdrawn", CERT_CASES, ids=[c[0] for c in CERT_CASES]
)
def test_certificate_effect(
    what: str,
    outcome: ExitOutcome | None,
    on_removal: str,
    cards: dict[int, str],
    action: str | None,
    withdrawn: list[int],
) -> None:
    assert rules.certificate_action(outcome, on_removal=on_removal) == action
    assert rules.certificates_to_withdraw(cards) == withdrawn
    assert rules.removes_qualification(outcome) is (outcome is ExitOutcome.REMOVE_QUALIFICATION)


@pytest.mark.parametrize(
    "needed,consequence,flag",
    [
        (0, "suspension", None),
        (15, "none", ShortfallConsequence.NONE),
        (15, "warning", ShortfallConsequence.WARNING),
        (400, "suspension", ShortfallConsequence.SUSPENSION),
    ],
)
def test_training_shortfall_flag(needed: int, consequence: str, flag: ShortfallConsequence | None) -> None:
    assert rules.shortfall_consequence(needed, consequence) is flag
