"""题库文件: parse and validate the exam bank files kept under ``exam_banks/`` (TOML, UTF-8).

Pure: :func:`parse_bank` takes the text and returns frozen dataclasses plus every problem found,
so an administrator sees all of a file's mistakes at once, in Chinese. :func:`load_bank_file` is
the only function that touches the disk. The format is described in ``exam_banks/README.md``.

A question keeps its ``id`` for ever; its *version* is :func:`canonical_hash` of what a candidate
sees and what is graded (type, stem, options in order, answer, and option weights when there are
any), so editing any of those makes a
new version under the same id, while fixing an explanation or a citation does not.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NamedTuple

QUESTION_TYPES: Final = ("single", "multiple", "judge")
CATEGORIES: Final = ("public_law", "specialised_law", "new_law")
PARTS: Final = ("public", "specialised")
DIFFICULTY_RANGE: Final = range(1, 6)
MIN_OPTIONS: Final = 2
MAX_OPTIONS: Final = 6
MAX_TEXT_CHARS: Final = {"stem": 2_000, "option": 500, "basis": 1_000, "explanation": 4_000, "title": 200}
"""The longest text a question may carry, per part (characters). A paper shows 100 questions on
one page and every candidate's browser draws them: a question of megabytes is a mistake or an
attack, refused at import with the question's position, never stored."""
_TEXT_LABELS: Final = {
    "stem": "题干",
    "option": "选项",
    "basis": "依据",
    "explanation": "解析",
    "title": "题目名称",
}
OPTION_LETTERS: Final = "ABCDEF"
HASH_FORMAT: Final = 1
"""Bump only together with a migration: every stored question version is keyed by this hash."""

_BANK_CODE_RE: Final = re.compile(r"^[a-z0-9_]+$")
_QUESTION_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_TOML_LINE_RE: Final = re.compile(r"at line (\d+)(?:, column (\d+))?")

_BANK_KEYS: Final = frozenset({"code", "title", "part", "field", "description"})
_QUESTION_KEYS: Final = frozenset(
    {"id", "type", "category", "difficulty", "stem", "options", "answer", "weights", "basis", "explanation"}
)
WEIGHT_RANGE: Final = (-100.0, 100.0)
_WEIGHT_TOLERANCE: Final = 0.01
"""Moodle's thirds (33.33333 x 3) do not add up to exactly 100."""
_TYPE_LABELS: Final = {"single": "单选题", "multiple": "多选题", "judge": "判断题"}

_Report = Callable[[str], None]
"""Records one error message at the position being parsed."""


@dataclass(frozen=True, slots=True)
class BankFileError:
    """One problem in a bank file; ``position`` names where (``questions[12] (id=PL-0013)``)."""

    position: str
    message: str

    def __str__(self) -> str:
        return f"{self.position}: {self.message}"


@dataclass(frozen=True, slots=True)
class Question:
    """One question. ``answer`` is 0-based option indexes (single, multiple) or a bool (judge)."""

    id: str
    type: str
    category: str
    difficulty: int
    stem: str
    options: tuple[str, ...]
    answer: tuple[int, ...] | bool
    basis: str
    explanation: str
    weights: tuple[float, ...] | None = None
    """Per option, in option order, Moodle percentages (-100..100); ``None`` = all-or-nothing."""
    title: str = ""
    """A name for reviewers (GIFT ``::title::``); not part of the version."""

    @property
    def is_draft(self) -> bool:
        """草稿: a question without a legal basis is stored but never drawn until one is filled in."""
        return is_draft(self.basis)

    @property
    def version(self) -> str:
        return canonical_hash(self)

    @property
    def answer_letters(self) -> str:
        """The key as written in the file: ``"B"``, ``"ABD"``; ``"true"`` / ``"false"`` for judge."""
        if isinstance(self.answer, bool):
            return "true" if self.answer else "false"
        return "".join(OPTION_LETTERS[i] for i in self.answer)


@dataclass(frozen=True, slots=True)
class Bank:
    code: str
    title: str
    part: str
    field: str
    description: str
    questions: tuple[Question, ...]


def canonical_hash(question: Question) -> str:
    """SHA-256 (hex) of the question's canonical content: type, stem, options in order, answer
    and, only when the question has them, the option weights.

    Text is NFC-normalised and stripped, so an invisible re-encoding of the same characters is not a
    new version; option order is significant because the answer key refers to positions.
    """
    answer: list[int] | bool = question.answer if isinstance(question.answer, bool) else list(question.answer)
    payload: dict[str, object] = {
        "format": HASH_FORMAT,
        "type": question.type,
        "stem": _canonical_text(question.stem),
        "options": [_canonical_text(o) for o in question.options],
        "answer": answer,
    }
    if question.weights is not None:
        # Only when present, so that every question without weights keeps the hash it always had.
        payload["weights"] = [_canonical_weight(w) for w in question.weights]
    data = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def load_bank_file(path: str | Path) -> tuple[Bank | None, list[BankFileError]]:
    """Read a bank file from disk and parse it; the only I/O in this module."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        # utf-8-sig: files saved by Windows editors start with a BOM, which TOML itself rejects.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, [BankFileError("文件", f"文件不是有效的 UTF-8 编码（第 {exc.start + 1} 个字节）")]
    return parse_bank(text, source=str(path))


def parse_bank(text: str, *, source: str = "<string>") -> tuple[Bank | None, list[BankFileError]]:
    """Parse and validate a bank file's text.

    Returns the bank and an empty list, or ``None`` and every error found: a bank with any error is
    never half-imported.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [_syntax_error(exc, source)]

    errors: list[BankFileError] = []
    for key in sorted(set(data) - {"bank", "questions"}):
        errors.append(BankFileError(key, f"未知字段 {key}"))

    header = _parse_header(data.get("bank"), errors)
    questions = _parse_questions(data.get("questions"), errors)

    if errors or header is None or questions is None:
        return None, errors
    return (
        Bank(**header._asdict(), questions=questions),
        [],
    )


def _syntax_error(exc: tomllib.TOMLDecodeError, source: str) -> BankFileError:
    message = str(exc)
    match = _TOML_LINE_RE.search(message)
    detail = _TOML_LINE_RE.sub("", message).strip(" ()")
    if match is None:
        return BankFileError(source, f"TOML 语法错误：{detail}")
    where = f"第 {match.group(1)} 行" + (f"第 {match.group(2)} 列" if match.group(2) else "")
    return BankFileError(f"{source} {where}", f"TOML 语法错误（{where}）：{detail}")


class BankHeader(NamedTuple):
    """What a bank says of itself (a TOML file's ``[bank]`` table): the first fields of ``Bank``,
    stored on the bank's row."""

    code: str
    title: str
    part: str
    field: str
    description: str


def _parse_header(raw: object, errors: list[BankFileError]) -> BankHeader | None:
    if raw is None:
        errors.append(BankFileError("bank", "缺少 [bank] 表"))
        return None
    if not isinstance(raw, Mapping):
        errors.append(BankFileError("bank", "bank 必须是一个表（[bank]）"))
        return None
    table: Mapping[str, object] = raw

    before = len(errors)
    for key in sorted(set(table) - _BANK_KEYS):
        errors.append(BankFileError(f"bank.{key}", f"未知字段 {key}"))

    def text(key: str, *, required: bool = True, allow_empty: bool = False) -> str:
        value = table.get(key)
        if value is None:
            if required:
                errors.append(BankFileError(f"bank.{key}", f"缺少字段 {key}"))
            return ""
        if not isinstance(value, str):
            errors.append(BankFileError(f"bank.{key}", f"字段 {key} 必须是字符串"))
            return ""
        value = value.strip()
        if not value and not allow_empty:
            errors.append(BankFileError(f"bank.{key}", f"字段 {key} 不能为空"))
        return value

    code = text("code")
    if code and not _BANK_CODE_RE.match(code):
        errors.append(BankFileError("bank.code", f"题库代码 {code} 只能包含小写字母、数字和下划线"))
    title = text("title")
    part = text("part")
    if part and part not in PARTS:
        errors.append(BankFileError("bank.part", f"考试部分 {part} 无效，应为 public 或 specialised"))
    field = text("field", allow_empty=True)
    if part == "specialised" and not field and "field" in table:
        errors.append(BankFileError("bank.field", "专门法律知识题库必须填写执法领域 field"))
    if part == "public" and field:
        errors.append(BankFileError("bank.field", "公共法律知识题库的 field 应为空字符串"))
    description = text("description", required=False, allow_empty=True)

    if len(errors) > before:
        return None
    return BankHeader(code=code, title=title, part=part, field=field, description=description)


def _parse_questions(raw: object, errors: list[BankFileError]) -> tuple[Question, ...] | None:
    if raw is None:
        errors.append(BankFileError("questions", "题库中没有题目（缺少 [[questions]]）"))
        return None
    if not isinstance(raw, list) or not all(isinstance(q, Mapping) for q in raw):
        errors.append(BankFileError("questions", "questions 必须是表数组（[[questions]]）"))
        return None
    if not raw:
        errors.append(BankFileError("questions", "题库中没有题目（缺少 [[questions]]）"))
        return None

    questions: list[Question] = []
    first_with_id: dict[str, str] = {}
    first_with_stem: dict[str, str] = {}
    for index, item in enumerate(raw):
        raw_id = item.get("id")
        position = f"questions[{index}]"
        if isinstance(raw_id, str) and raw_id.strip():
            position += f" (id={raw_id.strip()})"
        question = _parse_question(item, position, errors)
        if question is None:
            continue
        if question.id in first_with_id:
            errors.append(BankFileError(position, f"题目编号重复: {question.id}"))
        else:
            first_with_id[question.id] = position
        stem_key = _canonical_text(question.stem)
        if stem_key in first_with_stem:
            errors.append(BankFileError(position, f"题干重复：与 {first_with_stem[stem_key]} 相同"))
        else:
            first_with_stem[stem_key] = position
        questions.append(question)
    return tuple(questions)


def _parse_question(
    item: Mapping[str, object], position: str, errors: list[BankFileError]
) -> Question | None:
    before = len(errors)

    def error(message: str) -> None:
        errors.append(BankFileError(position, message))

    for key in sorted(set(item) - _QUESTION_KEYS):
        error(f"未知字段 {key}")

    def text(key: str) -> str:
        value = item.get(key)
        if value is None:
            error(f"缺少字段 {key}")
            return ""
        if not isinstance(value, str):
            error(f"字段 {key} 必须是字符串")
            return ""
        if not value.strip():
            error(f"字段 {key} 不能为空")
        return value.strip()

    qid = text("id")
    if qid and not _QUESTION_ID_RE.match(qid):
        error(f"题目编号 {qid} 无效：只能包含字母、数字、连字符和下划线，最长 32 个字符")

    qtype = text("type")
    if qtype and qtype not in QUESTION_TYPES:
        error(f"题型 {qtype} 无效，应为 single、multiple 或 judge")

    category = text("category")
    if category and category not in CATEGORIES:
        error(f"题目类别 {category} 无效，应为 public_law、specialised_law 或 new_law")

    difficulty = item.get("difficulty")
    if difficulty is None:
        error("缺少字段 difficulty")
    elif isinstance(difficulty, bool) or not isinstance(difficulty, int):
        error("难度 difficulty 必须是 1 到 5 的整数")
    elif difficulty not in DIFFICULTY_RANGE:
        error(f"难度 {difficulty} 超出范围，应为 1 到 5")

    stem = text("stem")
    basis = text("basis")
    explanation = text("explanation")

    options: tuple[str, ...] = ()
    answer: tuple[int, ...] | bool = ()
    if qtype == "judge":
        if "options" in item:
            error("判断题不应有选项 options")
        raw_answer = item.get("answer")
        if raw_answer is None:
            error("缺少字段 answer")
        elif not isinstance(raw_answer, bool):
            error("判断题答案必须为 true 或 false")
        else:
            answer = raw_answer
    elif qtype in ("single", "multiple"):
        options = _parse_options(item.get("options"), error)
        answer = _parse_choice_answer(item.get("answer"), qtype, len(options), error)

    weights: tuple[float, ...] | None = None
    if "weights" in item:
        weights = _parse_weights(item["weights"], error)
        if weights is not None and len(errors) == before:
            for message in check_weights(qtype, len(options), answer, weights):
                error(message)

    for message in text_length_problems(stem, options, basis, explanation):
        error(message)
    if len(errors) > before:
        return None
    assert isinstance(difficulty, int)
    return Question(
        id=qid,
        type=qtype,
        category=category,
        difficulty=difficulty,
        stem=stem,
        options=options,
        answer=answer,
        basis=basis,
        explanation=explanation,
        weights=weights,
    )


def check_weights(
    qtype: str, option_count: int, answer: tuple[int, ...] | bool, weights: tuple[float, ...]
) -> list[str]:
    """Why ``weights`` (Moodle percentages per option) do not fit the question; empty when they do.

    A single-choice key must be the one option worth 100; a multiple-choice key must be exactly the
    options worth more than 0, and those must add up to 100 (Moodle's rule for multiple answers).
    """
    if qtype == "judge" or isinstance(answer, bool):
        return ["判断题不能设置选项分值 weights"]
    if len(weights) != option_count:
        return [f"选项分值 weights 有 {len(weights)} 个，与选项个数 {option_count} 不一致"]
    problems: list[str] = []
    low, high = WEIGHT_RANGE
    for index, weight in enumerate(weights):
        if not low <= weight <= high:
            problems.append(
                f"选项 {letter(index)} 的分值 {_show_weight(weight)} 超出范围，应在 -100 到 100 之间"
            )
    if problems:
        return problems
    if qtype == "single":
        full = [i for i, w in enumerate(weights) if abs(w - 100) <= _WEIGHT_TOLERANCE]
        if list(answer) != full:
            letters = "".join(letter(i) for i in full) or "无"
            problems.append(f"单选题的答案必须是唯一一个分值为 100 的选项（分值为 100 的选项：{letters}）")
    elif qtype == "multiple":
        positive = [i for i, w in enumerate(weights) if w > 0]
        if list(answer) != positive:
            keys = "".join(letter(i) for i in answer)
            letters = "".join(letter(i) for i in positive) or "无"
            problems.append(f"多选题的答案 {keys} 应恰为分值大于 0 的选项（{letters}）")
        total = sum(weights[i] for i in positive)
        if abs(total - 100) > _WEIGHT_TOLERANCE:
            problems.append(f"多选题正确选项的分值之和为 {_show_weight(total)}，应为 100")
    return problems


def _parse_weights(raw: object, error: _Report) -> tuple[float, ...] | None:
    if not isinstance(raw, list) or not all(
        isinstance(w, int | float) and not isinstance(w, bool) for w in raw
    ):
        error("选项分值 weights 必须是数字数组，例如 [50, 50, 0, -50]")
        return None
    return tuple(float(w) for w in raw)


def _canonical_weight(weight: float) -> int | float:
    # 50 and 50.0 are the same weight; Moodle keeps 7 significant decimals (33.33333).
    value = round(float(weight), 5)
    return int(value) if value.is_integer() else value


def _show_weight(weight: float) -> str:
    return str(_canonical_weight(weight))


def is_draft(basis: str) -> bool:
    """The one rule of 草稿: no basis (the law and article the key rests on), no paper may draw it."""
    return not basis.strip()


def text_length_problems(
    stem: str, options: tuple[str, ...], basis: str, explanation: str, title: str = ""
) -> list[str]:
    """What is too long in a question, by ``MAX_TEXT_CHARS`` (the one rule of every bank format)."""
    parts = [("stem", stem, ""), ("basis", basis, ""), ("explanation", explanation, ""), ("title", title, "")]
    parts[1:1] = [("option", o, f" {letter(i)}") for i, o in enumerate(options)]
    return [
        f"{_TEXT_LABELS[kind]}{suffix}过长：{len(value)} 个字符，最多 {MAX_TEXT_CHARS[kind]} 个"
        for kind, value, suffix in parts
        if len(value) > MAX_TEXT_CHARS[kind]
    ]


def _parse_options(raw: object, error: _Report) -> tuple[str, ...]:
    if raw is None:
        error("缺少字段 options")
        return ()
    if not isinstance(raw, list) or not all(isinstance(o, str) for o in raw):
        error("选项 options 必须是字符串数组")
        return ()
    options = tuple(o.strip() for o in raw)
    for message in check_options(options):
        error(message)
    return options


def check_options(options: tuple[str, ...]) -> list[str]:
    """Why a choice question's options do not do: how many, an empty one, a repeated one (every format)."""
    problems = []
    if not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
        problems.append(f"选项数量为 {len(options)}，应为 {MIN_OPTIONS} 到 {MAX_OPTIONS} 个")
    seen: set[str] = set()
    for index, option in enumerate(options):
        key = _canonical_text(option)
        if not key:
            problems.append(f"选项 {letter(index)} 不能为空")
        elif key in seen:
            problems.append(f"选项重复: {option}")
        seen.add(key)
    return problems


def check_key(qtype: str, option_count: int, answer: tuple[int, ...]) -> list[str]:
    """Why a choice question's key does not fit its options and type (every format)."""
    problems = [
        f"答案 {_key_letter(i)} 不在选项范围内" for i in answer if option_count and not 0 <= i < option_count
    ]
    if qtype == "single" and len(answer) != 1:
        problems.append("单选题只能有一个答案")
    if qtype == "multiple" and len(answer) < 2:
        problems.append("多选题至少应有两个答案")
    return problems


def check_choices(
    qtype: str,
    options: tuple[str, ...],
    answer: tuple[int, ...] | bool,
    weights: tuple[float, ...] | None,
) -> list[str]:
    """The rules on options, key and weights for an already structured question (GIFT, XLSX): the
    same :func:`check_options`, :func:`check_key` and :func:`check_weights` the TOML reader applies."""
    if qtype == "judge":
        problems = ["判断题不应有选项"] if options else []
        if weights is not None:
            problems += check_weights(qtype, 0, answer, weights)
        return problems
    assert not isinstance(answer, bool)
    problems = check_options(options) + check_key(qtype, len(options), answer)
    if weights is not None and not problems:
        problems += check_weights(qtype, len(options), answer, weights)
    return problems


def _parse_choice_answer(raw: object, qtype: str, option_count: int, error: _Report) -> tuple[int, ...]:
    label = _TYPE_LABELS[qtype]
    if raw is None:
        error("缺少字段 answer")
        return ()
    if not isinstance(raw, str) or not raw.strip():
        error(f'{label}答案必须是选项字母，例如 "B" 或 "ABD"')
        return ()
    letters = raw.strip()
    if not all("A" <= c <= "Z" for c in letters):
        error(f"答案 {letters} 无效：只能由大写选项字母组成")
        return ()
    indexes = [ord(c) - ord("A") for c in letters]
    for message in check_key(qtype, option_count, tuple(indexes)):
        error(message)
    if qtype == "multiple" and indexes != sorted(set(indexes)):
        error(f"多选题答案 {letters} 的字母须按顺序排列且不重复，例如 ABD")
    return tuple(indexes)


def letter(index: int) -> str:
    """An option's letter as reports show it (``A`` .. ``F``; ``#7`` past the sixth)."""
    return OPTION_LETTERS[index] if index < len(OPTION_LETTERS) else f"#{index + 1}"


def _key_letter(index: int) -> str:
    # A key may name a letter past the options ("E" of four): say the letter that was written.
    return chr(ord("A") + index) if 0 <= index < 26 else f"#{index + 1}"


def _canonical_text(value: str) -> str:
    return unicodedata.normalize("NFC", value).strip()
