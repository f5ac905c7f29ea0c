"""The exam settings of the policy as a pure rule: which values are refused and why (in Chinese), and
what the accepted ones mean for retakes, the validity of a pass and the parts of an exam."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import pytest

from app.exams import rules as exam_rules
from app.lib.blueprint import PartPlan, RulePlan, default_exam_parts, parts_errors
from app.lib.policy import DEFAULT_POLICY, Policy, policy_from_json, policy_to_json


def part(
    kind: str = "public", minutes: int = 60, lines: list[tuple[str, str, int, float]] | None = None
) -> PartPlan:
    lines = lines if lines is not None else [("public_law", "single", 10, 10)]
    return PartPlan(
        part=kind,
        duration_minutes=minutes,
        blueprint=[RulePlan(category=c, type=t, count=n, points=p) for c, t, n, p in lines],
    )


SPECIAL = part("specialised", 45, [("specialised_law", "judge", 20, 5)])


@pytest.mark.parametrize(
    "settings,message",
    [
        ({}, ""),
        ({"exam_retakes": 0}, ""),
        ({"exam_retakes": 2}, ""),
        ({"exam_retakes": 5}, ""),
        ({"exam_retakes": -1}, "补考次数应为 0 到 5 之间的整数，现为 -1"),
        ({"exam_retakes": 6}, "补考次数应为 0 到 5 之间的整数，现为 6"),
        ({"exam_result_valid_years": 3}, ""),
        ({"exam_result_valid_years": 0}, "考试成绩有效年限应为 1 到 10 年，现为 0"),
        ({"exam_result_valid_years": 11}, "考试成绩有效年限应为 1 到 10 年，现为 11"),
        ({"exam_pass_mark": 80}, ""),
        ({"exam_pass_mark": 0}, "及格分数应为 1 到 100 之间的整数，现为 0"),
        ({"exam_pass_mark": 101}, "及格分数应为 1 到 100 之间的整数，现为 101"),
        ({"exam_parts": [SPECIAL, part()]}, ""),  # the officer's field first
        ({"exam_parts": [part()]}, ""),  # one part only
        ({"exam_parts": []}, "考试部分不能为空，至少包含一个部分"),
        ({"exam_parts": [part(), part()]}, "考试部分 公共法律知识 重复"),
        ({"exam_parts": [part("oral")]}, "第 1 个考试部分 oral 无效，应为 public 或 specialised"),
        ({"exam_parts": [part(minutes=0)]}, "公共法律知识：考试时长应为 1 到 600 之间的整数（分钟）"),
        ({"exam_parts": [part(minutes=601)]}, "公共法律知识：考试时长应为 1 到 600 之间的整数（分钟）"),
        ({"exam_parts": [part(lines=[])]}, "公共法律知识：组卷规则不能为空"),
        (
            {"exam_parts": [part(lines=[("public_law", "single", 10, 5)])]},
            "公共法律知识：各题分值之和应为 100 分，现为 50 分",
        ),
        (
            {"exam_parts": [part(lines=[("civil_law", "single", 10, 10)])]},
            "公共法律知识：第 1 行：题目类别 civil_law 无效",
        ),
        (
            {"exam_parts": [part(lines=[("public_law", "essay", 10, 10)])]},
            "公共法律知识：第 1 行：题型 essay 无效",
        ),
        (
            {"exam_parts": [part(lines=[("public_law", "single", 0, 10)])]},
            "公共法律知识：第 1 行：数量应为正整数",
        ),
    ],
)
def test_policy_exam_settings_are_checked(settings: dict[str, Any], message: str) -> None:
    if not message:
        policy = Policy(**settings)
        assert policy_from_json(policy_to_json(policy)) == policy  # stored and read back unchanged
        return
    with pytest.raises(ValueError, match=message):
        Policy(**settings)
    # the same refusal when a stored policy is read (the JSON on the authority's agency row)
    raw = msgspec.json.encode({k: v for k, v in settings.items()}).decode()
    with pytest.raises(msgspec.ValidationError, match=message):
        policy_from_json(raw)


def test_every_problem_of_the_parts_is_named_with_its_field() -> None:
    problems = parts_errors([part(minutes=0), part("specialised", lines=[("public_law", "single", 1, 5)])])
    assert problems == [
        ("exam_parts[0].duration_minutes", "公共法律知识：考试时长应为 1 到 600 之间的整数（分钟）"),
        ("exam_parts[1].blueprint", "专门法律知识：各题分值之和应为 100 分，现为 5 分"),
    ]


def test_the_default_parts_are_public_then_specialised_and_valid() -> None:
    assert [p.part for p in DEFAULT_POLICY.exam_parts] == ["public", "specialised"]
    assert [p.duration_minutes for p in DEFAULT_POLICY.exam_parts] == [60, 45]
    assert parts_errors(default_exam_parts()) == []
    for plan in DEFAULT_POLICY.exam_parts:  # the form's text of each part parses back to the same rules
        text = exam_rules.blueprint_text(plan.rules())
        assert exam_rules.parse_blueprint(text) == (plan.rules(), [])


T0 = dt.datetime(2026, 9, 1, 9, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "retakes,failed_before,may_start",
    [
        (0, 0, True),
        (0, 1, False),
        (1, 1, True),
        (1, 2, False),
        (2, 1, True),
        (2, 2, True),
        (2, 3, False),
    ],
)
def test_retakes_of_the_policy_decide_whether_another_attempt_starts(
    retakes: int, failed_before: int, may_start: bool
) -> None:
    policy = Policy(exam_retakes=retakes)
    refusal = exam_rules.start_refusal(
        now=T0,
        opens_at=T0 - dt.timedelta(hours=1),
        closes_at=T0 + dt.timedelta(hours=1),
        previous=[False] * failed_before,
        retakes=policy.exam_retakes,
    )
    assert (refusal is None) is may_start
    if not may_start:
        assert refusal == exam_rules.StartRefusal.NO_RETAKES_LEFT


@pytest.mark.parametrize(
    "years,passed_on,last_day",
    [
        (3, dt.date(2026, 9, 1), dt.date(2029, 8, 31)),
        (3, dt.date(2028, 2, 29), dt.date(2031, 2, 28)),
        (1, dt.date(2026, 12, 7), dt.date(2027, 12, 6)),
        (10, dt.date(2026, 1, 1), dt.date(2035, 12, 31)),
    ],
)
def test_a_pass_counts_for_the_policys_years(years: int, passed_on: dt.date, last_day: dt.date) -> None:
    policy = Policy(exam_result_valid_years=years)
    assert exam_rules.valid_until(passed_on, policy.exam_result_valid_years) == last_day
