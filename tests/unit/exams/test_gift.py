"""Moodle GIFT reader (app.exams.gift via app.exams.formats): Moodle's own examples and malformed input."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from app.exams.bankfile import Question
from app.exams.formats import BankHints, ParsedBank, load_any, parse_bytes
from app.exams.gift import (
    DESCRIPTION,
    ESSAY,
    MATCHING,
    NUMERICAL,
    ONE_CORRECT_MULTI,
    SEVERAL_FULL,
    SHORT_ANSWER,
)
from app.exams.scoring import score_answer

REPO_ROOT = Path(__file__).resolve().parents[3]
MOODLE_EXAMPLES = REPO_ROOT.parent / "shared" / "fixtures" / "moodle-gift-examples.txt"
LOCAL_COPY = Path(__file__).with_name("moodle-gift-examples.txt")


def gift(text: str, **kwargs: str) -> ParsedBank:
    return parse_bytes(text.encode("utf-8"), filename="sample.gift", hints=BankHints(**kwargs))


@pytest.fixture(scope="module")
def examples() -> ParsedBank:
    return load_any(LOCAL_COPY)


def by_stem(parsed: ParsedBank, stem: str) -> list[Question]:
    assert parsed.bank is not None
    return [q for q in parsed.bank.questions if q.stem == stem]


# --- Moodle's examples (conformance) ----------------------------------------------------------------


def test_local_copy_is_moodles_file() -> None:
    if not MOODLE_EXAMPLES.exists():
        pytest.skip("the shared fixtures folder is not on this machine")
    assert LOCAL_COPY.read_bytes() == MOODLE_EXAMPLES.read_bytes()


def test_examples_import_without_errors(examples: ParsedBank) -> None:
    assert examples.errors == []
    assert examples.bank is not None
    assert examples.bank.code == "moodle_gift_examples"
    assert examples.bank.part == "public"


def test_examples_counts(examples: ParsedBank) -> None:
    # 43 questions in the file: 23 supported (14 distinct, 9 exact repeats) and 20 unsupported.
    assert examples.bank is not None
    assert Counter(q.type for q in examples.bank.questions) == {"single": 10, "multiple": 2, "judge": 2}
    assert len(examples.duplicates) == 9
    assert Counter(u.kind for u in examples.unsupported) == {SHORT_ANSWER: 9, NUMERICAL: 8, MATCHING: 3}


def test_every_unsupported_example_is_listed_with_its_line(examples: ParsedBank) -> None:
    listed = [(u.position, u.kind) for u in examples.unsupported]
    assert listed == [
        ("第 14 行", SHORT_ANSWER),
        ("第 16 行", NUMERICAL),
        ("第 43 行", SHORT_ANSWER),
        ("第 45 行", SHORT_ANSWER),
        ("第 55 行", MATCHING),
        ("第 61 行", MATCHING),
        ("第 70 行", NUMERICAL),
        ("第 72 行", NUMERICAL),
        ("第 74 行", NUMERICAL),
        ("第 76 行", NUMERICAL),
        ("第 85 行", NUMERICAL),
        ("第 90 行", SHORT_ANSWER),
        ("第 103 行", SHORT_ANSWER),
        ("第 108 行", SHORT_ANSWER),
        ("第 123 行", SHORT_ANSWER),
        ("第 173 行", SHORT_ANSWER),
        ("第 175 行", NUMERICAL),
        ("第 177 行", MATCHING),
        ("第 195 行", SHORT_ANSWER),
        ("第 202 行", NUMERICAL),
    ]
    assert examples.unsupported[1].excerpt == "When was Ulysses S. Grant born?{#1822:1}"


def test_repeats_are_folded_into_their_first_occurrence(examples: ParsedBank) -> None:
    folded = {(d.position, d.first_position) for d in examples.duplicates}
    assert ("第 25 行", "第 8 行") in folded  # Who's buried in Grant's tomb? (3 times)
    assert ("第 184 行", "第 10 行") in folded  # ::Grant's Tomb:: with feedback, same question
    assert ("第 93 行", "第 29 行") in folded  # ::Thanksgiving Date:: wrapped differently
    assert ("第 113 行", "第 12 行") in folded  # {FALSE#feedback} is the same true/false question


def test_multiple_choice(examples: ParsedBank) -> None:
    (q,) = by_stem(examples, "Who's buried in Grant's tomb?")
    assert (q.type, q.options, q.answer, q.weights) == (
        "single",
        ("Grant", "Jefferson", "no one"),
        (2,),
        None,
    )
    (q,) = by_stem(examples, "Japanese characters originally came from what country?")
    assert (q.options, q.answer_letters) == (("India", "China", "Korea", "Egypt"), "B")


def test_missing_word_keeps_moodles_blank(examples: ParsedBank) -> None:
    (q,) = by_stem(examples, "Grant is _____ in Grant's tomb.")
    assert (q.options, q.answer) == (("buried", "entombed", "living"), (1,))
    # The first occurrence had no feedback; the later "::Grant's Tomb::" copy gives the explanation.
    assert q.explanation == "A：No one is buried there.\nB：Right answer!\nC：We hope not!"
    (q,) = by_stem(
        examples, "The American holiday of Thanksgiving is celebrated on the _____ Thursday of November."
    )
    assert (q.options, q.answer_letters) == (("second", "third", "fourth"), "C")


def test_true_false(examples: ParsedBank) -> None:
    (q,) = by_stem(examples, "Grant is buried in Grant's tomb.")
    assert (q.type, q.answer, q.options) == ("judge", False, ())
    assert q.explanation == "No one is buried in Grant's tomb."
    (q,) = by_stem(examples, "The sun rises in the east.")
    assert q.answer is True


def test_partial_credit_single_choice(examples: ParsedBank) -> None:
    (q,) = by_stem(examples, "Jesus Christ was from _____.")
    assert q.type == "single"
    assert q.options == ("Jerusalem", "Bethlehem", "Galilee", "Nazareth")
    assert q.answer_letters == "D"
    assert q.weights == (0.0, 25.0, 50.0, 100.0)
    assert q.explanation.startswith(
        "A：This was an important city, but the wrong answer.\nB：He was born here"
    )
    assert score_answer(q, (2,)) == 0.5
    (q,) = by_stem(examples, "Difficult question.")
    assert (q.options, q.answer, q.weights) == (
        ("wrong answer", "half credit answer", "full credit answer"),
        (2,),
        (0.0, 50.0, 100.0),
    )


def test_multiple_answers_with_weights(examples: ParsedBank) -> None:
    plain, negative = by_stem(examples, "What two people are entombed in Grant's tomb?")
    assert plain.options == negative.options == ("No one", "Grant", "Grant's wife", "Grant's father")
    assert plain.type == negative.type == "multiple"
    assert plain.answer == negative.answer == (1, 2)
    assert plain.weights == (0.0, 50.0, 50.0, 0.0)
    assert negative.weights == (-50.0, 50.0, 50.0, -50.0)
    assert plain.id != negative.id
    assert score_answer(plain, (0, 1, 2, 3)) == 1.0
    assert score_answer(negative, (0, 1, 2, 3)) == 0.0


def test_escapes_and_feedback(examples: ParsedBank) -> None:
    (q,) = by_stem(examples, "Which answer equals 5?")
    assert (q.options, q.answer_letters) == (("= 2 + 2", "= 2 + 3", "= 2 + 4"), "B")
    (q,) = by_stem(examples, "Which of the following is NOT a control character for the GIFT import format?")
    assert q.options == ("~", "=", "#", "{", "}", "\\")
    assert q.answer_letters == "F"
    assert q.explanation.splitlines()[0] == "A：~ is a control character."
    assert q.explanation.splitlines()[-1].startswith(
        "F：Correct! \\ (backslash) is not a control character. BUT, it"
    )


def test_feedback_becomes_the_explanation(examples: ParsedBank) -> None:
    (q,) = by_stem(examples, "What's the answer to this multiple-choice question?")
    assert q.explanation == (
        "A：feedback comment on the wrong answer\nB：feedback comment on this wrong answer\nC：Very good!"
    )


def test_ids_are_stable_across_imports(examples: ParsedBank) -> None:
    again = load_any(LOCAL_COPY)
    assert examples.bank is not None and again.bank is not None
    assert [q.id for q in again.bank.questions] == [q.id for q in examples.bank.questions]
    assert all(q.id.startswith("G-") and len(q.id) == 14 for q in examples.bank.questions)


# --- other features ---------------------------------------------------------------------------------


def test_title_that_is_a_valid_id_becomes_the_id() -> None:
    parsed = gift("::PL-0001::违法行为在几年内未被发现的，不再给予行政处罚？{~一年 =二年 ~五年}")
    assert parsed.bank is not None
    (q,) = parsed.bank.questions
    assert (q.id, q.stem, q.answer_letters) == (
        "PL-0001",
        "违法行为在几年内未被发现的，不再给予行政处罚？",
        "B",
    )


def test_general_feedback_and_formats() -> None:
    text = (
        "[html]<p>行政处罚的种类<b>不包括</b>：</p>{~警告 ~罚款 =责令改正#不是处罚 ####《行政处罚法》第九条}\n\n"
        "[markdown]**判断**：行政复议期间行政行为不停止执行。{TRUE#错了#对了}\n"
    )
    parsed = gift(text)
    assert parsed.errors == []
    assert parsed.bank is not None
    choice, judge = parsed.bank.questions
    assert choice.stem == "行政处罚的种类不包括："
    assert choice.explanation == "《行政处罚法》第九条\nC：不是处罚"
    assert judge.stem == "**判断**：行政复议期间行政行为不停止执行。"
    assert (judge.answer, judge.explanation) == (True, "错了\n对了")


def test_escaped_newline_and_colon() -> None:
    parsed = gift("::Q-1::第一行\\n第二行\\: 冒号{T}")
    assert parsed.bank is not None
    assert parsed.bank.questions[0].stem == "第一行\n第二行: 冒号"


def test_category_lines_set_the_category_of_what_follows() -> None:
    text = (
        "$CATEGORY: $course$/top/新法律法规\n\n甲{T}\n\n"
        "$CATEGORY: $course$/top/Default\n乙{F}\n\n"
        "$CATEGORY: 公共法律知识\n\n丙{T}\n"
    )
    parsed = gift(text, category="specialised_law", field="市场监管")
    assert parsed.errors == []
    assert parsed.bank is not None
    assert [(q.stem, q.category) for q in parsed.bank.questions] == [
        ("甲", "new_law"),
        ("乙", "specialised_law"),
        ("丙", "public_law"),
    ]
    assert parsed.bank.part == "specialised" and parsed.bank.field == "市场监管"


def test_more_unsupported_kinds() -> None:
    text = "写一篇心得。{}\n\n这只是说明文字。\n\n甲乙都对。{=甲 =乙 ~丙}\n\n只有一个对。{~%100%甲 ~乙 ~丙}\n\n好题{T}"
    parsed = gift(text)
    assert [(u.position, u.kind) for u in parsed.unsupported] == [
        ("第 1 行", ESSAY),
        ("第 3 行", DESCRIPTION),
        ("第 5 行", SEVERAL_FULL),
        ("第 7 行", ONE_CORRECT_MULTI),
    ]
    assert parsed.bank is not None and len(parsed.bank.questions) == 1


MALFORMED = [
    ("unclosed answer", "好题{T}\n\n坏题{~甲 =乙\n~丙", "第 3 行", "答案区缺少结尾的 }"),
    ("stray closing brace", "坏题 } 甲", "第 1 行", "有 } 但缺少与之配对的 {"),
    (
        "two answer sections",
        "甲{T} 乙{F}",
        "第 1 行",
        "一道题只能有一个答案区 {…}；题目文字中的 { } 须写成 \\{ \\}",
    ),
    ("unclosed title", "::PL-1 题干{T}", "第 1 行", "题目名称缺少结尾的 ::"),
    (
        "bad true/false",
        "// 注释\n题干{Yes}",
        "第 2 行",
        "无法识别的答案区 {Yes}：判断题答案应为 T、F、TRUE 或 FALSE",
    ),
    (
        "text before first option",
        "题干{甲 ~乙 =丙}",
        "第 1 行",
        "答案区开头的“甲”不属于任何选项：每个选项须以 ~ 或 = 开头",
    ),
    ("bad weight", "题干{~%abc%甲 =乙}", "第 1 行", "选项“%abc%甲”的分值格式有误，应写成 ~%50%选项"),
    (
        "no positive weight",
        "题干{~%-50%甲 ~乙 ~丙}",
        "第 1 行",
        "多选题（无 = 的答案区）没有分值大于 0 的选项，应写成 ~%50%选项",
    ),
    ("weights not 100", "题干{~%50%甲 ~%40%乙 ~丙}", "第 1 行", "多选题正确选项的分值之和为 90，应为 100"),
    (
        "weight out of range",
        "题干{~%150%甲 ~%-50%乙 ~丙 =丁}",
        "第 1 行",
        "选项 A 的分值 150 超出范围，应在 -100 到 100 之间",
    ),
    ("too many options", "题干{=1 ~2 ~3 ~4 ~5 ~6 ~7}", "第 1 行", "选项数量为 7，应为 2 到 6 个"),
    ("one option", "题干{=1 ~}", "第 1 行", "选项 B 不能为空"),
    ("repeated option", "题干{=甲 ~甲}", "第 1 行", "选项重复: 甲"),
    ("empty stem", "{=甲 ~乙}", "第 1 行", "题干不能为空"),
    (
        "duplicate explicit ids",
        "::Q-1::甲{T}\n\n::Q-1::乙{F}",
        "第 3 行",
        "题目编号重复: Q-1（与第 1 行相同）",
    ),
    ("nothing to import", "// 只有注释\n\n", "文件", "文件中没有可导入的题目"),
]


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [pytest.param(t, p, m, id=case) for case, t, p, m in MALFORMED],
)
def test_malformed_input_names_the_line_and_the_reason(text: str, position: str, message: str) -> None:
    parsed = gift(text)
    assert parsed.bank is None
    assert [(e.position, e.message) for e in parsed.errors] == [(position, message)]


def test_all_errors_of_a_file_are_reported_at_once() -> None:
    parsed = gift("甲{Yes}\n\n乙{~丙\n\n丁{T}\n\n戊{=1 ~1}")
    assert parsed.bank is None
    assert [e.position for e in parsed.errors] == ["第 1 行", "第 3 行", "第 7 行"]


def test_bad_encoding_is_one_error() -> None:
    parsed = parse_bytes("题干{T}".encode("gbk"), filename="a.gift")
    assert parsed.bank is None
    assert parsed.errors[0].position == "文件"
    assert parsed.errors[0].message.startswith("文件不是有效的 UTF-8 编码")


def test_windows_line_endings_give_the_same_bank(examples: ParsedBank) -> None:
    crlf = parse_bytes(LOCAL_COPY.read_bytes().replace(b"\n", b"\r\n"), filename="moodle-gift-examples.gift")
    assert crlf.bank == examples.bank
    assert crlf.unsupported == examples.unsupported


def test_a_question_too_long_is_refused_with_its_line_like_any_bank_format() -> None:
    """The length caps are one rule for every format (app.exams.bankfile.MAX_TEXT_CHARS)."""
    text = "// 依据：《行政处罚法》第一条\n::Q1:: " + "长" * 2001 + " {T}\n"
    parsed = parse_bytes(text.encode("utf-8"), filename="long.gift")
    assert any("题干过长：2001 个字符，最多 2000 个" in e.message for e in parsed.errors), parsed.errors
