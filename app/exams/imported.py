"""What the GIFT and XLSX readers share: the import report's items, bank defaults, and the step that
turns drafts into a validated :class:`~app.exams.bankfile.Bank` (pure).

A foreign file has no ``[bank]`` header and usually no question ids, so :class:`BankDefaults` says
which bank the questions go into and :func:`assemble` gives every question a stable id derived from
the bank code and the question's version (unless the file names one), folds exact repeats of a
question into its first occurrence (reported, not silent), and validates what the TOML format
validates about choices, answers and weights.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field, fields, replace
from operator import attrgetter
from typing import Final

from app.exams.bankfile import (
    PARTS,
    Bank,
    BankFileError,
    Question,
    canonical_hash,
    check_choices,
    text_length_problems,
)
from app.lib.steps import SLICE, Steps, finish

DEFAULT_DIFFICULTY: Final = 3
_QUESTION_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_BANK_CODE_RE: Final = re.compile(r"^[a-z0-9_]+$")
_QUESTION_CONTENT: Final = attrgetter(*[f.name for f in fields(Question)][1:])
"""A draft's values of every ``Question`` field after its ``id``, in ``Question``'s order."""
CATEGORY_NAMES: Final = {
    "public_law": "public_law",
    "specialised_law": "specialised_law",
    "specialized_law": "specialised_law",
    "new_law": "new_law",
    "公共法律知识": "public_law",
    "公共法律": "public_law",
    "专门法律知识": "specialised_law",
    "专业法律知识": "specialised_law",
    "专门法律": "specialised_law",
    "新法律法规": "new_law",
    "新法": "new_law",
}
"""Category names accepted in foreign files (XLSX 分类, the last segment of a GIFT $CATEGORY)."""


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A question of a type the exam does not have (matching, numeric, essay, 填空题 ...)."""

    position: str
    kind: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.position}: {self.kind}: {self.excerpt}"


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A question identical (same version) to an earlier one of the file; imported once."""

    position: str
    first_position: str
    question_id: str


@dataclass(frozen=True, slots=True)
class DraftNotice:
    """A question imported as a draft (草稿): stored, never drawn until its basis is filled in."""

    position: str
    line: int
    question_id: str
    title: str
    reason: str


@dataclass(frozen=True, slots=True)
class BankDefaults:
    """The bank a foreign file's questions go into, and the values the file does not carry."""

    code: str
    title: str
    part: str
    field: str
    category: str
    difficulty: int = DEFAULT_DIFFICULTY


@dataclass(frozen=True, slots=True)
class Draft:
    """One supported question as read, before ids, validation and folding."""

    position: str
    type: str
    stem: str
    options: tuple[str, ...]
    answer: tuple[int, ...] | bool
    category: str
    difficulty: int
    explanation: str = ""
    basis: str = ""
    weights: tuple[float, ...] | None = None
    explicit_id: str = ""
    title: str = ""
    """GIFT ``::title::``: kept with the question (and its id too when it is a valid one)."""
    line: int = 0
    missing_basis: str = ""
    """Why the question has no basis, in the file's own terms (GIFT: no ``// 依据：`` line)."""


@dataclass
class DraftsRead:
    """What a GIFT or XLSX reader made of a file: the supported questions, the errors, the rest."""

    drafts: list[Draft] = field(default_factory=list)
    errors: list[BankFileError] = field(default_factory=list)
    unsupported: list[Unsupported] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BankHints:
    """What the uploader or the console says of a file that has no ``[bank]`` header (GIFT, XLSX);
    None: what ``bank_defaults`` derives. A TOML file carries its own and ignores them."""

    code: str | None = None
    part: str | None = None
    field: str | None = None
    category: str | None = None


NO_HINTS: Final = BankHints()


def bank_defaults(stem: str, hints: BankHints) -> tuple[BankDefaults | None, list[BankFileError]]:
    """The defaults for a file named ``stem`` (file name without extension); see exam_banks/README.md.

    code: the hint, else the stem lower-cased with every run of other characters turned into
    ``_`` (a stem with no ASCII letter or digit, such as ``题库``, gives ``bank_`` and 8 hex digits of
    its SHA-256). part: the hint, else ``specialised`` when a field is given, else ``public``.
    category: the hint (code or Chinese name), else ``specialised_law`` for a specialised bank
    and ``public_law`` for a public one.
    """
    errors: list[BankFileError] = []
    code = (hints.code or "").strip() or sanitise_code(stem)
    if not _BANK_CODE_RE.match(code):
        errors.append(BankFileError("题库代码", f"题库代码 {code} 只能包含小写字母、数字和下划线"))
    field = (hints.field or "").strip()
    part = (hints.part or "").strip() or ("specialised" if field else "public")
    if part not in PARTS:
        errors.append(BankFileError("考试部分", f"考试部分 {part} 无效，应为 public 或 specialised"))
    elif part == "specialised" and not field:
        errors.append(BankFileError("执法领域", "专门法律知识题库必须指定执法领域 field"))
    elif part == "public" and field:
        errors.append(BankFileError("执法领域", "公共法律知识题库不应指定执法领域 field"))
    raw_category = (hints.category or "").strip()
    resolved = resolve_category(raw_category) if raw_category else None
    if raw_category and resolved is None:
        errors.append(
            BankFileError(
                "题目类别",
                f"题目类别 {raw_category} 无效，应为 public_law、specialised_law、new_law 或对应中文名称",
            )
        )
    if resolved is None:
        resolved = "specialised_law" if part == "specialised" else "public_law"
    if errors:
        return None, errors
    title = stem.strip() or code
    return BankDefaults(code=code, title=title, part=part, field=field, category=resolved), []


def sanitise_code(stem: str) -> str:
    folded = unicodedata.normalize("NFKC", stem).lower()
    code = re.sub(r"[^a-z0-9]+", "_", folded).strip("_")
    if code:
        return code[:64]
    return "bank_" + hashlib.sha256(stem.encode("utf-8")).hexdigest()[:8]


@dataclass
class Assembled:
    """What :func:`assemble` made of the drafts: the bank (``None`` on any error) and the notes."""

    bank: Bank | None
    duplicates: list[Duplicate]
    drafts: list[DraftNotice]


def assemble(
    defaults: BankDefaults,
    drafts: list[Draft],
    errors: list[BankFileError],
    *,
    id_prefix: str,
) -> Assembled:
    """See :func:`assemble_steps` (run in one go)."""
    return finish(assemble_steps(defaults, drafts, errors, id_prefix=id_prefix))


def assemble_steps(
    defaults: BankDefaults,
    drafts: list[Draft],
    errors: list[BankFileError],
    *,
    id_prefix: str,
) -> Steps[Assembled]:
    """Validate the drafts, give them ids, fold repeats, note the questions without a basis (草稿);
    ``bank`` is ``None`` when ``errors`` is not empty after.

    Appends to ``errors`` (what was found while reading comes in already): a bank with any error is
    never half-imported, as with the TOML format.
    """
    questions: list[Question] = []
    duplicates: list[Duplicate] = []
    by_version: dict[str, int] = {}
    read: list[Draft] = []
    first_with_id: dict[str, str] = {}
    for index, draft in enumerate(drafts):
        if index % SLICE == SLICE - 1:
            yield
        problems = check_choices(draft.type, draft.options, draft.answer, draft.weights)
        if not draft.stem.strip():
            problems.insert(0, "题干不能为空")
        problems += text_length_problems(
            draft.stem, draft.options, draft.basis, draft.explanation, draft.title
        )
        if draft.explicit_id and not _QUESTION_ID_RE.match(draft.explicit_id):
            problems.append(
                f"题目编号 {draft.explicit_id} 无效：只能包含字母、数字、连字符和下划线，最长 32 个字符"
            )
        if problems:
            errors.extend(BankFileError(draft.position, p) for p in problems)
            continue
        question = Question("", *_QUESTION_CONTENT(draft))
        version = canonical_hash(question)
        if version in by_version:
            index = by_version[version]
            kept = questions[index]
            # A repeat completes what the first copy lacked (Moodle's examples repeat questions).
            fill = {
                k: getattr(question, k) for k in ("explanation", "basis", "title") if not getattr(kept, k)
            }
            if any(fill.values()):
                questions[index] = replace(kept, **fill)
            duplicates.append(Duplicate(draft.position, read[index].position, kept.id))
            continue
        qid = draft.explicit_id or generated_id(id_prefix, defaults.code, version)
        if qid in first_with_id:
            errors.append(BankFileError(draft.position, f"题目编号重复: {qid}（与{first_with_id[qid]}相同）"))
            continue
        first_with_id[qid] = draft.position
        by_version[version] = len(questions)
        read.append(draft)
        questions.append(replace(question, id=qid))
    if not questions and not errors:
        errors.append(BankFileError("文件", "文件中没有可导入的题目"))
    notices = [
        DraftNotice(d.position, d.line, q.id, q.title, d.missing_basis or "缺少依据")
        for d, q in zip(read, questions, strict=True)
        if q.is_draft
    ]
    if errors:
        return Assembled(None, duplicates, notices)
    bank = Bank(
        code=defaults.code,
        title=defaults.title,
        part=defaults.part,
        field=defaults.field,
        description="",
        questions=tuple(questions),
    )
    return Assembled(bank, duplicates, notices)


def generated_id(prefix: str, code: str, version: str) -> str:
    """A question id from the bank code and the question's version: the same content, the same id."""
    digest = hashlib.sha256(f"{code}:{version}".encode()).hexdigest()[:12].upper()
    return f"{prefix}-{digest}"


def resolve_category(value: str) -> str | None:
    return CATEGORY_NAMES.get(value.strip()) or CATEGORY_NAMES.get(value.strip().lower())
