"""GB 11643 ID numbers, names, region codes, masking and scope: table-driven."""

from __future__ import annotations

import datetime as dt

import pytest

from app.accounts import rules

TODAY = dt.date(2026, 11, 22)


@pytest.mark.parametrize(
    "value,error",
    [
        ("11010519491231002X", None),  # the standard's own example
        ("11010519491231002x", None),  # lower-case x is normalised
        (" 110105 19491231002X ", None),  # spaces are ignored
        ("110105194912310021", "身份证号码校验位错误"),
        ("11010519491231002", "身份证号码应为18位，前17位为数字，最后一位为数字或X"),
        ("1101051949123100211", "身份证号码应为18位，前17位为数字，最后一位为数字或X"),
        ("11010519491231002Y", "身份证号码应为18位，前17位为数字，最后一位为数字或X"),
        ("", "身份证号码不能为空"),
        ("01010519491231002X", "身份证号码的地址码无效"),
        ("110105194902300020", "身份证号码中的出生日期无效"),  # 30 February
        ("110105203001010010", "身份证号码中的出生日期无效"),  # born in the future
        ("110105189901010010", "身份证号码中的出生日期无效"),  # before 1900
    ],
)
def test_id_number(value: str, error: str | None) -> None:
    assert rules.id_number_error(value, today=TODAY) == error


@pytest.mark.parametrize(
    "first17,check",
    [("11010519491231002", "X"), ("44052418800101001", "4"), ("32010219850612001", "8")],
)
def test_check_digit(first17: str, check: str) -> None:
    assert rules.id_check_digit(first17) == check


def test_every_check_digit_is_reachable_and_only_one_is_valid() -> None:
    base = "3201021985061200"
    for last in "0123456789":
        first17 = base + last
        good = first17 + rules.id_check_digit(first17)
        assert rules.id_number_error(good, today=TODAY) is None
        for wrong in "0123456789X":
            if wrong != good[-1]:
                assert rules.id_number_error(first17 + wrong, today=TODAY) == "身份证号码校验位错误"


@pytest.mark.parametrize(
    "value,gender,born",
    [("11010519491231002X", "女", dt.date(1949, 12, 31)), ("320102198506120015", "男", dt.date(1985, 6, 12))],
)
def test_gender_and_birth(value: str, gender: str, born: dt.date) -> None:
    assert rules.gender_from_id(value) == gender
    assert rules.birth_date_from_id(value) == born


@pytest.mark.parametrize(
    "value,masked",
    [("11010519491231002X", "1101**********002X"), ("123", "***")],
)
def test_mask(value: str, masked: str) -> None:
    assert rules.mask_id_number(value) == masked
    assert value[4:14] not in masked or len(value) != 18


@pytest.mark.parametrize(
    "name,ok",
    [
        ("李明", True),
        ("欧阳修文", True),
        ("阿依古丽·买买提", True),
        ("李", False),
        ("", False),
        ("Li Ming", True),
        ("李明1", False),
    ],
)
def test_name(name: str, ok: bool) -> None:
    assert (rules.name_error(name) is None) is ok


@pytest.mark.parametrize(
    "code,ok", [("320100", True), ("020100", False), ("32010", False), ("32010a", False)]
)
def test_region_code(code: str, ok: bool) -> None:
    assert (rules.region_code_error(code) is None) is ok


@pytest.mark.parametrize(
    "scope,target,inside",
    [
        ("/1/", "/1/7/42/", True),
        ("/1/7/", "/1/7/", True),
        ("/1/7/", "/1/8/", False),
        ("/1/7/", "/1/77/", False),
    ],
)
def test_subtree(scope: str, target: str, inside: bool) -> None:
    assert rules.in_subtree(scope, target) is inside
    assert rules.agency_path("/1/", 7) == "/1/7/"
