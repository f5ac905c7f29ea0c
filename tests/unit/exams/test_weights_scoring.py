"""Option weights (Moodle percentages) in the bank format and the hash, and score_answer."""

from __future__ import annotations

import copy
import hashlib
import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from app.exams.bankfile import Question, canonical_hash, load_bank_file, parse_bank
from app.exams.scoring import score_answer
from tests.unit.exams.test_bankfile import BANK_DIR, MULTIPLE, SINGLE, make_question, to_toml, valid_doc


def _hash_before_weights(question: Question) -> str:
    """canonical_hash as it was before weights existed (HASH_FORMAT 1): what stored versions use."""

    def text(value: str) -> str:
        return unicodedata.normalize("NFC", value).strip()

    answer = question.answer if isinstance(question.answer, bool) else list(question.answer)
    payload = {
        "format": 1,
        "type": question.type,
        "stem": text(question.stem),
        "options": [text(o) for o in question.options],
        "answer": answer,
    }
    data = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


# --- the hash ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(BANK_DIR.glob("*.toml")), ids=lambda p: p.name)
def test_weights_leave_every_shipped_question_hash_unchanged(path: Path) -> None:
    bank, errors = load_bank_file(path)
    assert errors == []
    assert bank is not None
    for question in bank.questions:
        assert question.weights is None
        assert canonical_hash(question) == _hash_before_weights(question), question.id


def test_weights_are_part_of_the_hash_only_when_present() -> None:
    plain = make_question()
    weighted = make_question(weights=(0.0, 100.0, 0.0))
    other = make_question(weights=(-50.0, 100.0, 0.0))

    assert canonical_hash(plain) == _hash_before_weights(plain)
    assert canonical_hash(weighted) != canonical_hash(plain)
    assert canonical_hash(other) != canonical_hash(weighted)


def test_equal_weights_written_differently_hash_the_same() -> None:
    a = make_question(type="multiple", answer=(0, 1), weights=(50.0, 50.0, 0.0))
    b = make_question(type="multiple", answer=(0, 1), weights=(50.000001, 50.0, -0.0))
    assert canonical_hash(a) == canonical_hash(b)


# --- weights in the TOML format -----------------------------------------------------------------------


def _doc_with(index: int, **fields: Any) -> dict[str, Any]:
    doc = valid_doc()
    doc["questions"][index].update(copy.deepcopy(fields))
    return doc


def test_toml_weights_are_read_in_option_order() -> None:
    doc = _doc_with(1, weights=[50, 25, -100, 25])
    bank, errors = parse_bank(to_toml(doc))
    assert errors == []
    assert bank is not None
    assert bank.questions[1].weights == (50.0, 25.0, -100.0, 25.0)
    assert bank.questions[0].weights is None


def test_toml_thirds_add_up_to_100() -> None:
    doc = _doc_with(1, answer="ABD", weights=[33.33333, 33.33333, -50, 33.33333])
    bank, errors = parse_bank(to_toml(doc))
    assert errors == []
    assert bank is not None


Q0 = "questions[0] (id=PL-0001)"
Q1 = "questions[1] (id=PL-0002)"
Q2 = "questions[2] (id=PL-0003)"

WEIGHT_ERRORS = [
    ("not a list", 1, {"weights": "50,50"}, Q1, "选项分值 weights 必须是数字数组，例如 [50, 50, 0, -50]"),
    (
        "text items",
        1,
        {"weights": ["50", "50", "0", "0"]},
        Q1,
        "选项分值 weights 必须是数字数组，例如 [50, 50, 0, -50]",
    ),
    (
        "bool items",
        1,
        {"weights": [True, False, True, True]},
        Q1,
        "选项分值 weights 必须是数字数组，例如 [50, 50, 0, -50]",
    ),
    ("too few", 1, {"weights": [50, 50, 0]}, Q1, "选项分值 weights 有 3 个，与选项个数 4 不一致"),
    (
        "out of range",
        1,
        {"weights": [150, -50, 0, 0]},
        Q1,
        "选项 A 的分值 150 超出范围，应在 -100 到 100 之间",
    ),
    (
        "key not the positive ones",
        1,
        {"weights": [50, 50, 0, 0]},
        Q1,
        "多选题的答案 ABD 应恰为分值大于 0 的选项（AB）",
    ),
    ("positive sum not 100", 1, {"weights": [40, 40, 0, 40]}, Q1, "多选题正确选项的分值之和为 120，应为 100"),
    (
        "single key not 100",
        0,
        {"weights": [100, 50, 0, 0]},
        Q0,
        "单选题的答案必须是唯一一个分值为 100 的选项（分值为 100 的选项：A）",
    ),
    (
        "single two full",
        0,
        {"weights": [0, 100, 100, 0]},
        Q0,
        "单选题的答案必须是唯一一个分值为 100 的选项（分值为 100 的选项：BC）",
    ),
    ("judge", 2, {"weights": [100, 0]}, Q2, "判断题不能设置选项分值 weights"),
]


@pytest.mark.parametrize(
    ("index", "fields", "position", "message"),
    [pytest.param(i, f, p, m, id=case) for case, i, f, p, m in WEIGHT_ERRORS],
)
def test_bad_weights_are_reported(index: int, fields: dict[str, Any], position: str, message: str) -> None:
    bank, errors = parse_bank(to_toml(_doc_with(index, **fields)))
    assert bank is None
    assert [(e.position, e.message) for e in errors] == [(position, message)]


# --- score_answer ------------------------------------------------------------------------------------

_SINGLE = make_question(type="single", options=("甲", "乙", "丙", "丁"), answer=(1,))
_SINGLE_PARTIAL = make_question(
    type="single", options=("甲", "乙", "丙", "丁"), answer=(3,), weights=(0, 25, 50, 100)
)
_MULTI = make_question(type="multiple", options=("甲", "乙", "丙", "丁"), answer=(1, 2))
_MULTI_W = make_question(
    type="multiple", options=("甲", "乙", "丙", "丁"), answer=(1, 2), weights=(0, 50, 50, 0)
)
_MULTI_NEG = make_question(
    type="multiple", options=("甲", "乙", "丙", "丁"), answer=(1, 2), weights=(-50, 50, 50, -50)
)
_THIRDS = make_question(
    type="multiple",
    options=("甲", "乙", "丙", "丁"),
    answer=(0, 1, 2),
    weights=(33.33333, 33.33333, 33.33333, -100),
)
_JUDGE = make_question(type="judge", options=(), answer=False)

SCORES = [
    ("single right", _SINGLE, (1,), 1.0),
    ("single wrong", _SINGLE, (0,), 0.0),
    ("single two ticked", _SINGLE, (1, 2), 0.0),
    ("single unanswered", _SINGLE, (), 0.0),
    ("single none", _SINGLE, None, 0.0),
    ("single partial full", _SINGLE_PARTIAL, (3,), 1.0),
    ("single partial half", _SINGLE_PARTIAL, (2,), 0.5),
    ("single partial quarter", _SINGLE_PARTIAL, (1,), 0.25),
    ("single partial zero", _SINGLE_PARTIAL, (0,), 0.0),
    ("single partial two ticked", _SINGLE_PARTIAL, (2, 3), 0.0),
    ("multi exact", _MULTI, (1, 2), 1.0),
    ("multi exact any order, repeats", _MULTI, (2, 1, 2), 1.0),
    ("multi one of two", _MULTI, (1,), 0.0),
    ("multi too many", _MULTI, (0, 1, 2), 0.0),
    ("weighted both", _MULTI_W, (1, 2), 1.0),
    ("weighted one", _MULTI_W, (2,), 0.5),
    ("weighted all four (no penalty in Moodle)", _MULTI_W, (0, 1, 2, 3), 1.0),
    ("weighted only wrong", _MULTI_W, (0,), 0.0),
    ("negative both right", _MULTI_NEG, (1, 2), 1.0),
    ("negative one right one wrong", _MULTI_NEG, (0, 1), 0.0),
    ("negative floored at 0", _MULTI_NEG, (0, 3), 0.0),
    ("negative all four", _MULTI_NEG, (0, 1, 2, 3), 0.0),
    ("negative right and half", _MULTI_NEG, (1, 2, 3), 0.5),
    ("thirds make a full mark", _THIRDS, (0, 1, 2), 1.0),
    ("two thirds", _THIRDS, (0, 1), 0.666667),
    ("judge right", _JUDGE, False, 1.0),
    ("judge wrong", _JUDGE, True, 0.0),
    ("judge unanswered", _JUDGE, None, 0.0),
]


@pytest.mark.parametrize(
    ("question", "chosen", "expected"),
    [pytest.param(q, c, e, id=case) for case, q, c, e in SCORES],
)
def test_score_answer(question: Question, chosen: tuple[int, ...] | bool | None, expected: float) -> None:
    assert score_answer(question, chosen) == expected


@pytest.mark.parametrize(
    ("question", "chosen"),
    [
        pytest.param(_SINGLE, (4,), id="index past the options"),
        pytest.param(_MULTI, (-1,), id="negative index"),
        pytest.param(_SINGLE, True, id="bool for a choice question"),
        pytest.param(_JUDGE, (0,), id="indexes for a judge question"),
    ],
)
def test_score_answer_refuses_answers_of_the_wrong_kind(
    question: Question, chosen: tuple[int, ...] | bool
) -> None:
    with pytest.raises(ValueError):
        score_answer(question, chosen)


def test_scoring_a_parsed_weighted_question() -> None:
    doc = valid_doc()
    doc["questions"][1] = {**MULTIPLE, "weights": [40, 30, -100, 30]}
    doc["questions"][0] = dict(SINGLE)
    bank, errors = parse_bank(to_toml(doc))
    assert errors == [] and bank is not None
    question = bank.questions[1]
    assert score_answer(question, (0, 1, 3)) == 1.0
    assert score_answer(question, (0,)) == 0.4
    assert score_answer(question, (0, 2)) == 0.0
