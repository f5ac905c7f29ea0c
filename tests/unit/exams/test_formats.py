"""The one entry point (app.exams.formats): dispatch by extension, bank defaults, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.exams.bankfile import load_bank_file
from app.exams.formats import EXTENSIONS, BankHints, load_any, parse_bytes
from app.exams.imported import sanitise_code
from tests.unit.exams.test_bankfile import BANK_DIR


def test_toml_goes_to_the_bank_file_parser() -> None:
    path = BANK_DIR / "public_law.toml"
    parsed = load_any(path, hints=BankHints(code="ignored", part="specialised", field="市场监管"))
    expected, _ = load_bank_file(path)
    assert parsed.errors == [] and parsed.unsupported == [] and parsed.duplicates == []
    assert parsed.bank == expected
    assert parsed.ok
    assert parse_bytes(path.read_bytes(), filename="public_law.toml").bank == expected


def test_toml_errors_come_through() -> None:
    parsed = parse_bytes(b"[bank\n", filename="x.toml")
    assert parsed.bank is None and not parsed.ok
    assert parsed.errors[0].message.startswith("TOML 语法错误")


def test_txt_is_read_as_gift(tmp_path: Path) -> None:
    path = tmp_path / "exported.txt"
    path.write_text("\ufeff题干{T}\n", encoding="utf-8")
    parsed = load_any(path)
    assert parsed.bank is not None
    assert (parsed.bank.code, parsed.bank.questions[0].type) == ("exported", "judge")


def test_extensions_a_folder_import_picks_up() -> None:
    assert frozenset({".toml", ".gift", ".txt", ".xlsx", ".xlsm"}) == EXTENSIONS


@pytest.mark.parametrize(
    ("stem", "code"),
    [
        ("public_law", "public_law"),
        ("Moodle GIFT examples", "moodle_gift_examples"),
        ("moodle-gift-examples", "moodle_gift_examples"),
        ("２０２６市场监管", "2026"),
        ("--x--", "x"),
    ],
)
def test_sanitised_code(stem: str, code: str) -> None:
    assert sanitise_code(stem) == code


BAD_ARGUMENTS = [
    ({"part": "general"}, "考试部分", "考试部分 general 无效，应为 public 或 specialised"),
    ({"part": "specialised"}, "执法领域", "专门法律知识题库必须指定执法领域 field"),
    ({"part": "public", "field": "市场监管"}, "执法领域", "公共法律知识题库不应指定执法领域 field"),
    (
        {"category": "刑法"},
        "题目类别",
        "题目类别 刑法 无效，应为 public_law、specialised_law、new_law 或对应中文名称",
    ),
    ({"code": "Bad-Code"}, "题库代码", "题库代码 Bad-Code 只能包含小写字母、数字和下划线"),
]


@pytest.mark.parametrize(("kwargs", "position", "message"), BAD_ARGUMENTS)
def test_bad_arguments_are_errors(kwargs: dict[str, str], position: str, message: str) -> None:
    parsed = parse_bytes("题干{T}".encode(), filename="a.gift", hints=BankHints(**kwargs))
    assert parsed.bank is None
    assert [(e.position, e.message) for e in parsed.errors] == [(position, message)]


def test_category_argument_accepts_chinese_names() -> None:
    parsed = parse_bytes("题干{T}".encode(), filename="a.gift", hints=BankHints(category="新法律法规"))
    assert parsed.bank is not None
    assert parsed.bank.questions[0].category == "new_law"


def test_missing_file_is_an_error_not_an_exception(tmp_path: Path) -> None:
    parsed = load_any(tmp_path / "nope.gift")
    assert parsed.bank is None
    assert parsed.errors[0].position == "文件"
    assert parsed.errors[0].message.startswith("无法读取文件")


def test_unknown_extension() -> None:
    parsed = parse_bytes(b"a,b\n", filename="bank.csv")
    assert parsed.bank is None
    assert parsed.errors[0].message == "不支持的文件类型“.csv”：请使用 .toml、.gift（或 .txt）或 .xlsx 文件"
