"""The rules of the online qualification exam (执法资格考试): blueprints, drawing, grading, time.

Pure functions over plain values: no I/O, no session, no framework. The services load rows, call
these, and write the outcome.

- A **blueprint** (组卷规则) says, for one part of an exam, how many questions of which type from
  which category (and optionally which bank) to draw, and how many points each is worth; the points
  of a part add up to 100.
- A **paper** (试卷) is drawn per attempt from a seed: questions sampled without repetition, grouped
  by type (单选, 多选, 判断) and shuffled inside each group, options of choice questions shuffled.
  The draw is stored with the attempt, so the paper is reproducible and auditable.
- **Answers** are the *displayed* option indexes the candidate chose; grading maps them back through
  the stored option order to the bank's indexes.
- The **server's clock** decides time-up; saves arriving within a short grace after the deadline still
  count (they were sent in time), and an attempt still open after it is closed with what was saved.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, NamedTuple

# The blueprint's shape and the exam's vocabulary live in lib (the policy names them); re-exported.
from app.lib.blueprint import MAX_QUESTIONS_PER_PART as MAX_QUESTIONS_PER_PART
from app.lib.blueprint import TOTAL_POINTS as TOTAL_POINTS
from app.lib.blueprint import BlueprintRule as BlueprintRule
from app.lib.blueprint import RuleError as RuleError
from app.lib.blueprint import blueprint_errors as blueprint_errors
from app.lib.blueprint import blueprint_total as blueprint_total
from app.lib.enums import ExamPart as ExamPart
from app.lib.enums import LabeledEnum
from app.lib.enums import QuestionCategory as QuestionCategory
from app.lib.enums import QuestionType as QuestionType

GRACE: Final = dt.timedelta(seconds=15)
"""Saves sent before time-up may arrive a little later; the attempt closes after this grace."""
MAX_OPTIONS: Final = 6
JUDGE_OPTIONS: Final = ("正确", "错误")
"""A true/false question is shown as two options, never shuffled: index 0 is true, 1 false."""
TYPE_ORDER: Final = ("single", "multiple", "judge")
UPPER_LOWER_SHARE: Final = 0.27
"""Kelley's 27 %: the upper and lower groups of the discrimination index."""


class ReviewPolicy(LabeledEnum):
    """When a candidate may see the correct answers of a closed attempt."""

    NEVER = "never", "不公布答案"
    AFTER_SUBMIT = "after_submit", "交卷后即可查看答案"
    AFTER_CLOSE = "after_close", "考试场次结束后可查看答案"


class MultipleScoring(LabeledEnum):
    ALL_OR_NOTHING = "all_or_nothing", "多选题全对才得分"
    PARTIAL = "partial", "多选题少选按比例得分，错选不得分"


class PartsSource(LabeledEnum):
    """Where an exam's parts and their order came from."""

    POLICY = "policy", "按发证机关政策的默认考试部分"
    EXAM = "exam", "本考试单独设置"


class AttemptStatus(LabeledEnum):
    OPEN = "open", "作答中"
    CLOSED = "closed", "已交卷"


class ClosedBy(LabeledEnum):
    CANDIDATE = "candidate", "考生交卷"
    TIMEOUT = "timeout", "时间到自动交卷"
    LEAVE = "leave", "离开考试页面自动交卷"


# ---------------------------------------------------------------- blueprint


def _label_lookup(enum: type[LabeledEnum], raw: str) -> str | None:
    member = enum.from_label_or_value(raw)
    if member is None and enum is QuestionType:
        member = {"单选": QuestionType.SINGLE, "多选": QuestionType.MULTIPLE, "判断": QuestionType.JUDGE}.get(
            raw.strip()
        )
    if member is None and enum is QuestionCategory:
        member = {"公共法律": QuestionCategory.PUBLIC_LAW, "专门法律": QuestionCategory.SPECIALISED_LAW}.get(
            raw.strip()
        )
    return None if member is None else member.value


def parse_blueprint(text: str) -> tuple[list[BlueprintRule], list[RuleError]]:
    """Parse the blueprint text of a form: one rule a line, ``类别 题型 数量 每题分值 [题库代码]``.

    Categories and types may be written as codes (``public_law single 40 1``) or in Chinese
    (``公共法律知识 单选题 40 1``). Blank lines and lines starting with ``#`` are ignored.
    """
    rules: list[BlueprintRule] = []
    errors: list[RuleError] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.replace("，", " ").replace(",", " ").replace("\u3000", " ").strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) not in (4, 5):
            errors.append(RuleError(number, "应为“类别 题型 数量 每题分值 [题库代码]”，以空格分隔"))
            continue
        category = _label_lookup(QuestionCategory, parts[0])
        qtype = _label_lookup(QuestionType, parts[1])
        if category is None:
            errors.append(
                RuleError(number, f"题目类别 {parts[0]} 无效，应为公共法律知识、专门法律知识或新法律法规")
            )
        if qtype is None:
            errors.append(RuleError(number, f"题型 {parts[1]} 无效，应为单选题、多选题或判断题"))
        try:
            count = int(parts[2])
        except ValueError:
            errors.append(RuleError(number, f"数量 {parts[2]} 应为正整数"))
            count = 0
        try:
            points = float(parts[3])
            if not math.isfinite(points):
                raise ValueError
        except ValueError:
            errors.append(RuleError(number, f"每题分值 {parts[3]} 应为数字"))
            points = 0.0
        bank = parts[4] if len(parts) == 5 else ""
        if category and qtype:
            rules.append(BlueprintRule(category=category, type=qtype, count=count, points=points, bank=bank))
    if not errors:
        errors.extend(blueprint_errors(rules))
    return rules, errors


def blueprint_text(rules: Iterable[BlueprintRule]) -> str:
    """The blueprint back as form text (Chinese labels)."""
    lines = []
    for r in rules:
        line = f"{QuestionCategory(r.category).label} {QuestionType(r.type).label} {r.count} {r.points:g}"
        lines.append(f"{line} {r.bank}" if r.bank else line)
    return "\n".join(lines)


# ---------------------------------------------------------------- drawing a paper


@dataclass(frozen=True, slots=True)
class Candidate:
    """A question version that may be drawn: its row id, stable key (bank, question id), type, category."""

    id: int
    key: tuple[str, str]
    type: str
    category: str
    option_count: int


class PaperItem(NamedTuple):
    """One question of a drawn paper: the version's row id, the option order shown, its points.

    ``order[i]`` is the bank's option index shown at display position ``i``. A named tuple: every
    view, save check and grading of a 100-question paper builds 100 of these from the stored draw,
    and a tuple is made in less than half the time of a frozen dataclass.
    """

    question_id: int
    order: tuple[int, ...]
    points: float
    category: str
    type: str


class DrawError(ValueError):
    """The banks cannot satisfy the blueprint (message in Chinese)."""


class PoolIndex(dict[tuple[str, str], list[Candidate]]):
    """A pool's candidates by (type, category), each list in key order: what ``draw_paper`` scans
    for a rule. Built once per pool (``app.exams.services.pools`` keeps it with the cached pool), so
    a draw no longer sorts and scans the whole pool for each rule (1.2 ms of a start at 3,000
    questions)."""

    @classmethod
    def of(cls, pool: Sequence[Candidate]) -> PoolIndex:
        index = cls()
        for c in sorted(pool, key=lambda c: c.key):
            index.setdefault((c.type, c.category), []).append(c)
        return index


def draw_paper(
    rules: Sequence[BlueprintRule],
    pool: Sequence[Candidate] | PoolIndex,
    *,
    seed: int,
    banks_of: Mapping[int, str],
) -> list[PaperItem]:
    """Draw a paper: sample each rule's questions without repetition, group by type, shuffle.

    ``pool`` holds every current question of the banks the part may use; ``banks_of`` maps a
    candidate id to its bank code (for rules naming a bank). Deterministic for a given seed and pool.
    Raises ``DrawError`` when a rule has too few questions left.
    """
    # Reproducibility, not secrecy: the seed itself comes from the secrets module.
    rng = random.Random(seed)  # noqa: S311
    index = pool if isinstance(pool, PoolIndex) else PoolIndex.of(pool)
    used: set[tuple[str, str]] = set()
    picked: list[PaperItem] = []
    shortfalls: list[str] = []
    # Rules naming a bank go first: a general rule must not take the questions they need.
    for rule in sorted(rules, key=lambda r: r.bank == ""):
        fits = [
            c
            for c in index.get((rule.type, rule.category), ())
            if c.key not in used and (not rule.bank or banks_of.get(c.id) == rule.bank)
        ]
        if len(fits) < rule.count:
            where = f"题库 {rule.bank} 的" if rule.bank else ""
            shortfalls.append(
                f"{where}{QuestionCategory(rule.category).label}{QuestionType(rule.type).label}"
                f"需要 {rule.count} 题，题库中只有 {len(fits)} 题"
            )
            continue
        for c in rng.sample(fits, rule.count):
            used.add(c.key)
            if c.type == QuestionType.JUDGE:
                order: tuple[int, ...] = (0, 1)
            else:
                shuffled = list(range(c.option_count))
                rng.shuffle(shuffled)
                order = tuple(shuffled)
            picked.append(PaperItem(c.id, order, rule.points, c.category, c.type))
    if shortfalls:
        raise DrawError("；".join(shortfalls))
    groups = {t: [p for p in picked if p.type == t] for t in TYPE_ORDER}
    paper: list[PaperItem] = []
    for t in TYPE_ORDER:
        rng.shuffle(groups[t])
        paper.extend(groups[t])
    return paper


# ---------------------------------------------------------------- answers and grading


def parse_choice(raw: str) -> tuple[int, ...]:
    """A stored choice (``"0,2"``; ``""`` for none) as display indexes."""
    if not raw:
        return ()
    return tuple(int(x) for x in raw.split(","))


def choice_text(indexes: Iterable[int]) -> str:
    return ",".join(str(i) for i in sorted(set(indexes)))


def valid_choice(
    indexes: Sequence[int], *, qtype: str | None = None, option_count: int = MAX_OPTIONS
) -> bool:
    if len(set(indexes)) != len(indexes) or any(not 0 <= i < option_count for i in indexes):
        return False
    return not (qtype in (QuestionType.SINGLE, QuestionType.JUDGE) and len(indexes) > 1)


def key_indexes(qtype: str, answer: Sequence[int] | bool) -> frozenset[int]:
    """The bank's correct option indexes; a judge question's key is 0 (正确) or 1 (错误)."""
    if isinstance(answer, bool):
        return frozenset({0 if answer else 1})
    return frozenset(answer)


def to_bank_indexes(displayed: Iterable[int], order: Sequence[int]) -> frozenset[int]:
    """Map display positions back to the bank's option indexes (unknown positions dropped)."""
    return frozenset(order[i] for i in displayed if 0 <= i < len(order))


def item_fraction(
    qtype: str,
    key: frozenset[int],
    chosen: frozenset[int],
    *,
    scoring: str = MultipleScoring.ALL_OR_NOTHING,
    weights: Sequence[float] | None = None,
) -> float:
    """The share of an item's points earned, in [0, 1].

    Single and judge: all or nothing. Multiple: all or nothing by default; with ``partial``, a
    wrong option earns nothing and an incomplete right selection earns its share of the key.
    ``weights`` (one per bank option, Moodle's percentages as fractions, from GIFT or a bank file's
    ``weights``) take precedence, as in ``scoring.score_answer``: the sum of the chosen weights,
    clamped to [0, 1]; a single-choice question answered with several options earns nothing.
    """
    if not chosen:
        return 0.0
    if weights is not None and qtype != QuestionType.JUDGE:
        if qtype == QuestionType.SINGLE and len(chosen) > 1:
            return 0.0
        total = sum(weights[i] for i in chosen if 0 <= i < len(weights))
        return round(max(0.0, min(1.0, total)), 6)
    if qtype != QuestionType.MULTIPLE or scoring == MultipleScoring.ALL_OR_NOTHING:
        return 1.0 if chosen == key else 0.0
    if chosen - key:
        return 0.0
    return len(chosen) / len(key)


@dataclass(frozen=True, slots=True)
class CategoryScore:
    category: str
    earned: float
    possible: float
    correct: int
    questions: int

    @property
    def label(self) -> str:
        return QuestionCategory(self.category).label

    @property
    def percent(self) -> float:
        return round(100 * self.earned / self.possible, 1) if self.possible else 0.0


@dataclass(frozen=True, slots=True)
class Grade:
    score: float
    passed: bool
    fractions: tuple[float, ...]
    categories: tuple[CategoryScore, ...] = field(default_factory=tuple)


def grade(items: Sequence[PaperItem], fractions: Sequence[float], *, pass_mark: float) -> Grade:
    """Total score (out of 100, two decimals), pass or fail, and the per-category breakdown."""
    by_cat: dict[str, list[float]] = {}
    for item, frac in zip(items, fractions, strict=True):
        row = by_cat.setdefault(item.category, [0.0, 0.0, 0, 0])
        row[0] += item.points * frac
        row[1] += item.points
        row[2] += 1 if frac >= 1.0 else 0
        row[3] += 1
    score = round(sum(item.points * f for item, f in zip(items, fractions, strict=True)), 2)
    cats = tuple(
        CategoryScore(c, round(v[0], 2), round(v[1], 2), int(v[2]), int(v[3]))
        for c, v in sorted(
            by_cat.items(), key=lambda kv: list(QuestionCategory).index(QuestionCategory(kv[0]))
        )
    )
    return Grade(score=score, passed=score + 1e-9 >= pass_mark, fractions=tuple(fractions), categories=cats)


# ---------------------------------------------------------------- attempts and time


def attempt_deadline(
    started_at: dt.datetime, *, duration_minutes: int, closes_at: dt.datetime
) -> dt.datetime:
    """The server's deadline: the part's duration from the start, but never after the session closes."""
    return min(started_at + dt.timedelta(minutes=duration_minutes), closes_at)


def seconds_left(deadline: dt.datetime, now: dt.datetime) -> int:
    return max(0, math.ceil((deadline - now).total_seconds()))


def accepts_saves(deadline: dt.datetime, now: dt.datetime) -> bool:
    """Saves count until the deadline plus the grace (they were sent before time-up)."""
    return now <= deadline + GRACE


def is_overdue(deadline: dt.datetime, now: dt.datetime) -> bool:
    """Past the deadline and its grace: the server closes the attempt with what was saved."""
    return now > deadline + GRACE


class StartRefusal(StrEnum):
    NOT_OPEN_YET = "not_open_yet"
    CLOSED = "closed"
    PASSED = "passed"
    NO_RETAKES_LEFT = "no_retakes_left"


START_REFUSALS: Final = {
    StartRefusal.NOT_OPEN_YET: "考试尚未开始",
    StartRefusal.CLOSED: "考试已结束",
    StartRefusal.PASSED: "您已通过本部分考试，无需再考",
    StartRefusal.NO_RETAKES_LEFT: "本部分考试的次数已用完（含补考）",
}


def start_refusal(
    *,
    now: dt.datetime,
    opens_at: dt.datetime,
    closes_at: dt.datetime,
    previous: Sequence[bool | None],
    retakes: int,
) -> StartRefusal | None:
    """Why a new attempt of a part may not start, or None.

    ``previous`` are the pass results of the officer's closed attempts of this part in this session
    (an open attempt is resumed, never duplicated, so it is not counted here). One attempt plus
    ``retakes`` retakes (补考) after failed ones.
    """
    if now < opens_at:
        return StartRefusal.NOT_OPEN_YET
    if now >= closes_at:
        return StartRefusal.CLOSED
    if any(p for p in previous):
        return StartRefusal.PASSED
    if len(previous) >= 1 + retakes:
        return StartRefusal.NO_RETAKES_LEFT
    return None


def review_allowed(policy: str, *, attempt_closed: bool, session_closed: bool) -> bool:
    """May the candidate see the correct answers now?"""
    if not attempt_closed:
        return False
    if policy == ReviewPolicy.AFTER_SUBMIT:
        return True
    if policy == ReviewPolicy.AFTER_CLOSE:
        return session_closed
    return False


def qualified(part_results: Mapping[str, bool | None], required: Iterable[str]) -> bool:
    """Every required part has a passed attempt."""
    return all(part_results.get(p) is True for p in required)


def valid_until(passed_on: dt.date, years: int) -> dt.date:
    """The last day a pass counts: ``years`` later, the day before (29 February → 28 February)."""
    try:
        same_day = passed_on.replace(year=passed_on.year + years)
    except ValueError:
        same_day = passed_on.replace(year=passed_on.year + years, day=28) + dt.timedelta(days=1)
    return same_day - dt.timedelta(days=1)


# ---------------------------------------------------------------- item statistics


@dataclass(frozen=True, slots=True)
class ItemStat:
    question_id: int
    drawn: int
    share_correct: float
    discrimination: float | None
    """Upper-27 % share correct minus lower-27 % share correct; None when the groups are too small."""


def item_statistics(results: Sequence[tuple[float, Mapping[int, float]]]) -> list[ItemStat]:
    """Per-question difficulty (share answered correctly) and discrimination index.

    ``results`` are the closed attempts of one part: (total score, {question id: fraction earned}).
    Candidates are ranked by total score; the upper and lower 27 % (at least one each, and never
    overlapping) are compared on each question among those whose paper had it. A question counts
    as answered correctly when it earned its full points.
    """
    ranked = sorted(results, key=lambda r: r[0], reverse=True)
    n = len(ranked)
    k = max(1, round(n * UPPER_LOWER_SHARE)) if n >= 2 else 0
    k = min(k, n // 2)
    upper, lower = ranked[:k], ranked[n - k :] if k else []
    totals: dict[int, list[int]] = {}
    for _score, items in ranked:
        for qid, frac in items.items():
            row = totals.setdefault(qid, [0, 0])
            row[0] += 1
            row[1] += 1 if frac >= 1.0 else 0

    def share(group: Sequence[tuple[float, Mapping[int, float]]], qid: int) -> float | None:
        seen = [items[qid] for _s, items in group if qid in items]
        if not seen:
            return None
        return sum(1 for f in seen if f >= 1.0) / len(seen)

    stats = []
    for qid, (drawn, correct) in sorted(totals.items()):
        hi, lo = share(upper, qid), share(lower, qid)
        disc = None if hi is None or lo is None else round(hi - lo, 3)
        stats.append(ItemStat(qid, drawn, round(correct / drawn, 3), disc))
    return stats
