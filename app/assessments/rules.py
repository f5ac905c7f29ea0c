"""The rules of annual assessment and exit (年度考核与退出, seed 004). Pure functions: no I/O.

- Every agency rates each of its officers once a year with a grade from its authority's grade list
  (the seeds' 优秀 / 合格 / 不合格, optionally 基本合格, or 优秀 / 称职 / 基本称职 / 不称职). Which
  grades fail, and which bar 优秀, is the authority's policy too: no grade is hard-coded here. A
  rating is entered as a draft, then confirmed, which locks it; a later change is a correction: a
  new confirmed rating with a reason that supersedes it.
- A failing rating bars the officer from 优秀 in that year's civil-servant review and requires
  criticism and education (批评教育) or off-post training (离岗培训).
- Failing in two consecutive calendar years (whichever agency rated them) opens an exit case:
  the policy's proposed outcome (取消执法资格 or 调离执法岗位), a notice, a deadline for the
  officer's statement and defence (陈述申辩), a decision by the legal-affairs office of the same
  or a higher level (confirm, change, drop, with reasons), and a review request (复核) within the
  policy's number of days. A correction that breaks the two years closes an undecided case
  (证据不再支持); after the decision it opens the review instead.
- Officers not in post at the close are skipped; their record stays with them: back in post, the
  next close opens the case on the same two years (a "returned" case).
- Only the confirmed rating of a year counts: a draft counts for nothing and a superseded one has
  been replaced by its correction. 基本合格 / 基本称职 are not failing grades.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from app.certificates.rules import add_years
from app.lib.enums import LabeledEnum


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
    EVIDENCE_WITHDRAWN = "evidence_withdrawn", "已终结（考核结果更正，证据不再支持）"


UNDECIDED_STATUSES = (CaseStatus.OPEN, CaseStatus.EVIDENCE_WITHDRAWN)
"""The statuses of a case without a decision (the database checks it too)."""
FINISHED_STATUSES = (CaseStatus.CLOSED, CaseStatus.EVIDENCE_WITHDRAWN)
"""The statuses of a case whose procedure is over (办结 or 终结)."""


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


def is_failing(grade: str, failing: Collection[str]) -> bool:
    """Whether ``grade`` is one of the authority's failing grades (``Policy.failing_grades``)."""
    return grade in failing


@dataclass(frozen=True)
class Consequences:
    """What a confirmed rating entails (seed 004): empty for a passing grade."""

    excellent_barred: bool
    """Not eligible for 优秀 in that year's civil-servant review."""
    remedy: Remedy | None


def consequences_of(
    grade: str, remedy: Remedy | None, *, failing: Collection[str], bars_excellent: Collection[str]
) -> Consequences:
    """A failing grade requires a remedy (批评教育 unless 离岗培训 is chosen); the grades the policy
    names bar 优秀 the same year."""
    barred = grade in bars_excellent or is_failing(grade, failing)
    if not is_failing(grade, failing):
        return Consequences(excellent_barred=barred, remedy=None)
    return Consequences(excellent_barred=barred, remedy=remedy or Remedy.CRITICISM)


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
    effective: Mapping[tuple[int, int], RatingRow], officer_id: int, year: int, *, failing: Collection[str]
) -> Trigger | None:
    """The trigger when the officer's ratings of ``year - 1`` and ``year`` both count and fail.

    Consecutive means calendar years: a year between them with another grade or with no rating at
    all breaks the run. The agencies that rated the two years need not be the same.
    """
    second = effective.get((officer_id, year))
    first = effective.get((officer_id, year - 1))
    if first is None or second is None:
        return None
    if not evidence_holds(first.grade, second.grade, failing=failing):
        return None
    return Trigger(officer_id=officer_id, year=year, first=first, second=second)


def evidence_holds(first_grade: str, second_grade: str, *, failing: Collection[str]) -> bool:
    """Whether a case's two ratings (as they read now, corrections included) still both fail."""
    return is_failing(first_grade, failing) and is_failing(second_grade, failing)


def triggers_for_year(
    rows: Iterable[RatingRow],
    year: int,
    *,
    failing: Collection[str],
    existing: Iterable[tuple[int, int]] = (),
) -> list[Trigger]:
    """Every officer the closing of ``year`` must open a case for, skipping (officer, year) keys that
    already have one: closing a year twice opens nothing the second time."""
    effective = effective_ratings(rows)
    done = set(existing)
    out = []
    for officer_id in sorted({o for o, y in effective if y == year}):
        if (officer_id, year) in done:
            continue
        trigger = two_year_trigger(effective, officer_id, year, failing=failing)
        if trigger is not None:
            out.append(trigger)
    return out


def returned_trigger(
    rows: Iterable[RatingRow],
    officer_id: int,
    year: int,
    *,
    failing: Collection[str],
    cased_years: Collection[int] = (),
) -> Trigger | None:
    """The two failing years that an officer back in post still carries at the close of ``year``.

    The latest run of two consecutive failing years ending before ``year`` counts when no case was
    opened on it (the officer was out of post at that close) and no passing rating came after it:
    the record stays with the person. None when such a case exists or a later grade passed.
    """
    effective = effective_ratings(rows)
    years = sorted(y for o, y in effective if o == officer_id and y < year)
    for second in reversed(years):
        if not is_failing(effective[(officer_id, second)].grade, failing):
            return None  # a passing year after any earlier run
        trigger = two_year_trigger(effective, officer_id, second, failing=failing)
        if trigger is not None:
            return None if second in cased_years else trigger
    return None


# ---------------------------------------------------------------- due process


def statement_deadline(notified_on: dt.date, statement_days: int) -> dt.date:
    """The last day for the statement and defence: ``statement_days`` after the notice."""
    return notified_on + dt.timedelta(days=statement_days)


def review_deadline(decided_on: dt.date, review_request_days: int) -> dt.date:
    return decided_on + dt.timedelta(days=review_request_days)


def statement_error(status: CaseStatus, *, deadline: dt.date, today: dt.date, text: str) -> str | None:
    if status is CaseStatus.EVIDENCE_WITHDRAWN:
        return "案件已因考核结果更正、证据不再支持而终结，无需陈述申辩"
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
    evidence_gap: str | None = None,
) -> str | None:
    """Why the legal-affairs office cannot decide now (Chinese), or None.

    The officer's right to be heard comes first: no decision before the statement is in or its
    deadline has passed. ``evidence_gap`` (from ``evidence_gap``) is why the two ratings no longer
    support the case: then only dropping it is possible.
    """
    if status is CaseStatus.EVIDENCE_WITHDRAWN:
        return "案件已因考核结果更正、证据不再支持而终结，不能作出退出决定"
    if status is not CaseStatus.OPEN:
        return "案件已作出决定，不能重复决定"
    if evidence_gap is not None and decision is not Decision.DROP:
        return f"证据不再支持退出决定：{evidence_gap}"
    if not has_statement and today <= deadline:
        return f"当事人尚未陈述申辩，且陈述申辩期限（至 {deadline.isoformat()}）未届满，暂不能作出决定"
    if not reason.strip():
        return "决定须写明理由"
    if decision is Decision.CHANGE and (outcome is None or outcome is proposed):
        return "变更处理意见须选择与拟处理意见不同的处理方式"
    return None


def evidence_gap(first: tuple[int, str], second: tuple[int, str], *, failing: Collection[str]) -> str | None:
    """Why two (year, grade) ratings no longer make two failing years (Chinese), or None when they do."""
    passing = [f"{y} 年度为“{g}”" for y, g in (first, second) if not is_failing(g, failing)]
    if not passing:
        return None
    return f"{'，'.join(passing)}，不再是连续两年考核不合格（不合格等次：{'、'.join(failing)}）"


def correction_effect(status: CaseStatus, *, holds: bool, decided_outcome: ExitOutcome | None) -> str:
    """What a rating correction does to the case resting on it.

    'none': the two years still fail (the timeline records it); 'withdraw': an undecided case
    closes as 证据不再支持; 'review': a decision with an effect is not silently undone, the review
    opens (依职权复核) for the office to uphold or overturn; 'note': only recorded (the case was
    dropped, already withdrawn, or a review is pending)."""
    if holds:
        return "none"
    if status is CaseStatus.OPEN:
        return "withdraw"
    if status in (CaseStatus.DECIDED, CaseStatus.CLOSED) and decided_outcome is not None:
        return "review"
    return "note"


def decider_error(
    *,
    is_admin: bool,
    office_name: str,
    office_path: str,
    office_is_legal_affairs: bool,
    case_agency_name: str,
    case_agency_path: str,
) -> str | None:
    """Why this account may not decide an exit case (Chinese), or None.

    The decision is the legal-affairs office's (法制机构) of the same or a higher level than the
    officer's agency (seed 004 part 二(五)): an administrator of an agency marked as such (or an
    issuing authority) whose tree contains the agency that rated the officer.
    """
    if not is_admin:
        return "只有同级或上级法制机构的管理员可以作出退出决定"
    if not office_is_legal_affairs:
        return f"{office_name}不是法制机构：退出决定应由{case_agency_name}同级或上级的法制机构作出"
    if not case_agency_path.startswith(office_path):
        return f"{case_agency_name}不在{office_name}的管辖范围内：只能由同级或上级法制机构作出决定"
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
    if status is CaseStatus.EVIDENCE_WITHDRAWN:
        return "案件已因考核结果更正、证据不再支持而终结，没有可复核的决定"
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


def certificate_action(outcome: ExitOutcome | None, *, on_removal: str) -> str | None:
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


def takes_qualification(outcome: ExitOutcome | None) -> bool:
    """Both outcomes take the exam qualification away: 取消 removes it, 调离 suspends it until the
    officer is back on an enforcement post and passes again."""
    return outcome is not None


@dataclass(frozen=True)
class Bar:
    """What must happen before an officer who exited may hold a card again (重新持证条件)."""

    barred_until: dt.date | None
    """The last barred day; None: for ever."""
    conditions: str
    """The conditions in words (Chinese), for the bar record and the refusal of an application."""


def exit_bar(outcome: ExitOutcome, on: dt.date, *, bar_years: int | None) -> Bar:
    """The bar an exit decision records (``bar_years``: the policy's ``revocation_bar_years`` for
    取消执法资格, ``move_off_post_bar_years`` for 调离; None for ever, 0 no waiting time).

    Either way the officer must be back on an enforcement post and pass the qualification exam
    again, since the decision took the qualification away."""
    again = "返回执法岗位并重新参加执法资格考试合格后方可申领"
    if bar_years is None:
        return Bar(barred_until=None, conditions=f"{outcome.label}，终身不得申领行政执法证件")
    if bar_years == 0:
        return Bar(barred_until=on, conditions=f"{outcome.label}，须{again}")
    until = add_years(on, bar_years)
    return Bar(
        barred_until=until, conditions=f"{outcome.label}，{until:%Y年%m月%d日}前不得申领；期满后须{again}"
    )


# ---------------------------------------------------------------- training shortfall


def shortfall_consequence(needed_tenths: int, consequence: str) -> ShortfallConsequence | None:
    """The flag a closed year's training shortfall gets: None when nothing was missing."""
    if needed_tenths <= 0:
        return None
    return ShortfallConsequence(consequence)


__all__ = [
    "FINISHED_STATUSES",
    "UNDECIDED_STATUSES",
    "Bar",
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
    "correction_effect",
    "correction_error",
    "decided_outcome",
    "decider_error",
    "decision_error",
    "effective_ratings",
    "evidence_gap",
    "evidence_holds",
    "exit_bar",
    "grade_error",
    "is_failing",
    "removes_qualification",
    "returned_trigger",
    "review_deadline",
    "review_decision_error",
    "review_request_error",
    "score_error",
    "shortfall_consequence",
    "statement_deadline",
    "statement_error",
    "takes_qualification",
    "triggers_for_year",
    "two_year_trigger",
    "year_error",
]
