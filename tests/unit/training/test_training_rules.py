"""The rules of yearly training, by tables of cases: no database."""

from __future__ import annotations

import datetime as dt

import pytest

from app.lib.cells import parse_date
from app.lib.policy import Policy
from app.training import rules
from app.training.rules import (
    ComplianceStatus,
    LedgerEntry,
    RecordKind,
    Requirement,
    Totals,
    TrainingCategory,
    TrainingRule,
)

G, S, N = TrainingCategory.GENERAL_LAW, TrainingCategory.SPECIAL_LAW, TrainingCategory.NEW_LAW
D = dt.date


# ---------------------------------------------------------------- hours and dates


@pytest.mark.parametrize(
    "raw,tenths",
    [
        ("2", 20),
        ("2.5", 25),
        ("2.50", 25),
        ("0.5", 5),
        ("40", 400),
        (" 3 ", 30),
        ("３.５", 35),  # full-width digits from a Chinese IME
        ("4学时", 40),
        ("1.5小时", 15),
        ("200", 2000),
    ],
)
def test_parse_hours_accepts(raw: str, tenths: int) -> None:
    assert rules.parse_hours(raw) == tenths


@pytest.mark.parametrize(
    "raw,message",
    [
        ("", "学时不能为空"),
        ("0", "学时须大于 0"),
        ("0.0", "学时须大于 0"),
        ("-2", "不是正数"),
        ("abc", "不是正数"),
        ("2.25", "最多保留一位小数"),
        ("1e3", "不是正数"),
        ("200.5", "超过单条记录的上限"),
        ("2,5", "不是正数"),
    ],
)
def test_parse_hours_refuses(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rules.parse_hours(raw)


@pytest.mark.parametrize(
    "tenths,text", [(0, "0"), (5, "0.5"), (20, "2"), (25, "2.5"), (400, "40"), (-25, "-2.5"), (-20, "-2")]
)
def test_format_hours(tenths: int, text: str) -> None:
    assert rules.format_hours(tenths) == text


@pytest.mark.parametrize(
    "raw,date",
    [
        ("2026-03-01", D(2026, 3, 1)),
        ("2026/3/1", D(2026, 3, 1)),
        ("2026.03.01", D(2026, 3, 1)),
        ("2026年3月1日", D(2026, 3, 1)),
        ("20260301", D(2026, 3, 1)),
        ("2026-03-01 09:30:00", D(2026, 3, 1)),
        ("2026-02-30", None),
        ("三月一日", None),
        ("", None),
    ],
)
def test_parse_date(raw: str, date: dt.date | None) -> None:
    assert parse_date(raw) == date


# ---------------------------------------------------------------- policy → rule


def test_rule_from_policy_reads_values_and_labels() -> None:
    policy = Policy(
        training_hours_required=60,
        training_category_minimums={"公共法律知识": 10, "new_law": 6, "外语": 5, "special_law": 0},
        training_prorate_joiners=True,
    )
    rule = TrainingRule.from_policy(policy)
    assert rule.hours_required == 600
    assert dict(rule.category_minimums) == {G: 100, N: 60}
    assert rule.prorate_joiners is True
    assert TrainingRule.from_policy(Policy()).hours_required == 400  # 40 by default


# ---------------------------------------------------------------- requirement: joiners


FULL = TrainingRule(hours_required=400, category_minimums={G: 100, N: 60})
PRORATED = TrainingRule(hours_required=400, category_minimums={G: 100, N: 60}, prorate_joiners=True)


@pytest.mark.parametrize(
    "rule,joined,total,minimums,start_month",
    [
        (FULL, None, 400, {G: 100, N: 60}, 1),
        (FULL, D(2015, 5, 1), 400, {G: 100, N: 60}, 1),
        (FULL, D(2026, 7, 15), 400, {G: 100, N: 60}, 1),  # not prorated: the whole year is owed
        (PRORATED, D(2015, 5, 1), 400, {G: 100, N: 60}, 1),  # joined before the year
        (PRORATED, D(2026, 1, 20), 400, {G: 100, N: 60}, 1),  # January counts as the whole year
        (PRORATED, D(2026, 7, 15), 200, {G: 50, N: 30}, 7),  # 6 of 12 months
        (PRORATED, D(2026, 7, 1), 200, {G: 50, N: 30}, 7),
        (PRORATED, D(2026, 8, 1), 167, {G: 42, N: 25}, 8),  # 5/12 of 40 = 16.67 → 16.7, rounded up
        (PRORATED, D(2026, 12, 31), 34, {G: 9, N: 5}, 12),  # one month
    ],
)
def test_requirement_for(
    rule: TrainingRule,
    joined: dt.date | None,
    total: int,
    minimums: dict[TrainingCategory, int],
    start_month: int,
) -> None:
    req = rules.requirement_for(rule, 2026, joined)
    assert req is not None
    assert (req.total, dict(req.minimums), req.start_month) == (total, minimums, start_month)
    assert req.prorated is (start_month > 1)


@pytest.mark.parametrize("rule", [FULL, PRORATED])
def test_no_requirement_for_a_year_before_joining(rule: TrainingRule) -> None:
    assert rules.requirement_for(rule, 2025, D(2026, 3, 1)) is None
    assert rules.requirement_for(rule, 2026, D(2026, 12, 31)) is not None


# ---------------------------------------------------------------- pace


YEAR = Requirement(year=2026, total=400, minimums={})
FROM_JULY = Requirement(year=2026, total=200, minimums={}, start_month=7)


@pytest.mark.parametrize(
    "requirement,as_of,expected",
    [
        (YEAR, D(2025, 12, 31), 0),  # the year has not begun
        (YEAR, D(2026, 1, 1), 0),
        (YEAR, D(2026, 1, 31), 0),
        (YEAR, D(2026, 2, 1), 34),  # one month done: 40/12 = 3.33 → 3.4
        (YEAR, D(2026, 7, 1), 200),  # half the hours by July
        (YEAR, D(2026, 12, 31), 367),  # 11 months done
        (YEAR, D(2027, 1, 1), 400),  # the year is over: everything
        (FROM_JULY, D(2026, 6, 30), 0),  # before joining
        (FROM_JULY, D(2026, 7, 31), 0),
        (FROM_JULY, D(2026, 10, 1), 100),  # 3 of 6 months
        (FROM_JULY, D(2027, 3, 1), 200),
    ],
)
def test_expected_by(requirement: Requirement, as_of: dt.date, expected: int) -> None:
    assert rules.expected_by(requirement, as_of) == expected


# ---------------------------------------------------------------- totals over the ledger


def rec(i: int, year: int, cat: TrainingCategory, tenths: int) -> LedgerEntry:
    return LedgerEntry(i, RecordKind.RECORD, year, cat, tenths)


def rev(i: int, of: LedgerEntry) -> LedgerEntry:
    return LedgerEntry(i, RecordKind.REVERSAL, of.year, of.category, -of.tenths, corrects_id=of.id)


def amend(i: int, of: LedgerEntry, year: int, tenths: int) -> LedgerEntry:
    return LedgerEntry(i, RecordKind.AMENDMENT, year, of.category, tenths, corrects_id=of.id)


A = rec(1, 2026, G, 80)
B = rec(2, 2026, S, 120)
C = rec(3, 2025, N, 60)  # the year before
E = rec(4, 2027, G, 40)  # the year after


@pytest.mark.parametrize(
    "entries,year,expected",
    [
        ([], 2026, (0, 0, 0)),
        ([A, B, C, E], 2026, (80, 120, 0)),  # year boundaries: only 2026's lines
        ([A, B, C, E], 2025, (0, 0, 60)),
        ([A, B, C, E], 2027, (40, 0, 0)),
        ([A, rev(5, A)], 2026, (0, 0, 0)),  # reversed: nothing left
        ([A, rev(5, A), amend(6, A, 2026, 60)], 2026, (60, 0, 0)),  # amended 8 → 6 hours
        ([A, rev(5, A), amend(6, A, 2025, 80)], 2026, (0, 0, 0)),  # amended into the year before
        ([A, rev(5, A), amend(6, A, 2025, 80)], 2025, (80, 0, 0)),
        ([C, rev(7, C), B], 2025, (0, 0, 0)),
    ],
)
def test_year_totals(entries: list[LedgerEntry], year: int, expected: tuple[int, int, int]) -> None:
    t = rules.year_totals(entries, year)
    assert (t.of(G), t.of(S), t.of(N)) == expected
    assert t.total == sum(expected)


def test_live_ids() -> None:
    r = rev(5, A)
    a = amend(6, A, 2026, 60)
    assert rules.live_ids([A, B, r, a]) == {2, 6}
    assert rules.reversed_ids([A, B, r, a]) == {1}


# ---------------------------------------------------------------- standing


MINIMA = Requirement(year=2026, total=400, minimums={G: 100, N: 60})


@pytest.mark.parametrize(
    "requirement,totals,as_of,needed,short,status",
    [
        # A finished year: met or short, by how much, per category.
        (YEAR, (200, 200, 0), D(2027, 1, 5), 0, {}, ComplianceStatus.MET),
        (YEAR, (200, 250, 50), D(2027, 1, 5), 0, {}, ComplianceStatus.MET),  # more is fine
        (YEAR, (100, 100, 0), D(2027, 1, 5), 200, {}, ComplianceStatus.SHORT),
        (YEAR, (0, 0, 0), D(2030, 1, 1), 400, {}, ComplianceStatus.SHORT),
        # Category minimums: the total is reached but general law is short by 5 hours.
        (MINIMA, (50, 300, 60), D(2027, 1, 5), 50, {G: 50}, ComplianceStatus.SHORT),
        # Both short: what is needed is the larger of the two shortfalls.
        (MINIMA, (50, 200, 0), D(2027, 1, 5), 150, {G: 50, N: 60}, ComplianceStatus.SHORT),
        (MINIMA, (0, 370, 0), D(2027, 1, 5), 160, {G: 100, N: 60}, ComplianceStatus.SHORT),
        (MINIMA, (100, 240, 60), D(2027, 1, 5), 0, {}, ComplianceStatus.MET),
        # During the year: behind pace (under half by July) or on track.
        (YEAR, (100, 50, 0), D(2026, 7, 1), 250, {}, ComplianceStatus.BEHIND),
        (YEAR, (100, 100, 0), D(2026, 7, 1), 200, {}, ComplianceStatus.ON_TRACK),
        (YEAR, (0, 0, 0), D(2026, 1, 15), 400, {}, ComplianceStatus.ON_TRACK),
        (YEAR, (300, 100, 0), D(2026, 3, 1), 0, {}, ComplianceStatus.MET),
        # A prorated joiner from July: 20 hours, 10 expected by October.
        (FROM_JULY, (90, 0, 0), D(2026, 10, 1), 110, {}, ComplianceStatus.BEHIND),
        (FROM_JULY, (100, 0, 0), D(2026, 10, 1), 100, {}, ComplianceStatus.ON_TRACK),
        (FROM_JULY, (200, 0, 0), D(2027, 1, 1), 0, {}, ComplianceStatus.MET),
    ],
)
def test_assess(
    requirement: Requirement,
    totals: tuple[int, int, int],
    as_of: dt.date,
    needed: int,
    short: dict[TrainingCategory, int],
    status: ComplianceStatus,
) -> None:
    standing = rules.assess(requirement, Totals.of_values(*totals), as_of=as_of)
    assert (standing.needed, dict(standing.short_by_category), standing.status) == (needed, short, status)
    assert standing.compliant is (needed == 0)
    fast = rules.evaluate(requirement, rules.expected_by(requirement, as_of), list(totals), as_of=as_of)
    assert fast == (needed, short, status)


@pytest.mark.parametrize("total,percent", [(0, 0), (100, 25), (399, 99), (400, 100), (600, 100), (-10, 0)])
def test_percent_for_the_progress_bar(total: int, percent: int) -> None:
    standing = rules.assess(YEAR, Totals.of_values(total), as_of=D(2026, 6, 1))
    assert standing.percent == percent


# ---------------------------------------------------------------- corrections and duplicates


@pytest.mark.parametrize(
    "entry,already,message",
    [
        (A, False, None),
        (amend(6, A, 2026, 60), False, None),  # an amendment can itself be corrected
        (A, True, "已被冲销或更正"),
        (rev(5, A), False, "冲销记录本身不能再更正"),
    ],
)
def test_correction_error(entry: LedgerEntry, already: bool, message: str | None) -> None:
    error = rules.correction_error(entry, already_reversed=already)
    assert (error is None) if message is None else (error is not None and message in error)


@pytest.mark.parametrize(
    "same_key,generation",
    [
        ([], 0),  # first record of (officer, course, date)
        ([(0, False)], None),  # a live one: duplicate
        ([(0, True)], 1),  # the earlier one was reversed: a new generation
        ([(0, True), (1, True)], 2),
        ([(0, True), (1, False)], None),
        ([(3, True), (0, True)], 4),
    ],
)
def test_next_generation(same_key: list[tuple[int, bool]], generation: int | None) -> None:
    assert rules.next_generation(same_key) == generation


def test_reversal_generation_is_negative_and_distinct() -> None:
    assert [rules.reversal_generation(g) for g in range(3)] == [-1, -2, -3]


def test_labels() -> None:
    assert [c.label for c in rules.CATEGORIES] == ["公共法律知识", "专门法律知识", "新法律法规"]
    assert [v.label for v in rules.Verification] == ["签到表", "网络课程完成记录", "结业证书"]
    assert rules.category_from("新法律法规") is N and rules.category_from("special_law") is S
    assert rules.category_from("外语") is None
