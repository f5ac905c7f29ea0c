"""``missing_conditions``: every condition of issuance, each named on its own (table-driven)."""

from __future__ import annotations

import datetime as dt

import pytest

from app.certificates.rules import BARRED_FOR_EVER, CertificateKind, EligibilityFacts, missing_conditions

OK = EligibilityFacts(
    kind=CertificateKind.ENFORCEMENT,
    staff_type_label="行政编制",
    staff_type_allowed=True,
    employment_label="在岗",
    in_post=True,
    exam_valid=True,
    training_year=2025,
    training_needed_tenths=0,
    barred_until=None,
    holds_number=None,
    pending=False,
)


@pytest.mark.parametrize(
    "change,codes,text",
    [
        ({}, [], ""),
        (
            {"staff_type_allowed": False, "staff_type_label": "临时工"},
            ["staff_type"],
            "人员类别为“临时工”，不得申领行政执法证",
        ),
        ({"in_post": False, "employment_label": "调离"}, ["not_in_post"], "调离"),
        ({"exam_valid": False}, ["no_exam"], "没有在有效期内的执法资格考试合格成绩"),
        ({"training_needed_tenths": 125}, ["training"], "2025年度培训学时未达标（尚差12.5学时）"),
        ({"training_year": None, "training_needed_tenths": 125}, [], ""),
        ({"barred_until": dt.date(2027, 1, 2)}, ["barred"], "2027年01月02日前不得重新申领"),
        ({"barred_until": BARRED_FOR_EVER}, ["barred"], "终身不得重新申领"),
        (
            {"exit_bar": "调离执法岗位，2028年01月18日前不得申领"},
            ["exit_barred"],
            "退出决定在先：调离执法岗位，2028年01月18日前不得申领",
        ),
        (
            {"in_post": False, "exam_valid": False, "exit_bar": "取消执法资格，终身不得申领行政执法证件"},
            ["not_in_post", "no_exam", "exit_barred"],
            "",
        ),
        ({"holds_number": "A1"}, ["holds_card"], "证号 A1"),
        ({"pending": True}, ["pending"], "待审批"),
        (
            {"exam_valid": False, "training_needed_tenths": 10, "kind": CertificateKind.SUPERVISION},
            ["no_exam", "training"],
            "",
        ),
    ],
)
def test_missing_conditions(change: dict[str, object], codes: list[str], text: str) -> None:
    missing = missing_conditions(OK._replace(**change))  # type: ignore[arg-type]
    assert [m.code for m in missing] == codes
    if text:
        assert text in missing[0].message
