"""XLSX question-bank reader (app.exams.xlsxbank via app.exams.formats)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from app.exams.formats import BankHints, ParsedBank, load_any, parse_bytes

HEADER = ["序号", "题型", "题干", "选项A", "选项B", "选项C", "选项D", "答案", "解析", "分类", "难度"]


def xlsx(rows: list[list[Any]], header: list[str] | None = None, *, title: str | None = None) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    if title:
        ws.append([title])
    ws.append(header or HEADER)
    for row in rows:
        ws.append(row)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def parse(rows: list[list[Any]], header: list[str] | None = None, **kwargs: str) -> ParsedBank:
    return parse_bytes(xlsx(rows, header), filename="执法题库.xlsx", hints=BankHints(**kwargs))


GOOD_ROWS: list[list[Any]] = [
    [1, "单选题", "违法行为在几年内未被发现的，不再给予行政处罚？", "A.一年", "B、二年", "三年", "五年", "B", "第三十六条", "公共法律知识", "中等"],
    [2, "多选题", "下列属于行政处罚种类的有？", "警告", "罚款", "责令改正", "吊销许可证件", "A,B，D", "", "", 4],
    [3, "判断题", "当事人有证据足以证明没有主观过错的，不予行政处罚。", "", "", "", "", "√", "", "新法律法规", ""],
    [4, "填空题", "行政处罚法自____起施行。", "", "", "", "", "2021年7月15日", "", "", ""],
    [5, "判断", "行政复议期间行政行为一律停止执行。", "正确", "错误", "", "", "B", "", "", "易"],
    [6, "简答题", "简述行政处罚的种类。", "", "", "", "", "警告、罚款……", "", "", ""],
]  # fmt: skip


def test_rows_become_questions() -> None:
    parsed = parse(GOOD_ROWS)
    assert parsed.errors == []
    assert parsed.bank is not None
    single, multiple, judge, judge_by_letter = parsed.bank.questions
    assert single.type == "single"
    assert single.options == ("一年", "二年", "三年", "五年")  # "A." and "B、" prefixes dropped
    assert (single.answer_letters, single.explanation, single.category, single.difficulty) == (
        "B",
        "第三十六条",
        "public_law",
        3,
    )
    assert (multiple.type, multiple.answer_letters, multiple.difficulty) == ("multiple", "ABD", 4)
    assert (judge.type, judge.answer, judge.options, judge.category) == ("judge", True, (), "new_law")
    assert (judge_by_letter.answer, judge_by_letter.difficulty) == (False, 1)
    assert all(q.id.startswith("X-") for q in parsed.bank.questions)


def test_unsupported_types_are_listed_with_their_row() -> None:
    parsed = parse(GOOD_ROWS)
    assert [(u.position, u.kind, u.excerpt) for u in parsed.unsupported] == [
        ("第 5 行", "填空题", "行政处罚法自____起施行。"),
        ("第 7 行", "简答题", "简述行政处罚的种类。"),
    ]


def test_header_found_by_names_in_any_order_with_synonyms_and_blanks() -> None:
    header = ["正确答案", "试题内容", " 题 型 ", "Ａ", "B", "选项C(可选)", "答案解析", "难易程度", "编号"]
    rows: list[list[Any]] = [
        ["C", "行政许可的设定机关是？", "单项选择题", "县政府", "乡政府", "全国人大", "无", "", "PL-0101"],
        ["ab", "是？", "多项选择", "甲", "乙", "丙", "", "较难", "PL-0102"],
        ["错误", "否？", "是非题", "", "", "", "", 2, "PL-0103"],
    ]
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["某某局执法资格考试题库"])  # a title row above the header
    ws.append(header)
    for row in rows:
        ws.append(row)
    buffer = io.BytesIO()
    wb.save(buffer)
    parsed = parse_bytes(buffer.getvalue(), filename="bank.xlsx")
    assert parsed.errors == []
    assert parsed.bank is not None
    assert [(q.id, q.type, q.answer, q.difficulty) for q in parsed.bank.questions] == [
        ("PL-0101", "single", (2,), 3),
        ("PL-0102", "multiple", (0, 1), 4),
        ("PL-0103", "judge", False, 2),
    ]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("ABD", (0, 1, 3)), ("A,B,D", (0, 1, 3)), ("A、B、D", (0, 1, 3)), ("ＡＢＤ", (0, 1, 3)), ("dba", (0, 1, 3)), ("A B D", (0, 1, 3))],
)  # fmt: skip
def test_multiple_answer_spellings(answer: str, expected: tuple[int, ...]) -> None:
    parsed = parse([[1, "多选题", "题干", "甲", "乙", "丙", "丁", answer, "", "", ""]])
    assert parsed.bank is not None, parsed.errors
    assert parsed.bank.questions[0].answer == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("对", True), ("正确", True), ("√", True), ("T", True), ("true", True), ("错", False), ("错误", False), ("×", False), ("F", False)],
)  # fmt: skip
def test_judge_answer_spellings(answer: str, expected: bool) -> None:
    parsed = parse([[1, "判断题", "题干", "", "", "", "", answer, "", "", ""]])
    assert parsed.bank is not None, parsed.errors
    assert parsed.bank.questions[0].answer is expected


def test_arguments_set_the_bank() -> None:
    parsed = parse(GOOD_ROWS[:2], code="mr_extra", field="市场监管")
    assert parsed.bank is not None
    assert (parsed.bank.code, parsed.bank.part, parsed.bank.field, parsed.bank.title) == (
        "mr_extra",
        "specialised",
        "市场监管",
        "执法题库",
    )
    # 分类 given in the row wins; an empty 分类 takes the part's category.
    assert [q.category for q in parsed.bank.questions] == ["public_law", "specialised_law"]


def test_chinese_file_name_gives_a_stable_code() -> None:
    first = parse(GOOD_ROWS[:1])
    second = parse(GOOD_ROWS[:1])
    assert first.bank is not None and second.bank is not None
    assert first.bank.code == second.bank.code
    assert first.bank.code.startswith("bank_") and len(first.bank.code) == 13


def test_identical_rows_are_imported_once_and_reported() -> None:
    parsed = parse([GOOD_ROWS[0], GOOD_ROWS[1], GOOD_ROWS[0]])
    assert parsed.bank is not None
    assert len(parsed.bank.questions) == 2
    assert [(d.position, d.first_position) for d in parsed.duplicates] == [("第 4 行", "第 2 行")]


def _row(**changes: Any) -> list[Any]:
    values: dict[str, Any] = dict(zip(HEADER, GOOD_ROWS[0], strict=True))
    values.update(changes)
    return [values[h] for h in HEADER]


MALFORMED = [
    ("unknown type", _row(题型="单先题"), "题型“单先题”无法识别，应为 单选题、多选题 或 判断题"),
    ("empty type", _row(题型=""), "“题型”为空，应为 单选题、多选题 或 判断题"),
    ("empty stem", _row(题干=""), "“题干”为空"),
    ("empty answer", _row(答案=""), "“答案”为空"),
    ("answer not letters", _row(答案="二年"), "答案“二年”无效：应为选项字母，如 B、ABD 或 A,B,D"),
    ("answer past options", _row(选项D="", 答案="D"), "答案 D 对应的选项为空"),
    ("gap in options", _row(选项B=""), "“选项B”为空，但后面的选项有内容"),
    ("single with two answers", _row(答案="AB"), "单选题只能有一个答案"),
    ("multiple with one answer", _row(题型="多选题", 答案="A"), "多选题至少应有两个答案"),
    ("one option", _row(选项B="", 选项C="", 选项D="", 答案="A"), "选项数量为 1，应为 2 到 6 个"),
    ("repeated option", _row(选项C="一年"), "选项重复: 一年"),
    ("bad judge answer", _row(题型="判断题", 选项A="", 选项B="", 选项C="", 选项D="", 答案="B"), "判断题答案“B”无效，应为 对/错、正确/错误、√/× 或 T/F"),
    ("judge with real options", _row(题型="判断题", 答案="对"), "判断题不应填写选项（选项列只能是“正确/错误”之类）"),
    ("bad category", _row(分类="行政处罚"), "分类“行政处罚”无效，应为 公共法律知识、专门法律知识 或 新法律法规（或留空）"),
    ("bad difficulty", _row(难度=9), "难度“9”无效，应为 1 到 5 的整数，或 易、较易、中等、较难、难"),
]  # fmt: skip


@pytest.mark.parametrize(("row", "message"), [pytest.param(r, m, id=case) for case, r, m in MALFORMED])
def test_malformed_row_names_the_row_and_the_reason(row: list[Any], message: str) -> None:
    parsed = parse([GOOD_ROWS[1], row])
    assert parsed.bank is None
    assert [(e.position, e.message) for e in parsed.errors] == [("第 3 行", message)]


def test_indefinite_choice_with_one_key_is_unsupported() -> None:
    parsed = parse([_row(题型="不定项选择题", 答案="A"), _row(题型="不定项选择题", 答案="AC", 题干="另一题")])
    assert [(u.position, u.kind) for u in parsed.unsupported] == [
        ("第 2 行", "不定项选择题（只有一个正确答案）")
    ]
    assert parsed.bank is not None
    assert parsed.bank.questions[0].type == "multiple"


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (b"", "a.xlsx", "文件是空的"),
        (b"not a spreadsheet", "a.xlsx", "文件扩展名为 .xlsx，但内容不是有效的 Excel 文件"),
        (b"%PDF-1.4", "a.xlsx", "不支持 PDF 文件"),
        (b"x", "a.docx", "不支持的文件类型“.docx”"),
    ],
)
def test_file_level_problems_are_one_error(data: bytes, filename: str, message: str) -> None:
    parsed = parse_bytes(data, filename=filename)
    assert parsed.bank is None
    assert len(parsed.errors) == 1
    assert parsed.errors[0].position == "文件"
    assert parsed.errors[0].message.startswith(message)


def test_missing_required_column() -> None:
    parsed = parse([["单选题", "题干", "甲", "乙"]], header=["题型", "题干", "选项A", "选项B"])
    assert parsed.bank is None
    assert parsed.errors[0].message.startswith("表头（第1行）缺少必填列：“答案”")


def test_zip_bomb_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/workbook.xml", "<workbook/>")
        zf.writestr("xl/worksheets/sheet1.xml", b"\0" * (8 * 1024 * 1024))
    parsed = parse_bytes(buffer.getvalue(), filename="bomb.xlsx")
    assert parsed.bank is None
    assert "压缩比异常" in parsed.errors[0].message


def test_load_any_reads_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "Market Regulation 2026.xlsx"
    path.write_bytes(xlsx(GOOD_ROWS))
    parsed = load_any(path, hints=BankHints(field="市场监管"))
    assert parsed.source == str(path)
    assert parsed.bank is not None
    assert (parsed.bank.code, parsed.bank.part) == ("market_regulation_2026", "specialised")
