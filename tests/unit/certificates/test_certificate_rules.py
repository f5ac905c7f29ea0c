"""The rules of certificates, by tables of cases: no database."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from app.certificates import rules
from app.certificates.rules import (
    BARRED_FOR_EVER,
    CertificateAction,
    CertificateKind,
    CertificateStatus,
    NumberTemplateError,
    TransitionRefused,
)

D = dt.date
S, A = CertificateStatus, CertificateAction


# ---------------------------------------------------------------- labels


def test_every_status_kind_and_action_has_a_chinese_label() -> None:
    assert [s.label for s in S] == ["有效", "暂扣", "吊销", "注销", "过期", "遗失作废"]
    assert CertificateKind.ENFORCEMENT.label == "行政执法证"
    assert CertificateKind.SUPERVISION.label == "行政执法监督证"
    for action in A:
        assert action.label
    for reason in rules.CancelReason:
        assert reason.label


@pytest.mark.parametrize("kind", list(CertificateKind))
def test_kind_code_round_trips(kind: CertificateKind) -> None:
    assert CertificateKind.from_code(kind.code) is kind


# ---------------------------------------------------------------- effective status


@pytest.mark.parametrize(
    "stored,valid_until,today,expected",
    [
        (S.VALID, D(2030, 6, 30), D(2030, 6, 30), S.VALID),  # last day still valid
        (S.VALID, D(2030, 6, 30), D(2030, 7, 1), S.EXPIRED),
        (S.SUSPENDED, D(2030, 6, 30), D(2030, 1, 1), S.SUSPENDED),
        (S.SUSPENDED, D(2030, 6, 30), D(2031, 1, 1), S.EXPIRED),
        (S.REVOKED, D(2030, 6, 30), D(2031, 1, 1), S.REVOKED),
        (S.CANCELLED, D(2030, 6, 30), D(2031, 1, 1), S.CANCELLED),
        (S.LOST, D(2030, 6, 30), D(2031, 1, 1), S.LOST),
        (S.EXPIRED, D(2030, 6, 30), D(2029, 1, 1), S.EXPIRED),
        ("valid", D(2030, 6, 30), D(2029, 1, 1), S.VALID),
    ],
)
def test_effective_status(stored, valid_until, today, expected) -> None:
    assert rules.effective_status(stored, valid_until, today) is expected


# ---------------------------------------------------------------- transitions

ALLOWED = {
    (S.VALID, A.SUSPEND): S.SUSPENDED,
    (S.SUSPENDED, A.RESTORE): S.VALID,
    (S.VALID, A.REVOKE): S.REVOKED,
    (S.SUSPENDED, A.REVOKE): S.REVOKED,
    (S.EXPIRED, A.REVOKE): S.REVOKED,
    (S.VALID, A.CANCEL): S.CANCELLED,
    (S.SUSPENDED, A.CANCEL): S.CANCELLED,
    (S.EXPIRED, A.CANCEL): S.CANCELLED,
    (S.VALID, A.DECLARE_LOST): S.LOST,
    (S.VALID, A.RENEW): S.VALID,
}

REFUSED_REASONS = {
    (S.VALID, A.RESTORE): "未被暂扣",
    (S.SUSPENDED, A.SUSPEND): "不能重复暂扣",
    (S.SUSPENDED, A.DECLARE_LOST): "由发证机关收存",
    (S.SUSPENDED, A.RENEW): "恢复后方可换发",
    (S.EXPIRED, A.SUSPEND): "已过期",
    (S.EXPIRED, A.RESTORE): "已过期",
    (S.EXPIRED, A.DECLARE_LOST): "已过期",
    (S.EXPIRED, A.RENEW): "重新申领",
    **{(S.REVOKED, a): "已被吊销" for a in A},
    **{(S.CANCELLED, a): "已注销" for a in A},
    **{(S.LOST, a): "补发" for a in A},
}


def test_the_tables_cover_every_pair_once() -> None:
    pairs = set(itertools.product(S, A))
    assert set(ALLOWED) | set(REFUSED_REASONS) == pairs
    assert not set(ALLOWED) & set(REFUSED_REASONS)
    assert rules.TRANSITIONS == ALLOWED


@pytest.mark.parametrize(("current", "action"), list(ALLOWED), ids=lambda v: str(v))
def test_allowed_transition(current, action) -> None:
    assert rules.transition(current, action) is ALLOWED[(current, action)]
    assert rules.transition(current.value, action.value) is ALLOWED[(current, action)]
    assert action in rules.allowed_actions(current)


@pytest.mark.parametrize(("current", "action"), list(REFUSED_REASONS), ids=lambda v: str(v))
def test_refused_transition(current, action) -> None:
    with pytest.raises(TransitionRefused) as e:
        rules.transition(current, action)
    assert REFUSED_REASONS[(current, action)] in e.value.message
    assert e.value.current is current and e.value.action is action
    assert action not in rules.allowed_actions(current)


def test_unknown_action_is_not_silently_allowed() -> None:
    with pytest.raises(ValueError):
        rules.transition(S.VALID, "reinstate")


# ---------------------------------------------------------------- dates


@pytest.mark.parametrize(
    "issued_on,years,until",
    [
        (D(2026, 3, 1), 5, D(2031, 2, 28)),
        (D(2026, 1, 1), 5, D(2030, 12, 31)),
        (D(2026, 7, 15), 1, D(2027, 7, 14)),
        (D(2024, 2, 29), 5, D(2029, 2, 28)),  # no 29 Feb in 2029: runs to the end of February
        (D(2024, 2, 29), 4, D(2028, 2, 28)),  # 29 Feb exists: the day before it
        (D(2027, 3, 1), 1, D(2028, 2, 29)),  # leap day inside the last year
    ],
)
def test_validity(issued_on, years, until) -> None:
    assert rules.validity(issued_on, years) == (issued_on, until)


def test_validity_of_less_than_a_year_is_refused() -> None:
    with pytest.raises(ValueError, match="至少为 1 年"):
        rules.validity(D(2026, 1, 1), 0)


@pytest.mark.parametrize(
    "valid_until,today,window,is_open",
    [
        (D(2031, 2, 28), D(2030, 8, 27), 6, False),
        (D(2031, 2, 28), D(2030, 8, 28), 6, True),  # opens on the corresponding day
        (D(2031, 2, 28), D(2031, 2, 28), 6, True),  # last valid day
        (D(2031, 3, 1), D(2031, 3, 2), 6, False),  # expired: apply again
        (D(2030, 8, 31), D(2030, 2, 27), 6, False),
        (D(2030, 8, 31), D(2030, 2, 28), 6, True),  # 31 Aug − 6 months → 28 Feb (end of month)
        (D(2030, 12, 31), D(2030, 12, 1), 0, False),
        (D(2030, 12, 31), D(2030, 12, 31), 0, True),
        (D(2030, 1, 15), D(2029, 1, 15), 12, True),  # across a year boundary
    ],
)
def test_renewal_open(valid_until, today, window, is_open) -> None:
    assert rules.renewal_open(valid_until, today, window) is is_open


@pytest.mark.parametrize(
    "revoked_on,bar,until",
    [
        (D(2026, 3, 10), 2, D(2028, 3, 10)),
        (D(2024, 2, 29), 2, D(2026, 2, 28)),
        (D(2024, 2, 29), 4, D(2028, 2, 29)),
        (D(2026, 3, 10), 0, D(2026, 3, 10)),
        (D(2026, 3, 10), None, BARRED_FOR_EVER),
    ],
)
def test_reapplication_barred_until(revoked_on, bar, until) -> None:
    assert rules.reapplication_barred_until(revoked_on, bar) == until


@pytest.mark.parametrize(
    "bar,today,barred",
    [
        (2, D(2028, 3, 10), True),
        (2, D(2028, 3, 11), False),
        (0, D(2026, 3, 10), False),
        (None, D(2099, 1, 1), True),
    ],
)
def test_reapplication_barred(bar, today, barred) -> None:
    assert rules.reapplication_barred(D(2026, 3, 10), bar, today) is barred


def test_negative_bar_is_refused() -> None:
    with pytest.raises(ValueError):
        rules.reapplication_barred_until(D(2026, 1, 1), -1)


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    "template,region,year,seq,kind,number",
    [
        ("{region}{year}{seq:06d}", "440100", 2026, 123, "E", "4401002026000123"),
        ("{region}{year}{seq:06d}", "440100", 2026, 999999, "E", "4401002026999999"),
        ("{kind}{region}-{year}-{seq:05d}", "110000", 2027, 7, "S", "S110000-2027-00007"),
        ("GD{seq:08d}", "440000", 2026, 42, "E", "GD00000042"),
        ("{region}{seq}", "3301", 2026, 12345678, "E", "330112345678"),  # no width: never overflows
    ],
)
def test_format_number(template, region, year, seq, kind, number) -> None:
    assert rules.format_number(template, region, year, seq, kind) == number


@pytest.mark.parametrize(
    "template,message",
    [
        ("{region}{year}", "必须包含流水号"),
        ("{region}{year}{seq}{seq}", "只能包含一个流水号"),
        ("{region}{agency}{seq}", "字段“{agency}”不可用"),
        ("{region}{seq!r}", "写法不正确"),
        ("{region}{seq.real}", "不可用"),
        ("{region}{seq[0]}", "不可用"),
        ("{region}{seq", "花括号不配对"),
        ("粤{region}{seq}", "固定文字"),
        ("{region}/{seq}", "固定文字"),
        ("{region}{seq:06s}", "格式说明不正确"),
        ("{region}{seq:{year}}", "写法不正确"),
    ],
)
def test_bad_template_is_refused(template, message) -> None:
    with pytest.raises(NumberTemplateError) as e:
        rules.template_fields(template)
    assert message in e.value.message
    with pytest.raises(NumberTemplateError):
        rules.format_number(template, "440100", 2026, 1, "E")


@pytest.mark.parametrize(
    "region,year,seq,kind,message",
    [
        ("440100", 2026, 0, "E", "流水号必须从 1 开始"),
        ("440100", 2026, 1_000_000, "E", "超过证号模板规定的 6 位"),
        ("440100", 26, 1, "E", "年份"),
        ("44 01", 2026, 1, "E", "地区代码"),
        ("", 2026, 1, "E", "地区代码"),
        ("440100", 2026, 1, "执", "证件种类代码"),
    ],
)
def test_bad_number_values_are_refused(region, year, seq, kind, message) -> None:
    with pytest.raises(ValueError, match=message):
        rules.format_number("{region}{year}{seq:06d}", region, year, seq, kind)


def test_default_template_from_policy_is_valid() -> None:
    from app.lib.policy import Policy

    assert rules.sequence_scope(Policy().certificate_number_template) == ("region", "year")


@pytest.mark.parametrize(
    "template,scope",
    [
        ("{region}{year}{seq:06d}", ("region", "year")),
        ("{kind}{region}{seq:08d}", ("kind", "region")),
        ("GD{seq:08d}", ()),
    ],
)
def test_sequence_scope(template, scope) -> None:
    assert rules.sequence_scope(template) == scope


def test_numbers_in_one_scope_are_distinct() -> None:
    made = {rules.format_number("{region}{year}{seq:04d}", "4401", 2026, n, "E") for n in range(1, 10000)}
    assert len(made) == 9999


def test_a_trailing_newline_is_not_a_valid_literal() -> None:
    with pytest.raises(NumberTemplateError):
        rules.format_number("{region}{seq}\n", "4401", 2026, 1, "E")
