"""The one entry point for reading a question bank in any supported format (题库导入格式).

``load_any(path)`` (a file on disk) and ``parse_bytes(data, filename=...)`` (an upload) dispatch by
the file's extension:

- ``.toml``: the bank format of ``exam_banks/`` (:mod:`app.exams.bankfile`); the file carries its own
  code, part and field, so the ``hints`` are ignored;
- ``.gift`` / ``.txt``: Moodle GIFT (:mod:`app.exams.gift`), UTF-8 (a BOM is tolerated);
- ``.xlsx`` / ``.xlsm``: a Chinese question-bank spreadsheet (:mod:`app.exams.xlsxbank`).

A GIFT or XLSX file has no bank header: the bank's code defaults to the file name's stem, sanitised
(see :func:`app.exams.imported.bank_defaults`), its title to the stem, ``part`` to ``specialised``
when a ``field`` is given and ``public`` otherwise, and each question's category to ``category`` or
the part's own (``specialised_law`` / ``public_law``) unless the file says otherwise.

The result always comes back, never an exception: ``bank`` is ``None`` whenever ``errors`` is not
empty (a bank is never half-imported); ``unsupported`` lists the questions of types the exam does
not have, with their line or row; ``duplicates`` lists questions that repeat an earlier one of the
same file exactly and were imported once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Final

from app.exams import gift, xlsxbank
from app.exams.bankfile import Bank, BankFileError, parse_bank
from app.exams.imported import (
    NO_HINTS,
    BankHints,
    DraftNotice,
    Duplicate,
    Unsupported,
    assemble_steps,
    bank_defaults,
)
from app.lib.steps import Steps, finish

__all__ = [
    "EXTENSIONS",
    "MAX_TEXT_BYTES",
    "BankHints",
    "DraftNotice",
    "Duplicate",
    "ParsedBank",
    "Unsupported",
    "load_any",
    "parse_bytes",
]

TOML_EXTENSIONS: Final = frozenset({".toml"})
GIFT_EXTENSIONS: Final = frozenset({".gift", ".txt"})
XLSX_EXTENSIONS: Final = frozenset({".xlsx", ".xlsm"})
EXTENSIONS: Final = TOML_EXTENSIONS | GIFT_EXTENSIONS | XLSX_EXTENSIONS
"""What a folder import picks up (the import command lists a folder's files by these)."""
MAX_TEXT_BYTES: Final = 10 * 1024 * 1024
"""A TOML or GIFT bank larger than this is refused (the starter banks are ~200 KB)."""


@dataclass
class ParsedBank:
    """What one file gave: the bank (or ``None`` if any error), and the report's items."""

    source: str
    bank: Bank | None
    errors: list[BankFileError]
    unsupported: list[Unsupported]
    duplicates: list[Duplicate] = dataclasses.field(default_factory=list)
    drafts: list[DraftNotice] = dataclasses.field(default_factory=list)
    """Questions imported as drafts (草稿, no basis), with their position and why."""

    @property
    def ok(self) -> bool:
        return self.bank is not None and not self.errors


def load_any(path: Path, *, hints: BankHints = NO_HINTS) -> ParsedBank:
    """Read the file at ``path`` and parse it by its extension (the module docstring says how)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        limit = xlsxbank.MAX_BYTES if path.suffix.lower() in XLSX_EXTENSIONS else MAX_TEXT_BYTES
        if size > limit:
            return _failed(str(path), f"文件过大：不能超过 {limit // (1024 * 1024)} MB")
        data = path.read_bytes()
    except OSError as exc:
        return _failed(str(path), f"无法读取文件：{exc.strerror or exc}")
    return parse_bytes(data, filename=path.name, source=str(path), hints=hints)


def parse_bytes(
    data: bytes, *, filename: str, source: str | None = None, hints: BankHints = NO_HINTS
) -> ParsedBank:
    """Parse an uploaded file's bytes; ``filename`` decides the format and the default bank code."""
    return finish(parse_steps(data, filename=filename, source=source, hints=hints))


def stepped(filename: str) -> bool:
    """Whether :func:`parse_steps` gives the loop back while it reads this file (GIFT: question by
    question). TOML (``tomllib``) and XLSX (openpyxl) are read in one call: run those in a thread."""
    return PurePath(filename).suffix.lower() in GIFT_EXTENSIONS


def parse_steps(
    data: bytes, *, filename: str, source: str | None = None, hints: BankHints = NO_HINTS
) -> Steps[ParsedBank]:
    """:func:`parse_bytes` in slices (``app.lib.steps``): a 40,000-question GIFT file yields every
    ``SLICE`` questions."""
    source = source or filename
    name = PurePath(filename)
    ext = name.suffix.lower()
    if ext not in EXTENSIONS:
        return _failed(
            source, f"不支持的文件类型“{ext or filename}”：请使用 .toml、.gift（或 .txt）或 .xlsx 文件"
        )
    if ext in XLSX_EXTENSIONS:
        defaults, errors = bank_defaults(name.stem, hints)
        if defaults is None:
            return ParsedBank(source, None, errors, [])
        read = xlsxbank.parse_xlsx(data, filename=filename, defaults=defaults)
        made = yield from assemble_steps(defaults, read.drafts, read.errors, id_prefix="X")
        return ParsedBank(source, made.bank, read.errors, read.unsupported, made.duplicates, made.drafts)

    if len(data) > MAX_TEXT_BYTES:
        return _failed(source, f"文件过大：不能超过 {MAX_TEXT_BYTES // (1024 * 1024)} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return _failed(source, f"文件不是有效的 UTF-8 编码（第 {exc.start + 1} 个字节）")
    if ext in TOML_EXTENSIONS:
        toml_bank, toml_errors = parse_bank(text, source=source)
        return ParsedBank(source, toml_bank, toml_errors, [])

    defaults, errors = bank_defaults(name.stem, hints)
    if defaults is None:
        return ParsedBank(source, None, errors, [])
    read_gift = yield from gift.parse_gift_steps(text, defaults=defaults)
    made = yield from assemble_steps(defaults, read_gift.drafts, read_gift.errors, id_prefix="G")
    return ParsedBank(
        source, made.bank, read_gift.errors, read_gift.unsupported, made.duplicates, made.drafts
    )


def _failed(source: str, message: str) -> ParsedBank:
    return ParsedBank(source, None, [BankFileError("文件", message)], [])
