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
    # Assessment and exit (seed 004).
    grades: list[str] = msgspec.field(default_factory=lambda: ["优秀", "合格", "不合格"])
    two_year_unqualified_outcome: str = "remove_qualification"  # or "move_off_post"
    exit_certificate_action: str = "revoke"  # what removal of qualification does to cards: or "cancel"
    training_shortfall_consequence: str = "warning"  # a closed year short of hours: "none" or "suspension"
    statement_days: int = 7
    review_request_days: int = 30
    legal_review_ratio_min: float = 0.05

    def __post_init__(self) -> None:
        # A policy that cannot make a valid paper is refused when built or read, never at exam time.
        problems = exam_policy_errors(self)
        if problems:
            raise ValueError("；".join(message for _field, message in problems))

    def staff_type_allowed(self, staff_type: StaffType) -> bool:
        return staff_type not in self.excluded_staff_types


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


def policy_from_json(raw: str | bytes | None) -> Policy:
    if not raw:
        return DEFAULT_POLICY
    return msgspec.json.decode(raw, type=Policy)


def policy_to_json(policy: Policy) -> str:
    return msgspec.json.encode(policy).decode()
