"""Moodle GIFT (https://docs.moodle.org/en/GIFT_format) → the exam's question drafts (pure).

Supported, mapped as Moodle grades them:

- multiple choice with one ``=`` answer → ``single``; ``~%50%`` partial credits become ``weights``;
- multiple answers (no ``=``, credits such as ``~%50%`` / ``~%-50%`` adding up to 100 %) →
  ``multiple`` with ``weights``; the key is the options worth more than 0;
- true/false (``T``, ``F``, ``TRUE``, ``FALSE``) → ``judge``;
- the "missing word" form (text after the answer section) keeps Moodle's blank ``_____`` in the stem.

Everything else Moodle knows (short answer, numerical, matching, essay, description, multiple choice
with several 100 % answers, multiple answers with one correct option) is reported as
:class:`~app.exams.imported.Unsupported` with its line; malformed text is a
:class:`~app.exams.bankfile.BankFileError` with its line and the reason in Chinese.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Final

from app.exams.bankfile import BankFileError, letter
from app.exams.imported import BankDefaults, Draft, DraftsRead, Unsupported, resolve_category
from app.lib.steps import SLICE, Steps, finish

BLANK: Final = "_____"
"""What Moodle puts in the stem where a missing-word answer section was."""

# Escaped characters are replaced by private-use code points while the structure is parsed.
_ESCAPES: Final = {
    "\\": "\ue000",
    "~": "\ue001",
    "=": "\ue002",
    "#": "\ue003",
    "{": "\ue004",
    "}": "\ue005",
    ":": "\ue006",
}
_NEWLINE: Final = "\ue007"
_RESTORE: Final = {v: k for k, v in _ESCAPES.items()} | {_NEWLINE: "\n"}
_ESCAPE_RE: Final = re.compile(r"\\(.)", re.S)
_RESTORE_RE: Final = re.compile("[\ue000-\ue007]")
_FORMAT_RE: Final = re.compile(r"^\s*\[(html|moodle|plain|markdown)\]", re.I)
_WEIGHT_RE: Final = re.compile(r"^\s*%(-?\d+(?:\.\d+)?)%")
_TRUE_FALSE: Final = {"T": True, "TRUE": True, "F": False, "FALSE": False}
_EXCERPT_CHARS: Final = 80
_BASIS_RE: Final = re.compile(r"^//\s*依据\s*[：:](.*)$")
"""The legal basis convention (exam_banks/README.md): ``// 依据：《行政处罚法》第三十六条`` above a question."""
ORPHAN_BASIS: Final = "“// 依据：”注释行后面没有紧接试题（中间不能有空行）"
NO_BASIS: Final = "缺少依据：题目前没有“// 依据：…”注释行"
EMPTY_BASIS: Final = "缺少依据：“// 依据：”后没有内容"

SHORT_ANSWER: Final = "简答题（Moodle short answer）"
NUMERICAL: Final = "数值题（Moodle numerical）"
MATCHING: Final = "匹配题（Moodle matching）"
ESSAY: Final = "问答题（Moodle essay）"
DESCRIPTION: Final = "说明文字（Moodle description，无答案区）"
SEVERAL_FULL: Final = "多个 100% 答案的单选题（Moodle multiple choice）"
ONE_CORRECT_MULTI: Final = "只有一个正确选项的多选题（Moodle multiple answers）"


@dataclass(frozen=True, slots=True)
class _Answer:
    marker: str
    text: str
    weight: float
    feedback: str


def parse_gift(text: str, *, defaults: BankDefaults) -> DraftsRead:
    """Read every question of a GIFT file; see the module docstring for what maps to what."""
    return finish(parse_gift_steps(text, defaults=defaults))


def parse_gift_steps(text: str, *, defaults: BankDefaults) -> Steps[DraftsRead]:
    """:func:`parse_gift` in slices of ``SLICE`` questions (``app.lib.steps``)."""
    result = DraftsRead()
    category = defaults.category
    blocks = yield from _blocks(text.lstrip("\ufeff"), result)
    for index, block in enumerate(blocks):
        if index % SLICE == SLICE - 1:
            yield
        line_number, body = block.line, block.text
        if body.lstrip().startswith("$CATEGORY:"):
            head, _, rest = body.lstrip().partition("\n")
            category = _category(head[len("$CATEGORY:") :], defaults.category)
            if not rest.strip():
                if block.basis is not None:
                    result.errors.append(BankFileError(f"第 {block.basis_line} 行", ORPHAN_BASIS))
                continue
            line_number += 1
            body = rest
        _parse_question(body, line_number, category, defaults, result, block.basis)
    return result


@dataclass(frozen=True, slots=True)
class _Block:
    line: int
    text: str
    basis: str | None
    """The ``// 依据：…`` lines directly above the question, joined; ``None`` when there are none."""
    basis_line: int = 0


def _blocks(text: str, result: DraftsRead) -> Steps[list[_Block]]:
    """Questions are separated by blank lines; lines starting with ``//`` are comments, and a
    ``// 依据：…`` comment directly above a question (no blank line between) is its legal basis."""
    blocks: list[_Block] = []
    current: list[str] = []
    start = 0
    basis: list[str] = []
    basis_line = 0

    def orphan() -> None:
        nonlocal basis
        if basis:
            result.errors.append(BankFileError(f"第 {basis_line} 行", ORPHAN_BASIS))
        basis = []

    for number, line in enumerate(text.splitlines(), start=1):
        if number % (SLICE * 10) == 0:
            yield
        stripped = line.strip()
        if stripped.startswith("//"):
            found = _BASIS_RE.match(stripped)
            if found:
                if current:  # a basis line inside a question belongs to the next one: a missing blank line
                    blocks.append(_block(start, current, basis, basis_line))
                    current, basis = [], []
                if not basis:
                    basis_line = number
                basis.append(found.group(1).strip())
            continue
        if not stripped:
            if current:
                blocks.append(_block(start, current, basis, basis_line))
                current, basis = [], []
            else:
                orphan()
            continue
        if not current:
            start = number
        current.append(line)
    if current:
        blocks.append(_block(start, current, basis, basis_line))
    else:
        orphan()
    return blocks


def _block(start: int, lines: list[str], basis: list[str], basis_line: int) -> _Block:
    joined = "；".join(b for b in basis if b) if basis else None
    return _Block(start, "\n".join(lines), joined, basis_line)


def _category(path: str, default: str) -> str:
    """The last segment of ``$CATEGORY: $course$/top/新法律法规`` if it names a category."""
    segments = [s.strip() for s in path.strip().split("/") if s.strip()]
    for segment in reversed(segments):
        found = resolve_category(segment)
        if found is not None:
            return found
    return default


def _parse_question(
    block: str, line: int, category: str, defaults: BankDefaults, result: DraftsRead, basis: str | None
) -> None:
    position = f"第 {line} 行"
    missing_basis = NO_BASIS if basis is None else EMPTY_BASIS if not basis else ""
    excerpt = _excerpt(block)

    def error(message: str) -> None:
        result.errors.append(BankFileError(position, message))

    def unsupported(kind: str) -> None:
        result.unsupported.append(Unsupported(position, kind, excerpt))

    text = _ESCAPE_RE.sub(_escape, block)
    title = ""
    if text.lstrip().startswith("::"):
        body = text.lstrip()[2:]
        end = body.find("::")
        if end < 0:
            error("题目名称缺少结尾的 ::")
            return
        title = _restore(body[:end]).strip()
        text = body[end + 2 :]
    fmt = "moodle"
    match = _FORMAT_RE.match(text)
    if match:
        fmt = match.group(1).lower()
        text = text[match.end() :]

    start = text.find("{")
    if start < 0:
        if "}" in text:
            error("有 } 但缺少与之配对的 {")
            return
        unsupported(DESCRIPTION)
        return
    end = text.find("}", start)
    if end < 0:
        error("答案区缺少结尾的 }")
        return
    if "{" in text[start + 1 : end] or "{" in text[end + 1 :] or "}" in text[end + 1 :]:
        error("一道题只能有一个答案区 {…}；题目文字中的 { } 须写成 \\{ \\}")
        return
    before, answer_text, after = text[:start], text[start + 1 : end], text[end + 1 :]
    stem_source = before + BLANK + after if after.strip() else before
    stem = _clean(stem_source, fmt)

    general = ""
    marker = answer_text.find("####")
    if marker >= 0:
        general = _clean(answer_text[marker + 4 :], fmt)
        answer_text = answer_text[:marker]
    body = answer_text.strip()

    if not body:
        unsupported(ESSAY)
        return
    if body.startswith("#"):
        unsupported(NUMERICAL)
        return
    question = partial(
        Draft,
        position=position,
        stem=stem,
        category=category,
        difficulty=defaults.difficulty,
        basis=basis or "",
        title=title,
        line=line,
        missing_basis=missing_basis,
        explicit_id=_explicit_id(title),
    )
    if "~" in body:
        _choice(body, general, fmt, question, error, unsupported, result)
        return
    if "=" not in body:
        head, *feedbacks = body.split("#")
        key = _TRUE_FALSE.get(_restore(head).strip().upper())
        if key is None:
            error(f"无法识别的答案区 {{{_restore(head).strip()}}}：判断题答案应为 T、F、TRUE 或 FALSE")
            return
        explanation = "\n".join(x for x in [general, *(_clean(f, fmt) for f in feedbacks)] if x)
        result.drafts.append(question(type="judge", options=(), answer=key, explanation=explanation))
        return
    if "->" in body:
        unsupported(MATCHING)
        return
    unsupported(SHORT_ANSWER)


def _choice(
    body: str,
    general: str,
    fmt: str,
    question: Callable[..., Draft],
    error: Callable[[str], None],
    unsupported: Callable[[str], None],
    result: DraftsRead,
) -> None:
    parts = re.split(r"(?=[~=])", body)
    if parts[0].strip():
        error(f"答案区开头的“{_restore(parts[0]).strip()}”不属于任何选项：每个选项须以 ~ 或 = 开头")
        return
    answers: list[_Answer] = []
    for part in parts[1:]:
        marker, rest = part[0], part[1:]
        weight = 100.0 if marker == "=" else 0.0
        found = _WEIGHT_RE.match(rest)
        if found:
            weight = float(found.group(1))
            rest = rest[found.end() :]
        elif rest.lstrip().startswith("%"):
            error(f"选项“{_clean(rest, fmt)}”的分值格式有误，应写成 ~%50%选项")
            return
        option, _, feedback = rest.partition("#")
        answers.append(_Answer(marker, _clean(option, fmt), weight, _clean(feedback, fmt)))

    weights = tuple(a.weight for a in answers)
    options = tuple(a.text for a in answers)
    if any(a.marker == "=" for a in answers):
        full = tuple(i for i, w in enumerate(weights) if w == 100)
        if len(full) > 1:
            unsupported(SEVERAL_FULL)
            return
        qtype, key = "single", full
        kept: tuple[float, ...] | None = weights if any(w not in (0, 100) for w in weights) else None
    else:
        key = tuple(i for i, w in enumerate(weights) if w > 0)
        if not key:
            error("多选题（无 = 的答案区）没有分值大于 0 的选项，应写成 ~%50%选项")
            return
        if len(key) == 1:
            unsupported(ONE_CORRECT_MULTI)
            return
        qtype, kept = "multiple", weights

    notes = [f"{letter(i)}：{a.feedback}" for i, a in enumerate(answers) if a.feedback]
    explanation = "\n".join([general, *notes] if general else notes)
    result.drafts.append(
        question(type=qtype, options=options, answer=key, explanation=explanation, weights=kept)
    )


def _escape(match: re.Match[str]) -> str:
    char = match.group(1)
    if char == "n":
        return _NEWLINE
    return _ESCAPES.get(char, match.group(0))


def _restore(text: str) -> str:
    return _RESTORE_RE.sub(lambda m: _RESTORE[m.group(0)], text)


def _clean(text: str, fmt: str) -> str:
    """Displayed text: lines wrapped in the file are joined with one space; ``\\n`` is a line break."""
    if fmt == "html":
        text = re.sub(r"<br\s*/?>|</p>", _NEWLINE, text, flags=re.I)
        text = re.sub(r"<[^>]*>", "", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = _restore(text)
    if fmt == "html":
        text = html.unescape(text)
    return "\n".join(line.strip() for line in text.split("\n")).strip()


def _explicit_id(title: str) -> str:
    """A title that is a valid question id (``PL-0001``) is used as the id; other titles are names."""
    return title if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}", title) else ""


def _excerpt(block: str) -> str:
    flat = re.sub(r"\s+", " ", block).strip()
    return flat if len(flat) <= _EXCERPT_CHARS else flat[: _EXCERPT_CHARS - 1] + "…"
