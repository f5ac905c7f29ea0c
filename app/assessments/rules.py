"""The rules of annual assessment and exit (年度考核与退出, seed 004). Pure functions: no I/O.

- Every agency rates each of its officers once a year with a grade from its authority's grade list
  (优秀 / 合格 / 不合格, optionally 基本合格). A rating is entered as a draft, then confirmed, which
  locks it; a later change is a correction: a new confirmed rating with a reason that supersedes it.
- An unqualified (不合格) rating bars the officer from 优秀 in that year's civil-servant review and
  requires criticism and education (批评教育) or off-post training (离岗培训).
- Unqualified in two consecutive calendar years (whichever agency rated them) opens an exit case:
  the policy's proposed outcome (取消执法资格 or 调离执法岗位), a notice, a deadline for the
  officer's statement and defence (陈述申辩), a decision by the legal-affairs office (confirm,
  change, drop, with reasons), and a review request (复核) within the policy's number of days.
- Only the confirmed rating of a year counts: a draft counts for nothing and a superseded one has
  been replaced by its correction. 基本合格 is not 不合格.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from app.lib.enums import LabeledEnum

UNQUALIFIED = "不合格"
EXCELLENT = "优秀"
KNOWN_GRADES = ("优秀", "合格", "基本合格", "不合格")


class RatingStatus(LabeledEnum):
    DRAFT = "draft", "草稿"
    CONFIRMED = "confirmed", "已确认（锁定）"
    SUPERSEDED = "superseded", "已被更正"


class Remedy(LabeledEnum):
    """What an unqualified rating requires of the officer (seed 004)."""

    CRITICISM = "criticism", "批评教育"
    OFF_POST_TRAINING = "off_post_training", "离岗培训"


class ExitOutcome(LabeledEnum):
    REMOVE_QUALIFICATION = "remove_qualification", "取消执法资格"
    MOVE_OFF_POST = "move_off_post", "调离执法岗位"


class CaseStatus(LabeledEnum):
    OPEN = "open", "待陈述申辩"
    DECIDED = "decided", "已作出决定"
    REVIEW_REQUESTED = "review_requested", "复核中"
    CLOSED = "closed", "已办结"


class Decision(LabeledEnum):
    CONFIRM = "confirm", "维持拟处理意见"
    CHANGE = "change", "变更处理意见"
    DROP = "drop", "不予处理（撤销案件）"


class ReviewResult(LabeledEnum):
    UPHELD = "upheld", "维持原决定"
    OVERTURNED = "overturned", "撤销原决定"


class ShortfallConsequence(LabeledEnum):
    NONE = "none", "仅记录"
    WARNING = "warning", "提醒告诫"
    SUSPENSION = "suspension", "年度审验时暂扣证件"


SCORE_MIN, SCORE_MAX = 0, 100
SCORE_LABELS = {
    "daily_score": "平时考核",
    "legal_test_score": "法律知识测试",
    "standard_test_score": "执法规范测试",
    "case_review_score": "案卷评查",
}
"""The components of a rating (0–100 each, all optional), by field, with their names on the forms."""

# ---------------------------------------------------------------- grades and ratings


def grade_error(grade: str, grades: Sequence[str]) -> str | None:
    """Why ``grade`` cannot be recorded under an authority whose list is ``grades`` (Chinese), or None."""
    if not grade.strip():
        return "须选择考核等次"
    if grade not in grades:
        return f"考核等次“{grade}”不在本发证机关的等次列表中（{'、'.join(grades)}）"
    return None


def score_error(score: int | None, label: str) -> str | None:
    if score is not None and not SCORE_MIN <= score <= SCORE_MAX:
        return f"{label}应在 {SCORE_MIN}–{SCORE_MAX} 分之间"
    return None


def year_error(year: int, today: dt.date) -> str | None:
    """A rating is for a year that has begun, and not for a distant past."""
    if year > today.year:
        return f"不能对尚未开始的年度（{year}）进行考核"
    if year < 2000:
        return "考核年度不合理"
    return None


def is_unqualified(grade: str) -> bool:
    return grade == UNQUALIFIED


@dataclass(frozen=True)
class Consequences:
    """What a confirmed rating entails (seed 004): empty for any grade but 不合格."""

    excellent_barred: bool
    """Not eligible for 优秀 in that year's civil-servant review."""
    remedy: Remedy | None


def consequences_of(grade: str, remedy: Remedy | None) -> Consequences:
    if not is_unqualified(grade):
        return Consequences(excellent_barred=False, remedy=None)
    return Consequences(excellent_barred=True, remedy=remedy or Remedy.CRITICISM)


@dataclass(frozen=True)
class RatingRow:
    """One stored rating as the rules need it."""

    id: int
    officer_id: int
    agency_id: int
    year: int
    grade: str
    status: RatingStatus
    corrects_id: int | None = None


def effective_ratings(rows: Iterable[RatingRow]) -> dict[tuple[int, int], RatingRow]:
    """(officer, year) → the rating that counts: the confirmed one (its latest correction).

    Drafts count for nothing and superseded ratings have been replaced. Should two confirmed rows
    ever exist for one year, the newer (higher id) wins.
    """
    out: dict[tuple[int, int], RatingRow] = {}
    for r in rows:
        if r.status is not RatingStatus.CONFIRMED:
            continue
        key = (r.officer_id, r.year)
        if key not in out or out[key].id < r.id:
            out[key] = r
    return out


def correction_error(target_status: RatingStatus, *, reason: str) -> str | None:
    """Why a correction of a rating cannot be made (Chinese), or None."""
    if target_status is RatingStatus.DRAFT:
        return "草稿尚未确认，可直接修改，无需更正"
    if target_status is RatingStatus.SUPERSEDED:
        return "该考核结果已被更正，请对更正后的结果操作"
    if not reason.strip():
        return "更正须写明原因"
    return None


# ---------------------------------------------------------------- the two-year rule


@dataclass(frozen=True)
class Trigger:
    """Two consecutive unqualified years of one officer: the evidence of an exit case."""

    officer_id: int
    year: int
    """The second (the closed) year."""
    first: RatingRow
    second: RatingRow

    @property
    def agency_changed(self) -> bool:
        return self.first.agency_id != self.second.agency_id


def two_year_trigger(
    effective: Mapping[tuple[int, int], RatingRow], officer_id: int, year: int
) -> Trigger | None:
    """The trigger when the officer's ratings of ``year - 1`` and ``year`` both count and are 不合格.

    Consecutive means calendar years: a year between them with another grade or with no rating at
    all breaks the run. The agencies that rated the two years need not be the same.
    """
    second = effective.get((officer_id, year))
    first = effective.get((officer_id, year - 1))
    if first is None or second is None:
        return None
    if not (is_unqualified(first.grade) and is_unqualified(second.grade)):
        return None
    return Trigger(officer_id=officer_id, year=year, first=first, second=second)


def triggers_for_year(
    rows: Iterable[RatingRow], year: int, *, existing: Iterable[tuple[int, int]] = ()
) -> list[Trigger]:
    """Every officer the closing of ``year`` must open a case for, skipping (officer, year) keys that
    already have one: closing a year twice opens nothing the second time."""
    effective = effective_ratings(rows)
    done = set(existing)
    out = []
    for officer_id in sorted({o for o, y in effective if y == year}):
        if (officer_id, year) in done:
            continue
        trigger = two_year_trigger(effective, officer_id, year)
        if trigger is not None:
            out.append(trigger)
    return out


# ---------------------------------------------------------------- due process


def statement_deadline(notified_on: dt.date, statement_days: int) -> dt.date:
    """The last day for the statement and defence: ``statement_days`` after the notice."""
    return notified_on + dt.timedelta(days=statement_days)


def review_deadline(decided_on: dt.date, review_request_days: int) -> dt.date:
    return decided_on + dt.timedelta(days=review_request_days)


def statement_error(status: CaseStatus, *, deadline: dt.date, today: dt.date, text: str) -> str | None:
    if status is not CaseStatus.OPEN:
        return "案件已作出决定，不能再提交陈述申辩"
    if today > deadline:
        return f"陈述申辩期限已于 {deadline.isoformat()} 届满"
    if not text.strip():
        return "陈述申辩内容不能为空"
    return None


def decision_error(
    status: CaseStatus,
    *,
    decision: Decision,
    outcome: ExitOutcome | None,
    proposed: ExitOutcome,
    reason: str,
    deadline: dt.date,
    has_statement: bool,
    today: dt.date,
) -> str | None:
    """Why the legal-affairs office cannot decide now (Chinese), or None.

    The officer's right to be heard comes first: no decision before the statement is in or its
    deadline has passed.
    """
    if status is not CaseStatus.OPEN:
        return "案件已作出决定，不能重复决定"
    if not has_statement and today <= deadline:
        return f"当事人尚未陈述申辩，且陈述申辩期限（至 {deadline.isoformat()}）未届满，暂不能作出决定"
    if not reason.strip():
        return "决定须写明理由"
    if decision is Decision.CHANGE and (outcome is None or outcome is proposed):
        return "变更处理意见须选择与拟处理意见不同的处理方式"
    return None


def decided_outcome(
    decision: Decision, proposed: ExitOutcome, changed_to: ExitOutcome | None
) -> ExitOutcome | None:
    """The outcome that takes effect: the proposed one, the changed one, or none when dropped."""
    if decision is Decision.DROP:
        return None
    if decision is Decision.CHANGE:
        return changed_to
    return proposed


def review_request_error(
    status: CaseStatus, *, deadline: dt.date | None, today: dt.date, text: str
) -> str | None:
    if status is not CaseStatus.DECIDED:
        return "只有已作出决定的案件可以申请复核" if status is CaseStatus.OPEN else "本案已申请复核或已办结"
    if deadline is not None and today > deadline:
        return f"复核申请期限已于 {deadline.isoformat()} 届满"
    if not text.strip():
        return "复核申请须写明理由"
    return None


def review_decision_error(status: CaseStatus, *, reason: str) -> str | None:
    if status is not CaseStatus.REVIEW_REQUESTED:
        return "本案没有待处理的复核申请"
    if not reason.strip():
        return "复核决定须写明理由"
    return None


# ---------------------------------------------------------------- the effect of a confirmed decision

WITHDRAWABLE_CERTIFICATE_STATUSES = frozenset({"valid", "suspended"})
"""Cards still in force: revoked, cancelled, expired or lost cards are left as they are."""


def certificate_action(outcome: ExitOutcome | None, *, on_removal: str = "revoke") -> str | None:
    """What happens to the officer's cards: removal of qualification revokes them (or cancels them,
    as the policy says); moving off enforcement posts cancels them (注销: left the post); nothing
    when the case was dropped."""
    if outcome is None:
        return None
    if outcome is ExitOutcome.REMOVE_QUALIFICATION:
        return on_removal
    return "cancel"


def certificates_to_withdraw(statuses: Mapping[int, str]) -> list[int]:
    """Ids of the cards (id → status) the effect applies to: those still valid or suspended."""
    return sorted(i for i, s in statuses.items() if s in WITHDRAWABLE_CERTIFICATE_STATUSES)


def removes_qualification(outcome: ExitOutcome | None) -> bool:
    return outcome is ExitOutcome.REMOVE_QUALIFICATION


# ---------------------------------------------------------------- training shortfall


def shortfall_consequence(needed_tenths: int, consequence: str) -> ShortfallConsequence | None:
    """The flag a closed year's training shortfall gets: None when nothing was missing."""
    if needed_tenths <= 0:
        return None
    return ShortfallConsequence(consequence)


__all__ = [
    "EXCELLENT",
    "KNOWN_GRADES",
    "UNQUALIFIED",
    "CaseStatus",
    "Consequences",
    "Decision",
    "ExitOutcome",
    "RatingRow",
    "RatingStatus",
    "Remedy",
    "ReviewResult",
    "ShortfallConsequence",
    "Trigger",
    "certificate_action",
    "certificates_to_withdraw",
    "consequences_of",
    "correction_error",
    "decided_outcome",
    "decision_error",
    "effective_ratings",
    "grade_error",
    "is_unqualified",
    "removes_qualification",
    "review_deadline",
    "review_decision_error",
    "review_request_error",
    "score_error",
    "shortfall_consequence",
    "statement_deadline",
    "statement_error",
    "triggers_for_year",
    "two_year_trigger",
    "year_error",
]
