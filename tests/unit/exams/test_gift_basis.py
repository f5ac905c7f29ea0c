"""GIFT titles and the legal-basis convention (exam_banks/README.md): ``// 依据：…`` directly above a
question; a question without one is a draft (草稿), noted with its line, title and reason."""

from __future__ import annotations

import pytest

from app.exams.formats import ParsedBank, parse_bytes
from app.exams.gift import EMPTY_BASIS, NO_BASIS, ORPHAN_BASIS

PL36 = "《中华人民共和国行政处罚法》第三十六条"


def gift(text: str) -> ParsedBank:
    return parse_bytes(text.encode("utf-8"), filename="sample.gift")


# (case, file, expected (title, basis, is_draft) of the one question, expected draft reason or "")
CASES = [
    (
        "full-width colon",
        f"// 依据：{PL36}\n::时效:: 违法行为二年内未被发现的不再处罚。{{T}}",
        ("时效", PL36, False),
        "",
    ),
    ("ASCII colon", f"// 依据: {PL36}\n::时效:: 题干{{T}}", ("时效", PL36, False), ""),
    ("no space after //", f"//依据：{PL36}\n题干{{T}}", ("", PL36, False), ""),
    ("other comments between", f"// 依据：{PL36}\n// 审核：张三\n题干{{T}}", ("", PL36, False), ""),
    (
        "two basis lines",
        f"// 依据：{PL36}\n// 依据：第三十七条\n题干{{T}}",
        ("", f"{PL36}；第三十七条", False),
        "",
    ),
    ("no basis line", "// 普通注释\n::无据:: 题干{T}", ("无据", "", True), NO_BASIS),
    ("empty basis", "// 依据：\n::空:: 题干{T}", ("空", "", True), EMPTY_BASIS),
    (
        "basis above a category",
        f"// 依据：{PL36}\n$CATEGORY: top/新法律法规\n题干{{T}}",
        ("", PL36, False),
        "",
    ),
    (
        "title that is an id is kept too",
        f"// 依据：{PL36}\n::PL-0001:: 题干{{T}}",
        ("PL-0001", PL36, False),
        "",
    ),
    ("title with escaped colon", "::第36条\\: 时效:: 题干{T}", ("第36条: 时效", "", True), NO_BASIS),
]


@pytest.mark.parametrize(
    ("text", "expected", "reason"), [pytest.param(t, e, r, id=c) for c, t, e, r in CASES]
)
def test_title_basis_and_draft(text: str, expected: tuple[str, str, bool], reason: str) -> None:
    parsed = gift(text)
    assert parsed.errors == [] and parsed.bank is not None
    (q,) = parsed.bank.questions
    assert (q.title, q.basis, q.is_draft) == expected
    assert [d.reason for d in parsed.drafts] == ([reason] if reason else [])


def test_the_report_names_each_draft_by_line_title_and_id() -> None:
    text = (
        "// 依据：《行政许可法》第十二条\n"  # 1
        "::有据:: 甲{T}\n"  # 2
        "\n"  # 3
        "::无据一:: 乙{F}\n"  # 4
        "\n"  # 5
        "// 依据：\n"  # 6
        "::无据二:: 丙{=对 ~错}\n"  # 7
    )
    parsed = gift(text)
    assert parsed.bank is not None
    ids = {q.title: q.id for q in parsed.bank.questions}
    assert [(d.position, d.line, d.title, d.question_id, d.reason) for d in parsed.drafts] == [
        ("第 4 行", 4, "无据一", ids["无据一"], NO_BASIS),
        ("第 7 行", 7, "无据二", ids["无据二"], EMPTY_BASIS),
    ]


def test_title_and_basis_do_not_make_a_version() -> None:
    with_basis = gift(f"// 依据：{PL36}\n::甲:: 题干{{T}}")
    without = gift("::乙:: 题干{T}")
    assert with_basis.bank is not None and without.bank is not None
    assert with_basis.bank.questions[0].version == without.bank.questions[0].version


@pytest.mark.parametrize(
    ("text", "position"),
    [
        pytest.param(f"// 依据：{PL36}\n\n题干{{T}}", "第 1 行", id="blank line after the basis"),
        pytest.param(f"题干{{T}}\n\n// 依据：{PL36}\n", "第 3 行", id="basis at the end of the file"),
        pytest.param(
            f"// 依据：{PL36}\n$CATEGORY: top/新法律法规\n\n题干{{T}}",
            "第 1 行",
            id="basis above a lone category",
        ),
    ],
)
def test_a_basis_line_not_followed_by_a_question_is_an_error(text: str, position: str) -> None:
    parsed = gift(text)
    assert parsed.bank is None
    assert [(e.position, e.message) for e in parsed.errors] == [(position, ORPHAN_BASIS)]


def test_a_basis_line_inside_a_question_starts_the_next_one() -> None:
    parsed = gift(f"// 依据：{PL36}\n甲{{T}}\n// 依据：第三十七条\n乙{{F}}")
    assert parsed.errors == [] and parsed.bank is not None
    assert [(q.stem, q.basis) for q in parsed.bank.questions] == [("甲", PL36), ("乙", "第三十七条")]


def test_a_title_too_long_is_refused_with_its_line() -> None:
    parsed = gift("::" + "名" * 201 + ":: 题干{T}")
    assert [(e.position, e.message) for e in parsed.errors] == [
        ("第 1 行", "题目名称过长：201 个字符，最多 200 个")
    ]


def test_xlsx_rows_without_basis_are_drafts_too() -> None:
    from tests.unit.exams.test_xlsxbank import HEADER, _row, parse

    rows = [[*_row(), ""], [*_row(题干="另一题"), "《行政处罚法》第一条"]]
    parsed = parse(rows, [*HEADER, "依据"])
    assert parsed.bank is not None
    assert [q.is_draft for q in parsed.bank.questions] == [True, False]
    assert [(d.line, d.reason) for d in parsed.drafts] == [(2, "缺少依据：“依据”列为空")]
