"""The shape of an exam paper, as the authority's policy and the exam domain both speak of it.

A **blueprint** (组卷规则) says, for one part of an exam, how many questions of which type from which
category (and optionally which bank) to draw, and how many points each is worth; the points of a part
add up to 100. An exam's **parts** (考试部分) come in order, each with a blueprint and a duration.

The policy (``app/lib/policy.py``) holds the authority's default parts (``exam_parts``); an exam may
set its own. Both are checked here, so one rule decides what a valid blueprint is. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

from app.lib.enums import ExamPart, QuestionCategory, QuestionType

TOTAL_POINTS: Final = 100
MAX_QUESTIONS_PER_PART: Final = 200
MAX_PART_MINUTES: Final = 600


@dataclass(frozen=True, slots=True)
class BlueprintRule:
    """Draw ``count`` questions of ``type`` and ``category`` (from ``bank`` when given), ``points`` each."""

    category: str
    type: str
    count: int
    points: float
    bank: str = ""


@dataclass(frozen=True, slots=True)
class RuleError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"第 {self.line} 行：{self.message}" if self.line else self.message


def blueprint_errors(rules: Sequence[BlueprintRule]) -> list[RuleError]:
    """What is wrong with a blueprint as a whole (line numbers are 1-based rule positions)."""
    errors: list[RuleError] = []
    if not rules:
        return [RuleError(0, "组卷规则不能为空")]
    seen: set[tuple[str, str, str]] = set()
    for number, rule in enumerate(rules, start=1):
        if rule.category not in set(QuestionCategory):
            errors.append(
                RuleError(
                    number, f"题目类别 {rule.category} 无效，应为 public_law、specialised_law 或 new_law"
                )
            )
        if rule.type not in set(QuestionType):
            errors.append(RuleError(number, f"题型 {rule.type} 无效，应为 single、multiple 或 judge"))
        if rule.count < 1:
            errors.append(RuleError(number, "数量应为正整数"))
        if not 0 < rule.points <= TOTAL_POINTS:
            errors.append(RuleError(number, "每题分值应大于 0 且不超过 100"))
        elif round(rule.points * 10) != rule.points * 10:
            errors.append(RuleError(number, "每题分值最多保留一位小数"))
        key = (rule.category, rule.type, rule.bank)
        if key in seen:
            errors.append(RuleError(number, "与前面的规则重复（同一类别、题型和题库只能写一行）"))
        seen.add(key)
    if errors:
        return errors
    total_count = sum(r.count for r in rules)
    if total_count > MAX_QUESTIONS_PER_PART:
        errors.append(RuleError(0, f"一个部分最多 {MAX_QUESTIONS_PER_PART} 题，现为 {total_count} 题"))
    total = blueprint_total(rules)
    if abs(total - TOTAL_POINTS) > 1e-6:
        errors.append(RuleError(0, f"各题分值之和应为 {TOTAL_POINTS} 分，现为 {total:g} 分"))
    return errors


def blueprint_total(rules: Iterable[BlueprintRule]) -> float:
    return round(sum(r.count * r.points for r in rules), 6)


# ---------------------------------------------------------------- the parts of an exam


class RulePlan(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One blueprint line as the policy stores it (JSON)."""

    category: str
    type: str
    count: int
    points: float
    bank: str = ""


class PartPlan(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One part of an exam: which part, its duration and its blueprint; ``title`` '' = the part's name."""

    part: str
    duration_minutes: int
    blueprint: list[RulePlan]
    title: str = ""

    def rules(self) -> list[BlueprintRule]:
        return [BlueprintRule(r.category, r.type, r.count, r.points, r.bank.strip()) for r in self.blueprint]


def _plan(part: ExamPart, minutes: int, lines: list[tuple[str, str, int, float]]) -> PartPlan:
    return PartPlan(
        part=part.value,
        duration_minutes=minutes,
        blueprint=[RulePlan(category=c, type=t, count=n, points=p) for c, t, n, p in lines],
    )


def default_exam_parts() -> list[PartPlan]:
    """The parts every authority starts with: public law first (60 minutes), then the officer's field
    (45 minutes); new laws (新法律法规) drawn as a category of their own in both."""
    return [
        _plan(
            ExamPart.PUBLIC,
            60,
            [
                ("public_law", "single", 20, 2),
                ("public_law", "multiple", 10, 2),
                ("public_law", "judge", 10, 1),
                ("new_law", "single", 10, 2),
                ("new_law", "judge", 10, 1),
            ],
        ),
        _plan(
            ExamPart.SPECIALISED,
            45,
            [
                ("specialised_law", "single", 15, 3),
                ("specialised_law", "multiple", 5, 4),
                ("specialised_law", "judge", 15, 2),
                ("new_law", "judge", 2, 2.5),
            ],
        ),
    ]


def parts_errors(parts: Sequence[PartPlan], *, field: str = "exam_parts") -> list[tuple[str, str]]:
    """What is wrong with a list of exam parts, as (field, Chinese message) pairs; [] when valid.

    At least one part, each part at most once, in the order given; a duration of 1..600 minutes and a
    valid blueprint (``blueprint_errors``) for each."""
    if not parts:
        return [(field, "考试部分不能为空，至少包含一个部分")]
    errors: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index, plan in enumerate(parts):
        name = f"{field}[{index}]"
        if plan.part not in set(ExamPart):
            errors.append(
                (f"{name}.part", f"第 {index + 1} 个考试部分 {plan.part} 无效，应为 public 或 specialised")
            )
            continue
        label = ExamPart(plan.part).label
        if plan.part in seen:
            errors.append((f"{name}.part", f"考试部分 {label} 重复"))
        seen.add(plan.part)
        if not 1 <= plan.duration_minutes <= MAX_PART_MINUTES:
            errors.append(
                (
                    f"{name}.duration_minutes",
                    f"{label}：考试时长应为 1 到 {MAX_PART_MINUTES} 之间的整数（分钟）",
                )
            )
        for e in blueprint_errors(plan.rules()):
            errors.append((f"{name}.blueprint", f"{label}：{e}"))
    return errors
