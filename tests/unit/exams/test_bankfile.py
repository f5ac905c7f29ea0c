"""Bank file parser and validator (app.exams.bankfile), and the bank files shipped in exam_banks/."""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.exams.bankfile import (
    Bank,
    BankFileError,
    Question,
    canonical_hash,
    load_bank_file,
    parse_bank,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
BANK_DIR = REPO_ROOT / "exam_banks"

MINIMUM_QUESTIONS = {
    "public_law.toml": 220,
    "market_regulation.toml": 70,
    "ecology_environment.toml": 70,
}


# --- building bank files in tests ------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        # A JSON string with ensure_ascii=False is a valid TOML basic string.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(value)


def to_toml(doc: dict[str, Any]) -> str:
    lines = [f"{k} = {_toml_value(v)}" for k, v in doc.items() if k not in ("bank", "questions")]
    if "bank" in doc:
        lines.append("[bank]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in doc["bank"].items()]
    for question in doc.get("questions", []):
        lines += ["", "[[questions]]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in question.items()]
    return "\n".join(lines) + "\n"


SINGLE: dict[str, Any] = {
    "id": "PL-0001",
    "type": "single",
    "category": "public_law",
    "difficulty": 2,
    "stem": "根据《中华人民共和国行政处罚法》，违法行为在几年内未被发现的，不再给予行政处罚？",
    "options": ["一年", "二年", "三年", "五年"],
    "answer": "B",
    "basis": "《中华人民共和国行政处罚法》第三十六条第一款",
    "explanation": "违法行为在二年内未被发现的，不再给予行政处罚。",
}
MULTIPLE: dict[str, Any] = {
    "id": "PL-0002",
    "type": "multiple",
    "category": "public_law",
    "difficulty": 3,
    "stem": "下列属于《中华人民共和国行政处罚法》规定的行政处罚种类的有？",
    "options": ["警告", "罚款", "责令改正", "吊销许可证件"],
    "answer": "ABD",
    "basis": "《中华人民共和国行政处罚法》第九条",
    "explanation": "责令改正不是行政处罚。",
}
JUDGE: dict[str, Any] = {
    "id": "PL-0003",
    "type": "judge",
    "category": "new_law",
    "difficulty": 1,
    "stem": "当事人有证据足以证明没有主观过错的，不予行政处罚，法律、行政法规另有规定的除外。",
    "answer": True,
    "basis": "《中华人民共和国行政处罚法》第三十三条第二款",
    "explanation": "第三十三条第二款。",
}


def valid_doc() -> dict[str, Any]:
    return {
        "bank": {
            "code": "public_law",
            "title": "公共法律知识题库",
            "part": "public",
            "field": "",
            "description": "测试用",
        },
        "questions": [copy.deepcopy(SINGLE), copy.deepcopy(MULTIPLE), copy.deepcopy(JUDGE)],
    }


def parse_doc(doc: dict[str, Any]) -> tuple[Bank | None, list[BankFileError]]:
    return parse_bank(to_toml(doc))


def make_question(**fields: Any) -> Question:
    values: dict[str, Any] = {
        "id": "PL-0001",
        "type": "single",
        "category": "public_law",
        "difficulty": 2,
        "stem": "题干",
        "options": ("甲", "乙", "丙"),
        "answer": (1,),
        "basis": "依据",
        "explanation": "解析",
    }
    values.update(fields)
    return Question(**values)


# --- a valid file ---------------------------------------------------------------------------------


def test_valid_bank_parses_into_frozen_dataclasses() -> None:
    bank, errors = parse_doc(valid_doc())

    assert errors == []
    assert bank is not None
    assert (bank.code, bank.part, bank.field) == ("public_law", "public", "")
    single, multiple, judge = bank.questions
    assert single.options == ("一年", "二年", "三年", "五年")
    assert single.answer == (1,)
    assert single.answer_letters == "B"
    assert multiple.answer == (0, 1, 3)
    assert multiple.answer_letters == "ABD"
    assert judge.options == ()
    assert judge.answer is True
    assert judge.answer_letters == "true"
    with pytest.raises(AttributeError):
        single.stem = "改动"  # type: ignore[misc]


def test_specialised_bank_needs_its_field() -> None:
    doc = valid_doc()
    doc["bank"].update(code="market_regulation", part="specialised", field="市场监管")
    bank, errors = parse_doc(doc)
    assert errors == []
    assert bank is not None and bank.field == "市场监管"


def test_text_is_stripped() -> None:
    doc = valid_doc()
    doc["questions"][0]["stem"] = "  " + SINGLE["stem"] + "\n"
    bank, errors = parse_doc(doc)
    assert errors == [] and bank is not None
    assert bank.questions[0].stem == SINGLE["stem"]


def test_load_bank_file_reads_utf8_with_or_without_bom(tmp_path: Path) -> None:
    text = to_toml(valid_doc())
    plain = tmp_path / "plain.toml"
    plain.write_bytes(text.encode("utf-8"))
    with_bom = tmp_path / "bom.toml"
    with_bom.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))

    for path in (plain, with_bom):
        bank, errors = load_bank_file(path)
        assert errors == [] and bank is not None and len(bank.questions) == 3


def test_load_bank_file_reports_bad_encoding(tmp_path: Path) -> None:
    path = tmp_path / "gbk.toml"
    path.write_bytes(to_toml(valid_doc()).encode("gbk"))
    bank, errors = load_bank_file(path)
    assert bank is None
    assert len(errors) == 1 and "UTF-8" in errors[0].message


# --- every error, one case per row ------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(index: int, key: str, value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        doc["questions"][index][key] = value

    return mutate


def _drop(index: int, key: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        del doc["questions"][index][key]

    return mutate


def _bank(key: str, value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        if value is None:
            del doc["bank"][key]
        else:
            doc["bank"][key] = value

    return mutate


def _duplicate_id(doc: dict[str, Any]) -> None:
    doc["questions"][2]["id"] = "PL-0001"


def _duplicate_stem(doc: dict[str, Any]) -> None:
    doc["questions"][1]["stem"] = SINGLE["stem"]


def _no_bank(doc: dict[str, Any]) -> None:
    del doc["bank"]


def _no_questions(doc: dict[str, Any]) -> None:
    doc["questions"] = []


def _unknown_top_level(doc: dict[str, Any]) -> None:
    doc["version"] = 2


Q0 = "questions[0] (id=PL-0001)"
Q1 = "questions[1] (id=PL-0002)"
Q2 = "questions[2] (id=PL-0003)"

ERROR_CASES = [
    # (case id, mutation, expected position, expected message)
    ("missing stem", _drop(0, "stem"), Q0, "缺少字段 stem"),
    ("missing basis", _drop(1, "basis"), Q1, "缺少字段 basis"),
    ("missing explanation", _drop(2, "explanation"), Q2, "缺少字段 explanation"),
    ("missing type", _drop(0, "type"), Q0, "缺少字段 type"),
    ("missing id", _drop(0, "id"), "questions[0]", "缺少字段 id"),
    ("empty stem", _set(0, "stem", "  "), Q0, "字段 stem 不能为空"),
    ("stem not text", _set(0, "stem", 5), Q0, "字段 stem 必须是字符串"),
    ("bad id", _set(0, "id", "PL 0001"), "questions[0] (id=PL 0001)", "题目编号 PL 0001 无效"),
    ("bad type", _set(0, "type", "essay"), Q0, "题型 essay 无效"),
    ("bad category", _set(0, "category", "criminal_law"), Q0, "题目类别 criminal_law 无效"),
    ("difficulty too high", _set(0, "difficulty", 6), Q0, "难度 6 超出范围，应为 1 到 5"),
    ("difficulty zero", _set(0, "difficulty", 0), Q0, "难度 0 超出范围，应为 1 到 5"),
    ("difficulty not int", _set(0, "difficulty", "2"), Q0, "难度 difficulty 必须是 1 到 5 的整数"),
    ("difficulty bool", _set(0, "difficulty", True), Q0, "难度 difficulty 必须是 1 到 5 的整数"),
    ("unknown field", _set(0, "anwser", "B"), Q0, "未知字段 anwser"),
    ("answer out of range", _set(0, "answer", "E"), Q0, "答案 E 不在选项范围内"),
    ("single with two answers", _set(0, "answer", "AB"), Q0, "单选题只能有一个答案"),
    ("lowercase answer", _set(0, "answer", "b"), Q0, "答案 b 无效：只能由大写选项字母组成"),
    ("answer not text", _set(0, "answer", 2), Q0, "单选题答案必须是选项字母"),
    ("missing answer", _drop(0, "answer"), Q0, "缺少字段 answer"),
    ("multiple with one answer", _set(1, "answer", "A"), Q1, "多选题至少应有两个答案"),
    ("multiple out of order", _set(1, "answer", "BA"), Q1, "多选题答案 BA 的字母须按顺序排列且不重复"),
    ("multiple repeated letter", _set(1, "answer", "AAB"), Q1, "多选题答案 AAB 的字母须按顺序排列且不重复"),
    ("multiple out of range", _set(1, "answer", "ADF"), Q1, "答案 F 不在选项范围内"),
    ("judge answer as text", _set(2, "answer", "true"), Q2, "判断题答案必须为 true 或 false"),
    ("judge answer as letter", _set(2, "answer", "A"), Q2, "判断题答案必须为 true 或 false"),
    ("judge with options", _set(2, "options", ["对", "错"]), Q2, "判断题不应有选项 options"),
    ("missing options", _drop(0, "options"), Q0, "缺少字段 options"),
    ("one option", _set(0, "options", ["一年"]), Q0, "选项数量为 1，应为 2 到 6 个"),
    ("seven options", _set(0, "options", list("甲乙丙丁戊己庚")), Q0, "选项数量为 7，应为 2 到 6 个"),
    ("empty option", _set(0, "options", ["一年", " ", "三年"]), Q0, "选项 B 不能为空"),
    ("duplicate option", _set(0, "options", ["一年", "二年", "一年"]), Q0, "选项重复: 一年"),
    ("options not list", _set(0, "options", "一年,二年"), Q0, "选项 options 必须是字符串数组"),
    ("stem too long", _set(0, "stem", "题" * 2001), Q0, "题干过长：2001 个字符，最多 2000 个"),
    (
        "option too long",
        _set(0, "options", ["一年", "年" * 501, "三年"]),
        Q0,
        "选项 B过长：501 个字符，最多 500 个",
    ),
    ("basis too long", _set(1, "basis", "据" * 1001), Q1, "依据过长：1001 个字符，最多 1000 个"),
    ("explanation too long", _set(2, "explanation", "析" * 4001), Q2, "解析过长：4001 个字符，最多 4000 个"),
    ("duplicate id", _duplicate_id, "questions[2] (id=PL-0001)", "题目编号重复: PL-0001"),
    ("duplicate stem", _duplicate_stem, Q1, f"题干重复：与 {Q0} 相同"),
    ("missing bank table", _no_bank, "bank", "缺少 [bank] 表"),
    ("no questions", _no_questions, "questions", "题库中没有题目"),
    ("unknown top-level key", _unknown_top_level, "version", "未知字段 version"),
    ("missing bank code", _bank("code", None), "bank.code", "缺少字段 code"),
    ("bad bank code", _bank("code", "Public-Law"), "bank.code", "题库代码 Public-Law 只能包含"),
    ("missing bank title", _bank("title", None), "bank.title", "缺少字段 title"),
    ("bad part", _bank("part", "general"), "bank.part", "考试部分 general 无效"),
    ("public bank with field", _bank("field", "市场监管"), "bank.field", "公共法律知识题库的 field 应为空"),
    ("unknown bank key", _bank("owner", "司法局"), "bank.owner", "未知字段 owner"),
]


def test_texts_at_their_limits_are_accepted() -> None:
    doc = valid_doc()
    doc["questions"][0]["stem"] = "题" * 2000
    doc["questions"][0]["options"] = ["一年", "年" * 500, "三年"]
    doc["questions"][1]["basis"] = "据" * 1000
    doc["questions"][2]["explanation"] = "析" * 4000
    bank, errors = parse_doc(doc)
    assert errors == [] and bank is not None


@pytest.mark.parametrize(
    ("mutate", "position", "message"),
    [pytest.param(m, p, msg, id=case) for case, m, p, msg in ERROR_CASES],
)
def test_each_error_is_reported_where_it_is(mutate: Mutation, position: str, message: str) -> None:
    doc = valid_doc()
    mutate(doc)

    bank, errors = parse_doc(doc)

    assert bank is None
    assert any(e.position == position and e.message.startswith(message) for e in errors), errors


def test_specialised_bank_without_field_is_an_error() -> None:
    doc = valid_doc()
    doc["bank"].update(part="specialised", field="")
    bank, errors = parse_doc(doc)
    assert bank is None
    assert BankFileError("bank.field", "专门法律知识题库必须填写执法领域 field") in errors


def test_errors_are_collected_not_stopped_at_the_first() -> None:
    doc = valid_doc()
    doc["questions"][0]["answer"] = "E"
    del doc["questions"][1]["stem"]
    doc["questions"][2]["answer"] = "false"

    bank, errors = parse_doc(doc)

    assert bank is None
    assert [(e.position, e.message) for e in errors] == [
        (Q0, "答案 E 不在选项范围内"),
        (Q1, "缺少字段 stem"),
        (Q2, "判断题答案必须为 true 或 false"),
    ]


def test_error_str_names_position_and_message() -> None:
    assert str(BankFileError(Q0, "缺少字段 stem")) == f"{Q0}: 缺少字段 stem"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('[bank]\ncode = "x"\ntitle = \n', 3),
        ('[bank]\ncode = "x"\ncode = "y"\n', 3),
        ('[bank]\ncode = "x\n', 2),
        ("[[questions]]\nid = PL-0001\n", 2),
    ],
)
def test_toml_syntax_error_is_one_error_with_the_line(text: str, line: int) -> None:
    bank, errors = parse_bank(text, source="public_law.toml")

    assert bank is None
    assert len(errors) == 1
    assert errors[0].position.startswith(f"public_law.toml 第 {line} 行")
    assert errors[0].message.startswith(f"TOML 语法错误（第 {line} 行")


# --- the version hash -------------------------------------------------------------------------------


def test_hash_is_stable() -> None:
    question = make_question()
    assert canonical_hash(question) == canonical_hash(make_question())
    assert len(canonical_hash(question)) == 64
    assert question.version == canonical_hash(question)
    # Pinned: a change here silently makes every stored question version a new one.
    assert canonical_hash(question) == PINNED_HASH


PINNED_HASH = "69109ac02cb3f2429171856af94533cf7b83a6220c7f291487b02791146fafad"


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"stem": "题干。"}, id="stem"),
        pytest.param({"options": ("甲", "乙", "丁")}, id="option text"),
        pytest.param({"options": ("甲", "乙", "丙", "丁")}, id="option added"),
        pytest.param({"answer": (2,)}, id="answer"),
        pytest.param({"type": "multiple", "answer": (1, 2)}, id="type"),
        pytest.param({"options": ("乙", "甲", "丙")}, id="option order"),
    ],
)
def test_hash_changes_with_what_the_candidate_sees_or_is_graded_on(changes: dict[str, Any]) -> None:
    assert canonical_hash(make_question(**changes)) != canonical_hash(make_question())


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"id": "PL-9999"}, id="id"),
        pytest.param({"basis": "另一依据"}, id="basis"),
        pytest.param({"explanation": "更详细的解析"}, id="explanation"),
        pytest.param({"difficulty": 5}, id="difficulty"),
        pytest.param({"category": "new_law"}, id="category"),
        pytest.param({"stem": "  题干\n"}, id="surrounding whitespace"),
    ],
)
def test_hash_ignores_metadata(changes: dict[str, Any]) -> None:
    assert canonical_hash(make_question(**changes)) == canonical_hash(make_question())


def test_hash_normalises_unicode() -> None:
    composed = make_question(stem="café")
    decomposed = make_question(stem="cafe\u0301")
    assert canonical_hash(composed) == canonical_hash(decomposed)


def test_judge_hash_depends_on_the_answer() -> None:
    yes = make_question(type="judge", options=(), answer=True)
    no = make_question(type="judge", options=(), answer=False)
    assert canonical_hash(yes) != canonical_hash(no)


def test_parsed_question_hash_matches_the_same_content_reordered_in_the_file() -> None:
    doc = valid_doc()
    reordered = valid_doc()
    reordered["questions"][0] = dict(reversed(list(SINGLE.items())))
    first, _ = parse_doc(doc)
    second, _ = parse_doc(reordered)
    assert first is not None and second is not None
    assert first.questions[0].version == second.questions[0].version


# --- the shipped banks ------------------------------------------------------------------------------


def shipped_banks() -> list[Path]:
    """The expected banks (a missing one fails rather than skips) and any other bank file."""
    names = set(MINIMUM_QUESTIONS) | {p.name for p in BANK_DIR.glob("*.toml")}
    return [BANK_DIR / name for name in sorted(names)]


def test_every_expected_bank_is_shipped() -> None:
    names = {p.name for p in BANK_DIR.glob("*.toml")}
    assert set(MINIMUM_QUESTIONS) <= names


@pytest.mark.parametrize("path", shipped_banks(), ids=lambda p: p.name)
def test_shipped_bank_is_valid(path: Path) -> None:
    bank, errors = load_bank_file(path)

    assert errors == [], "\n".join(str(e) for e in errors)
    assert bank is not None
    assert bank.code == path.stem
    assert len(bank.questions) >= MINIMUM_QUESTIONS.get(path.name, 1)

    ids = [q.id for q in bank.questions]
    assert len(ids) == len(set(ids))
    stems = [q.stem for q in bank.questions]
    assert len(stems) == len(set(stems))
    for q in bank.questions:
        assert q.basis.strip() and q.explanation.strip(), q.id
        if q.type == "single":
            assert isinstance(q.answer, tuple) and len(q.answer) == 1, q.id
        elif q.type == "multiple":
            assert isinstance(q.answer, tuple) and len(q.answer) >= 2, q.id
        else:
            assert isinstance(q.answer, bool) and q.options == (), q.id
    if bank.part == "public":
        assert bank.field == ""
        assert {q.category for q in bank.questions} <= {"public_law", "new_law"}
    else:
        assert bank.field
        assert {q.category for q in bank.questions} <= {"specialised_law", "new_law"}


def test_shipped_ids_are_unique_across_banks() -> None:
    # Attempts refer to (bank, id); unique ids across banks also keep reports unambiguous.
    ids: Counter[str] = Counter()
    for path in shipped_banks():
        bank, _ = load_bank_file(path)
        assert bank is not None
        ids.update(q.id for q in bank.questions)
    assert [i for i, n in ids.items() if n > 1] == []


def test_public_bank_has_new_law_questions_and_a_mix_of_types() -> None:
    bank, _ = load_bank_file(BANK_DIR / "public_law.toml")
    assert bank is not None
    categories = Counter(q.category for q in bank.questions)
    assert categories["new_law"] >= 20
    types = Counter(q.type for q in bank.questions)
    total = len(bank.questions)
    assert types["single"] / total >= 0.45
    assert types["multiple"] / total >= 0.2
    assert types["judge"] / total >= 0.15


@pytest.mark.parametrize("path", shipped_banks(), ids=lambda p: p.name)
def test_correct_letters_are_spread(path: Path) -> None:
    """A key that is nearly always the same letter teaches candidates to guess it."""
    bank, _ = load_bank_file(path)
    assert bank is not None
    singles = [q for q in bank.questions if q.type == "single"]
    letters = Counter(q.answer_letters for q in singles)
    assert max(letters.values()) <= 0.4 * len(singles), letters
    judges = Counter(q.answer for q in bank.questions if q.type == "judge")
    assert judges[True] and judges[False]
