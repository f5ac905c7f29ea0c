"""Password policy and the policy object: table-driven (the rate limiter: test_ratelimit.py)."""

from __future__ import annotations

import pytest

from app.lib.enums import StaffType
from app.lib.policy import DEFAULT_POLICY, Policy, policy_from_json, policy_to_json
from app.lib.security import password_policy_error


@pytest.mark.parametrize(
    "password,username,ok",
    [
        ("Zhifa2026ok", "", True),
        ("short1A", "", False),
        ("onlyletterspassword", "", False),
        ("1234567890123", "", False),
        ("Password123", "", False),  # the weak list is case-insensitive
        ("password123", "", False),  # on the weak list
        ("wangfang2026x", "wangfang", False),  # contains the username
        ("a1" * 65, "", False),  # too long
    ],
)
def test_password_policy(password: str, username: str, ok: bool) -> None:
    assert (password_policy_error(password, username=username) is None) is ok


def test_policy_defaults_and_round_trip() -> None:
    assert DEFAULT_POLICY.training_hours_required == 40
    assert DEFAULT_POLICY.exam_pass_mark == 60
    assert not DEFAULT_POLICY.staff_type_allowed(StaffType.ASSISTANT)
    assert DEFAULT_POLICY.staff_type_allowed(StaffType.CIVIL_SERVANT)
    custom = Policy(training_hours_required=60, excluded_staff_types=[StaffType.TEMPORARY])
    back = policy_from_json(policy_to_json(custom))
    assert back == custom and back.staff_type_allowed(StaffType.ASSISTANT)
    assert policy_from_json(None) is DEFAULT_POLICY
