"""The typed policy of an issuing authority: every rule DOMAIN.md marks *configurable* lives here.

One object per issuing authority, stored as JSON on its agency row; an agency's effective policy is
that of its nearest issuing-authority ancestor, or these defaults. Code reads a rule from here and
never hard-codes the number.
"""

from __future__ import annotations

import msgspec

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

    def staff_type_allowed(self, staff_type: StaffType) -> bool:
        return staff_type not in self.excluded_staff_types


DEFAULT_POLICY = Policy()


def policy_from_json(raw: str | bytes | None) -> Policy:
    if not raw:
        return DEFAULT_POLICY
    return msgspec.json.decode(raw, type=Policy)


def policy_to_json(policy: Policy) -> str:
    return msgspec.json.encode(policy).decode()
