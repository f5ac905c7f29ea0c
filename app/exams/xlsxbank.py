"""XLSX question banks in the column layout of Chinese question-bank spreadsheets (pure but for
openpyxl reading the bytes it is given).

One question per row under a header row found by its names (any order, blanks and full-width
characters tolerated, common synonyms accepted): 题型, 题干, 选项A … 选项F, 答案, and optionally 解析,
分类, 难度, 依据, 编号. The file goes through :func:`app.lib.tabular.read_table`, so its size, zip-bomb
and file-type checks apply. Unsupported question types (填空题, 简答题, 论述题 ...) are reported with their
row; malformed rows get the row and the reason in Chinese.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Final, TypeVar

from app.exams.bankfile import OPTION_LETTERS, BankFileError, letter
from app.exams.imported import BankDefaults, Draft, DraftsRead, Unsupported, resolve_category
from app.lib.tabular import Row, TableError, read_table

T = TypeVar("T")

MAX_ROWS: Final = 20_000
MAX_BYTES: Final = 20 * 1024 * 1024
OPTION_KEYS: Final = tuple(f"option_{c.lower()}" for c in OPTION_LETTERS)

ALIASES: Final[dict[str, list[str]]] = {
    "type": ["题型", "题目类型", "试题类型", "题类", "类型"],
    "stem": ["题干", "题目", "试题", "题目内容", "试题内容", "题干内容", "问题"],
    **{
        key: [f"选项{c}", c, f"{c}选项", f"选项{c}内容", f"答案{c}"]
        for key, c in zip(OPTION_KEYS, OPTION_LETTERS, strict=True)
    },
    "answer": ["答案", "正确答案", "标准答案", "参考答案"],
    "explanation": ["解析", "答案解析", "试题解析", "题目解析", "解释"],
    "category": ["分类", "类别", "题目分类", "试题分类", "知识分类"],
    "difficulty": ["难度", "难度等级", "难易程度", "难易度", "难度系数"],
    "basis": ["依据", "法律依据", "出处", "依据条款", "法条依据"],
    "id": ["编号", "题目编号", "试题编号", "id"],
}
REQUIRED: Final = ["type", "stem", "answer"]

TYPE_NAMES: Final = {
    **dict.fromkeys(["单选题", "单选", "单项选择题", "单项选择", "单择题"], "single"),
    **dict.fromkeys(["多选题", "多选", "多项选择题", "多项选择", "多择题"], "multiple"),
    **dict.fromkeys(["不定项选择题", "不定项选择", "不定项"], "indefinite"),
    **dict.fromkeys(["判断题", "判断", "是非题", "对错题", "正误题"], "judge"),
}
UNSUPPORTED_TYPES: Final = frozenset(
    {
        "填空题", "填空", "简答题", "简答", "论述题", "论述", "问答题", "问答", "案例分析题", "案例分析", "案例题",
        "计算题", "名词解释", "材料题", "材料分析题", "综合题", "综合分析题", "匹配题", "连线题", "排序题", "作文",
        "写作题", "分析题", "主观题", "文书制作题",
    }
)  # fmt: skip
TRUE_WORDS: Final = frozenset({"对", "正确", "√", "✓", "✔", "T", "TRUE", "是", "Y", "YES", "V"})
FALSE_WORDS: Final = frozenset({"错", "错误", "×", "✗", "✘", "X", "F", "FALSE", "否", "N", "NO"})
DIFFICULTY_WORDS: Final = {
    "易": 1, "容易": 1, "简单": 1, "较易": 2, "较简单": 2, "中": 3, "中等": 3, "一般": 3, "适中": 3,
    "较难": 4, "难": 5, "困难": 5,
}  # fmt: skip
_ANSWER_SEPARATORS: Final = re.compile(r"[\s,，、;；/|]+")
_OPTION_PREFIX: Final = "{}[.．、:：)）]\\s*"


def parse_xlsx(data: bytes, *, filename: str, defaults: BankDefaults) -> DraftsRead:
    """Read every row of the first worksheet; file-level problems are one error at position 文件."""
    result = DraftsRead()
    try:
        with read_table(
            data, filename, required=REQUIRED, aliases=ALIASES, max_rows=MAX_ROWS, max_bytes=MAX_BYTES
        ) as table:
            for row in table:
                _parse_row(row, table.label, defaults, result)
    except TableError as exc:
        result.errors.insert(0, BankFileError("文件", exc.message))
    return result


def _parse_row(row: Row, label: Callable[[str], str], defaults: BankDefaults, result: DraftsRead) -> None:
    position = f"第 {row.number} 行"
    before = len(result.errors)

    def error(message: str) -> None:
        result.errors.append(BankFileError(position, message))

    raw_type = row.get("type")
    type_key = _fold(raw_type)
    qtype = TYPE_NAMES.get(type_key)
    stem = row.get("stem")
    if qtype is None:
        if type_key in UNSUPPORTED_TYPES:
            result.unsupported.append(Unsupported(position, raw_type, _excerpt(stem)))
        elif not raw_type:
            error(f"“{label('type')}”为空，应为 单选题、多选题 或 判断题")
        else:
            error(f"题型“{raw_type}”无法识别，应为 单选题、多选题 或 判断题")
        return
    if not stem:
        error(f"“{label('stem')}”为空")

    options = _options(row, label, error)
    raw_answer = row.get("answer")
    answer: tuple[int, ...] | bool = ()
    if not raw_answer:
        error(f"“{label('answer')}”为空")
    elif qtype == "judge":
        judged = _judge_answer(raw_answer, options)
        if judged is None:
            error(f"判断题答案“{raw_answer}”无效，应为 对/错、正确/错误、√/× 或 T/F")
        else:
            answer = judged
        if options and not all(_truth(o) is not None for o in options):
            error("判断题不应填写选项（选项列只能是“正确/错误”之类）")
        options = ()
    else:
        letters = _answer_letters(raw_answer)
        if letters is None:
            error(f"答案“{raw_answer}”无效：应为选项字母，如 B、ABD 或 A,B,D")
        else:
            answer = tuple(sorted({OPTION_LETTERS.index(c) for c in letters}))
            missing = [letter(i) for i in answer if i >= len(options)]
            if missing:
                error(f"答案 {''.join(missing)} 对应的选项为空")
            if qtype == "indefinite":
                if len(answer) == 1:
                    result.unsupported.append(
                        Unsupported(position, f"{raw_type}（只有一个正确答案）", _excerpt(stem))
                    )
                    del result.errors[before:]
                    return
                qtype = "multiple"

    def optional(key: str, name: str, parse: Callable[[str], T | None], default: T, expected: str) -> T:
        """An optional column: ``default`` when empty; an error (and ``default``) when unreadable."""
        raw = row.get(key)
        if not raw:
            return default
        found = parse(raw)
        if found is None:
            error(f"{name}“{raw}”无效，应为 {expected}")
            return default
        return found

    category = optional(
        "category",
        "分类",
        resolve_category,
        defaults.category,
        "公共法律知识、专门法律知识 或 新法律法规（或留空）",
    )
    difficulty = optional(
        "difficulty", "难度", _difficulty, defaults.difficulty, "1 到 5 的整数，或 易、较易、中等、较难、难"
    )

    if len(result.errors) > before:
        return
    result.drafts.append(
        Draft(
            position=position,
            type=qtype,
            stem=stem,
            options=options,
            answer=answer,
            category=category,
            difficulty=difficulty,
            explanation=row.get("explanation"),
            basis=row.get("basis"),
            explicit_id=row.get("id"),
            line=row.number,
            missing_basis="" if row.get("basis") else "缺少依据：“依据”列为空",
        )
    )


def _options(row: Row, label: Callable[[str], str], error: Callable[[str], None]) -> tuple[str, ...]:
    cells = [row.get(key) for key in OPTION_KEYS]
    while cells and not cells[-1]:
        cells.pop()
    options: list[str] = []
    for index, text in enumerate(cells):
        if not text:
            error(f"“{label(OPTION_KEYS[index])}”为空，但后面的选项有内容")
            continue
        # "A. 一年" in the 选项A column: the letter is the column's, not part of the option.
        options.append(re.sub("^" + _OPTION_PREFIX.format(OPTION_LETTERS[index]), "", text).strip() or text)
    return tuple(options)


def _answer_letters(raw: str) -> str | None:
    folded = _ANSWER_SEPARATORS.sub("", unicodedata.normalize("NFKC", raw)).upper()
    if not folded or any(c not in OPTION_LETTERS for c in folded):
        return None
    return folded


def _judge_answer(raw: str, options: tuple[str, ...]) -> bool | None:
    truth = _truth(raw)
    if truth is not None:
        return truth
    # Some sheets write 判断题 as two options (A 正确, B 错误) and key them by letter.
    letters = _answer_letters(raw)
    if letters and len(letters) == 1 and OPTION_LETTERS.index(letters) < len(options):
        return _truth(options[OPTION_LETTERS.index(letters)])
    return None


def _truth(text: str) -> bool | None:
    key = _fold(text).upper()
    if key in TRUE_WORDS:
        return True
    if key in FALSE_WORDS:
        return False
    return None


def _difficulty(raw: str) -> int | None:
    key = _fold(raw)
    if key in DIFFICULTY_WORDS:
        return DIFFICULTY_WORDS[key]
    if re.fullmatch(r"[1-5](\.0+)?", key):
        return int(float(key))
    return None


def _fold(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def _excerpt(text: str, limit: int = 80) -> str:
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
