"""The typed policy of an issuing authority: every rule DOMAIN.md marks *configurable* lives here.

One object per issuing authority, stored as JSON on its agency row; an agency's effective policy is
that of its nearest issuing-authority ancestor, or these defaults. Code reads a rule from here and
never hard-codes the number.
"""

from __future__ import annotations

import msgspec

from app.lib.blueprint import PartPlan, default_exam_parts, parts_errors
from app.lib.enums import StaffType

DEFAULT_FIELDS = (
    "市场监管",
    "生态环境",
    "交通运输",
    "城市管理",
    "农业农村",
    "自然资源",
    "应急管理",
    "文化市场",
    "卫生健康",
    "水利",
)


class GradeScheme(msgspec.Struct, frozen=True):
    """A grade list and which of its grades fail (and so bar 优秀 the same year)."""

    grades: tuple[str, ...]
    failing: tuple[str, ...]


SEED_GRADES = GradeScheme(grades=("优秀", "合格", "不合格"), failing=("不合格",))
"""Seed 004 part 二(四): 优秀 · 合格 · 不合格."""
CIVIL_SERVICE_GRADES = GradeScheme(grades=("优秀", "称职", "基本称职", "不称职"), failing=("不称职",))
"""The civil-servant scale some provinces use: 基本称职 is a pass (like 基本合格), only 不称职 fails."""
GRADE_PRESETS = {"seeds": SEED_GRADES, "civil_service": CIVIL_SERVICE_GRADES}

EXIT_OUTCOMES = ("remove_qualification", "move_off_post")
EXIT_CERTIFICATE_ACTIONS = ("revoke", "cancel")
CERTIFICATE_KINDS = ("enforcement", "supervision")


class Policy(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # Who may hold a certificate (seeds 000 item 5, 001 item 24, 003 indicator 69).
    excluded_staff_types: list[StaffType] = msgspec.field(
        default_factory=lambda: [
            StaffType.SERVICE,
            StaffType.CONTRACT,
            StaffType.TEMPORARY,
            StaffType.DISPATCHED,
            StaffType.ASSISTANT,
        ]
    )
    enforcement_fields: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_FIELDS))
    # Exams.
    exam_pass_mark: int = 60
    exam_retakes: int = 1
    exam_result_valid_years: int = 5
    exam_parts: list[PartPlan] = msgspec.field(default_factory=default_exam_parts)
    """The parts of a new exam, in order, with their blueprints and durations; an exam may set its own."""
    # Training (seed 003 indicator 68).
    training_hours_required: int = 40
    training_category_minimums: dict[str, int] = msgspec.field(default_factory=dict)
    training_prorate_joiners: bool = False
    training_required_for_issue: bool = True
    # Certificates.
    certificate_valid_years: int = 5
    certificate_renewal_window_months: int = 6
    certificate_number_template: str = "{region}{year}{seq:06d}"
    revocation_bar_years: int | None = 2  # None: barred for ever
    # Assessment and exit (seed 004). The grade list and which of its grades fail are the authority's:
    # 优秀/合格/不合格 (the seeds) or 优秀/称职/基本称职/不称职, see GRADE_PRESETS.
    grades: list[str] = msgspec.field(default_factory=lambda: list(SEED_GRADES.grades))
    failing_grades: list[str] = msgspec.field(default_factory=lambda: list(SEED_GRADES.failing))
    """Grades that count toward the two-year rule (连续两年不合格)."""
    excellent_barring_grades: list[str] = msgspec.field(default_factory=lambda: list(SEED_GRADES.failing))
    """Grades that bar 优秀 in that year's civil-servant review (seed 004: any 不合格)."""
    two_year_unqualified_outcome: str = "remove_qualification"  # or "move_off_post"
    exit_certificate_action: str = "revoke"  # what removal of qualification does to cards: or "cancel"
    exit_certificate_kinds: list[str] = msgspec.field(default_factory=lambda: ["enforcement"])
    """Card kinds an exit decision withdraws: the enforcement card only, unless the authority says so."""
    move_off_post_bar_years: int | None = 0
    """调离执法岗位: years before the officer may hold a card again (0: none, None: for ever); a new
    exam pass and a return to an enforcement post are needed in any case."""
    training_shortfall_consequence: str = "warning"  # a closed year short of hours: "none" or "suspension"
    statement_days: int = 7
    review_request_days: int = 30
    legal_review_ratio_min: float = 0.05

    def __post_init__(self) -> None:
        # msgspec reports this ValueError's text as the reason a stored or submitted policy is refused;
        # a policy that cannot make a valid paper is refused when built or read, never at exam time.
        problems = [msg] if (msg := policy_error(self)) else []
        problems += [message for _field, message in exam_policy_errors(self)]
        if problems:
            raise ValueError("；".join(problems))

    def staff_type_allowed(self, staff_type: StaffType) -> bool:
        return staff_type not in self.excluded_staff_types

    def with_grades(self, scheme: GradeScheme) -> Policy:
        """This policy on another grade scale (its failing grades bar 优秀 too)."""
        return msgspec.structs.replace(
            self, grades=list(scheme.grades), failing_grades=list(scheme.failing),
            excellent_barring_grades=list(scheme.failing),
        )  # fmt: skip


def policy_error(p: Policy) -> str | None:
    """Why the assessment and exit settings of a policy do not hold together (Chinese), or None."""
    if not p.grades or len(set(p.grades)) != len(p.grades):
        return "考核等次列表不能为空，也不能重复"
    listed = "、".join(p.grades)
    for name, label in (
        ("failing_grades", "不合格（计入连续两年）"),
        ("excellent_barring_grades", "不得评优"),
    ):
        stray = [g for g in getattr(p, name) if g not in p.grades]
        if stray:
            return f"{label}的等次“{'、'.join(stray)}”不在考核等次列表（{listed}）中"
    if not p.failing_grades:
        return "须至少指定一个不合格等次"
    if set(p.failing_grades) == set(p.grades):
        return "考核等次不能全部为不合格等次"
    if p.two_year_unqualified_outcome not in EXIT_OUTCOMES:
        return (
            "连续两年不合格的处理方式应为取消执法资格（remove_qualification）或调离执法岗位（move_off_post）"
        )
    if p.exit_certificate_action not in EXIT_CERTIFICATE_ACTIONS:
        return "取消执法资格时对证件的处理应为吊销（revoke）或注销（cancel）"
    if not p.exit_certificate_kinds or any(k not in CERTIFICATE_KINDS for k in p.exit_certificate_kinds):
        return "退出决定处理的证件种类应为行政执法证（enforcement）和/或行政执法监督证（supervision）"
    for name, label in (
        ("revocation_bar_years", "吊销后不得重新申领年限"),
        ("move_off_post_bar_years", "调离执法岗位后不得申领年限"),
    ):
        years = getattr(p, name)
        if years is not None and not 0 <= years <= 100:
            return f"{label}应在 0–100 年之间（终身不得申领填 null）"
    for name, label in (("statement_days", "陈述申辩期限"), ("review_request_days", "复核申请期限")):
        if not 1 <= getattr(p, name) <= 365:
            return f"{label}应在 1–365 天之间"
    if not 0 <= p.legal_review_ratio_min <= 1:
        return "法制审核人员最低比例应在 0–1 之间"
    return None


def exam_policy_errors(policy: Policy) -> list[tuple[str, str]]:
    """What is wrong with the exam settings of a policy, as (field, Chinese message) pairs."""
    errors: list[tuple[str, str]] = []
    if not 1 <= policy.exam_pass_mark <= 100:
        errors.append(("exam_pass_mark", f"及格分数应为 1 到 100 之间的整数，现为 {policy.exam_pass_mark}"))
    if not 0 <= policy.exam_retakes <= 5:
        errors.append(("exam_retakes", f"补考次数应为 0 到 5 之间的整数，现为 {policy.exam_retakes}"))
    if not 1 <= policy.exam_result_valid_years <= 10:
        errors.append(
            (
                "exam_result_valid_years",
                f"考试成绩有效年限应为 1 到 10 年，现为 {policy.exam_result_valid_years}",
            )
        )
    errors.extend(parts_errors(policy.exam_parts))
    return errors


DEFAULT_POLICY = Policy()


class PolicyRefused(ValueError):
    """A submitted policy that cannot be stored; the message (Chinese) says why."""


def policy_from_json(raw: str | bytes | None) -> Policy:
    if not raw:
        return DEFAULT_POLICY
    return msgspec.json.decode(raw, type=Policy)


def policy_checked(raw: object) -> Policy:
    """A submitted policy (decoded JSON) as a Policy, or ``PolicyRefused`` naming what is wrong."""
    try:
        return msgspec.convert(raw, type=Policy)
    except msgspec.ValidationError as exc:
        raise PolicyRefused(str(exc)) from exc


def policy_to_json(policy: Policy) -> str:
    return msgspec.json.encode(policy).decode()
