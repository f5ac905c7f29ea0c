"""The rules of yearly training (年度培训): hours, requirements, shortfall, pace and the ledger.

Pure functions over plain values: no I/O, no session, no framework. Hours are counted in tenths
of an hour (``tenths``: 1.5 学时 is 15) so that sums are exact on every database engine.

Every officer needs ``training_hours_required`` hours a year (40 by default, seed 003 indicator 68)
of general law, specialised law and new-law training (seed 001 item 43), optionally with a minimum
per category; an officer who joined during the year may be required only a prorated share
(by whole months, counting the month of joining). The authority's ``Policy`` holds all three.

The ledger is append-only. A record (登记) has positive hours; a reversal (冲销) refers to the
record it cancels and carries the same hours negated; an amendment (更正) is a reversal plus a new
positive record that refers to the one it replaces. A year's total is the plain sum of signed hours.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from app.lib.enums import LabeledEnum
from app.lib.policy import DEFAULT_POLICY, Policy


class TrainingCategory(LabeledEnum):
    """培训类别 (seed 001 item 43)."""

    GENERAL_LAW = "general_law", "公共法律知识"
    SPECIAL_LAW = "special_law", "专门法律知识"
    NEW_LAW = "new_law", "新法律法规"


class Verification(LabeledEnum):
    """How attendance was verified."""

    SIGN_IN_SHEET = "sign_in_sheet", "签到表"
    ONLINE_COMPLETION = "online_completion", "网络课程完成记录"
    CERTIFICATE = "certificate", "结业证书"


class RecordKind(LabeledEnum):
    RECORD = "record", "登记"
    REVERSAL = "reversal", "冲销"
    AMENDMENT = "amendment", "更正"


class ComplianceStatus(LabeledEnum):
    MET = "met", "已达标"
    SHORT = "short", "未达标"
    BEHIND = "behind", "进度落后"
    ON_TRACK = "on_track", "进度正常"


CATEGORIES: tuple[TrainingCategory, ...] = tuple(TrainingCategory)

MAX_RECORD_TENTHS = 2000
"""One record holds at most 200 hours (a long off-post course); more is a typing error."""

# ---------------------------------------------------------------- hours and dates

_HOURS = re.compile(r"^(\d{1,4})(?:\.(\d+))?$")
_HOURS_SUFFIXES = ("学时", "小时", "课时", "h", "H")


def parse_hours(raw: str) -> int:
    """学时 as written in a form or a spreadsheet cell → tenths. Raises ``ValueError`` (Chinese)."""
    text = unicodedata.normalize("NFKC", raw).strip().replace(" ", "")
    for suffix in _HOURS_SUFFIXES:
        if text.endswith(suffix):
            text = text[: -len(suffix)]
            break
    if not text:
        raise ValueError("学时不能为空")
    m = _HOURS.match(text)
    if m is None:
        raise ValueError(f"学时“{raw.strip()}”不是正数")
    whole, frac = m.group(1), (m.group(2) or "").rstrip("0")
    if len(frac) > 1:
        raise ValueError(f"学时“{raw.strip()}”最多保留一位小数")
    tenths = int(whole) * 10 + (int(frac) if frac else 0)
    if tenths <= 0:
        raise ValueError("学时须大于 0")
    if tenths > MAX_RECORD_TENTHS:
        raise ValueError(f"学时“{raw.strip()}”超过单条记录的上限 {MAX_RECORD_TENTHS // 10} 学时")
    return tenths


def format_hours(tenths: int) -> str:
    """15 → "1.5", 400 → "40", -20 → "-2"."""
    sign = "-" if tenths < 0 else ""
    whole, frac = divmod(abs(tenths), 10)
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"


def hours_value(tenths: int) -> float:
    """For JSON: 15 → 1.5 (tenths are exact in a double's shortest repr)."""
    return tenths / 10


def category_from(raw: str) -> TrainingCategory | None:
    member = TrainingCategory.from_label_or_value(raw)
    return member if isinstance(member, TrainingCategory) else None


# ---------------------------------------------------------------- requirement


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class TrainingRule:
    """The training part of an authority's policy, in tenths, keyed by category."""

    hours_required: int
    category_minimums: Mapping[TrainingCategory, int] = field(default_factory=dict)
    prorate_joiners: bool = False

    @classmethod
    def from_policy(cls, policy: Policy) -> TrainingRule:
        """Policy keys may be category values or their Chinese labels; unknown keys are ignored."""
        minimums: dict[TrainingCategory, int] = {}
        for key, hours in policy.training_category_minimums.items():
            category = category_from(key)
            if category is not None and hours > 0:
                minimums[category] = int(hours) * 10
        return cls(
            hours_required=policy.training_hours_required * 10,
            category_minimums=minimums,
            prorate_joiners=policy.training_prorate_joiners,
        )

    @cached_property
    def minima(self) -> tuple[int, ...]:
        """The minimum of each category in the order of ``CATEGORIES`` (0 where none is set)."""
        return tuple(self.category_minimums.get(c, 0) for c in CATEGORIES)

    def met(self, general: int, special: int, new: int) -> bool:
        """Whether a full year's net hours per category meet the total and every minimum (joiners
        are not prorated here: ``requirement_for`` and ``assess`` judge one officer exactly)."""
        g, s, n = self.minima
        return general + special + new >= self.hours_required and general >= g and special >= s and new >= n


DEFAULT_RULE = TrainingRule.from_policy(DEFAULT_POLICY)
"""The training rule of an agency under no issuing authority's own policy."""


@dataclass(frozen=True)
class Requirement:
    """What one officer owes for one year, in tenths."""

    year: int
    total: int
    minimums: Mapping[TrainingCategory, int]
    start_month: int = 1
    """The first month counted (the month of joining when prorated, else January)."""

    @property
    def months(self) -> int:
        return 13 - self.start_month

    @property
    def prorated(self) -> bool:
        return self.start_month > 1


def requirement_for(rule: TrainingRule, year: int, joined_on: dt.date | None = None) -> Requirement | None:
    """The requirement for ``year``; None for an officer who joined only after it ended.

    An officer who joined during the year owes the whole requirement unless the policy prorates
    joiners; then the share of whole months from the month of joining to December, rounded up to
    the tenth of an hour (joined on 15 July: 6 of 12 months, 20 of 40 hours).
    """
    if joined_on is not None and joined_on.year > year:
        return None
    if not rule.prorate_joiners or joined_on is None or joined_on.year < year or joined_on.month == 1:
        return Requirement(year=year, total=rule.hours_required, minimums=dict(rule.category_minimums))
    months = 13 - joined_on.month
    return Requirement(
        year=year,
        total=_ceil_div(rule.hours_required * months, 12),
        minimums={c: _ceil_div(m * months, 12) for c, m in rule.category_minimums.items()},
        start_month=joined_on.month,
    )


def expected_by(requirement: Requirement, as_of: dt.date) -> int:
    """Hours (tenths) an officer on pace has by ``as_of``: the share of whole months elapsed.

    By 1 July of a full year that is 6 of 12 months, half the hours; before the year nothing,
    after it everything.
    """
    if as_of.year < requirement.year:
        return 0
    if as_of.year > requirement.year:
        return requirement.total
    elapsed = max(0, as_of.month - requirement.start_month)
    return _ceil_div(requirement.total * elapsed, requirement.months)


# ---------------------------------------------------------------- totals and standing


@dataclass(frozen=True)
class Totals:
    """Net hours (tenths) per category for one officer and one year."""

    by_category: Mapping[TrainingCategory, int]

    @property
    def total(self) -> int:
        return sum(self.by_category.values())

    def of(self, category: TrainingCategory) -> int:
        return self.by_category.get(category, 0)

    @classmethod
    def of_values(cls, general: int = 0, special: int = 0, new: int = 0) -> Totals:
        return cls(
            {
                TrainingCategory.GENERAL_LAW: general,
                TrainingCategory.SPECIAL_LAW: special,
                TrainingCategory.NEW_LAW: new,
            }
        )


@dataclass(frozen=True)
class LedgerEntry:
    """One row of the ledger as the rules need it."""

    id: int
    kind: RecordKind
    year: int
    category: TrainingCategory
    tenths: int
    corrects_id: int | None = None


def year_totals(entries: Iterable[LedgerEntry], year: int) -> Totals:
    """Net hours of ``year`` per category: records, amendments and reversals summed with their signs."""
    sums = dict.fromkeys(CATEGORIES, 0)
    for e in entries:
        if e.year == year:
            sums[e.category] += e.tenths
    return Totals(sums)


def reversed_ids(entries: Iterable[LedgerEntry]) -> set[int]:
    return {e.corrects_id for e in entries if e.kind is RecordKind.REVERSAL and e.corrects_id is not None}


def live_ids(entries: Sequence[LedgerEntry]) -> set[int]:
    """Records and amendments that no reversal has cancelled: the ones that count."""
    gone = reversed_ids(entries)
    return {e.id for e in entries if e.kind is not RecordKind.REVERSAL and e.id not in gone}


@dataclass(frozen=True)
class Standing:
    """An officer's position for a year: what is owed, what is done, what is missing."""

    requirement: Requirement
    totals: Totals
    short_total: int
    short_by_category: Mapping[TrainingCategory, int]
    expected: int
    status: ComplianceStatus

    @property
    def needed(self) -> int:
        """Hours still to do: every category minimum and the total must both be reached."""
        return max(self.short_total, sum(self.short_by_category.values()))

    @property
    def compliant(self) -> bool:
        return self.needed == 0

    @property
    def behind_pace(self) -> bool:
        return self.totals.total < self.expected

    @property
    def percent(self) -> int:
        """Progress towards the total, 0–100, for a progress bar."""
        if self.requirement.total <= 0:
            return 100
        return max(0, min(100, self.totals.total * 100 // self.requirement.total))


def assess(requirement: Requirement, totals: Totals, *, as_of: dt.date) -> Standing:
    """Shortfall against the total and each category minimum, and the pace as of a day.

    Status: 已达标 when nothing is missing; for a year that has ended 未达标 otherwise; during the
    year 进度落后 when below the hours expected by now, else 进度正常.
    """
    expected = expected_by(requirement, as_of)
    _needed, short_by_category, status = evaluate(
        requirement, expected, [totals.of(c) for c in CATEGORIES], as_of=as_of
    )
    short_total = max(0, requirement.total - totals.total)
    return Standing(requirement, totals, short_total, short_by_category, expected, status)


def evaluate(
    requirement: Requirement, expected: int, tenths: Sequence[int], *, as_of: dt.date
) -> tuple[int, dict[TrainingCategory, int], ComplianceStatus]:
    """``assess`` on plain numbers, for a whole agency tree at once.

    ``tenths`` are the net hours per category in the order of ``CATEGORIES``; ``expected`` is
    ``expected_by(requirement, as_of)``. Returns (hours needed, shortfall per category, status).
    """
    total = sum(tenths)
    short_total = requirement.total - total if total < requirement.total else 0
    short_by_category: dict[TrainingCategory, int] = {}
    if requirement.minimums:
        for category, done in zip(CATEGORIES, tenths, strict=True):
            minimum = requirement.minimums.get(category, 0)
            if done < minimum:
                short_by_category[category] = minimum - done
    needed = max(short_total, sum(short_by_category.values()))
    if needed == 0:
        status = ComplianceStatus.MET
    elif as_of.year > requirement.year:
        status = ComplianceStatus.SHORT
    elif total < expected:
        status = ComplianceStatus.BEHIND
    else:
        status = ComplianceStatus.ON_TRACK
    return needed, short_by_category, status


# ---------------------------------------------------------------- corrections and duplicates


def correction_error(target: LedgerEntry, *, already_reversed: bool) -> str | None:
    """Why ``target`` cannot be reversed or amended (Chinese), or None."""
    if target.kind is RecordKind.REVERSAL:
        return "冲销记录本身不能再更正；如冲销有误，请重新登记正确的学时"
    if already_reversed:
        return "该记录已被冲销或更正，不能重复更正；请对更正后的新记录操作"
    return None


def next_generation(same_key: Sequence[tuple[int, bool]]) -> int | None:
    """Generation of a new record for (officer, course, date), or None when it would be a duplicate.

    ``same_key`` lists the positive records (records and amendments) already there for that key
    as ``(generation, reversed)``. A live one makes the new record a duplicate; otherwise the new
    record takes the next generation, so that the database's unique key on (course, officer,
    date, generation) admits it while refusing a concurrent twin.
    """
    if any(not is_reversed for _gen, is_reversed in same_key):
        return None
    return max((gen for gen, _ in same_key), default=-1) + 1


def reversal_generation(generation: int) -> int:
    """A reversal's generation: negative, one per reversed record, so it too is unique per key."""
    return -(generation + 1)


# ---------------------------------------------------------------- attendance at a course


def attendance_date_error(
    attended_on: dt.date, *, starts_on: dt.date, ends_on: dt.date, today: dt.date, year: int | None = None
) -> str | None:
    """Why ``attended_on`` cannot be the date of attendance at a course held from ``starts_on`` to
    ``ends_on`` (in training year ``year``, when given), or None. Training not yet done is refused."""
    if year is not None and attended_on.year != year:
        return f"培训日期 {attended_on.isoformat()} 不在 {year} 年度内"
    if not starts_on <= attended_on <= ends_on:
        return f"培训日期 {attended_on.isoformat()} 不在课程起止日期（{starts_on.isoformat()} 至 {ends_on.isoformat()}）内"
    if attended_on > today:
        return f"培训日期 {attended_on.isoformat()} 晚于今天，不能登记尚未完成的培训"
    return None


def hours_over_course(tenths: int, course_tenths: int) -> str | None:
    """Why a line of ``tenths`` cannot be recorded at a course of ``course_tenths`` hours, or None."""
    if tenths > course_tenths:
        return f"学时 {format_hours(tenths)} 超过课程学时 {format_hours(course_tenths)}"
    return None


__all__ = [
    "CATEGORIES",
    "DEFAULT_RULE",
    "MAX_RECORD_TENTHS",
    "ComplianceStatus",
    "LedgerEntry",
    "RecordKind",
    "Requirement",
    "Standing",
    "Totals",
    "TrainingCategory",
    "TrainingRule",
    "Verification",
    "assess",
    "attendance_date_error",
    "category_from",
    "correction_error",
    "evaluate",
    "expected_by",
    "format_hours",
    "hours_over_course",
    "hours_value",
    "live_ids",
    "next_generation",
    "parse_hours",
    "requirement_for",
    "reversal_generation",
    "reversed_ids",
    "year_totals",
]
