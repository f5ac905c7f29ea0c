"""Finding the header row among a file's first rows and matching its cells to the known columns."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import NamedTuple

from app.lib.tabular.table import RawRow, TableError, clean

# The header is looked for among the first rows (a title row above it is common).
HEADER_SEARCH_ROWS = 20


class Header(NamedTuple):
    number: int
    """the header's 1-based row number."""
    columns: dict[str, str]
    """canonical key → the header as written in the file."""
    positions: dict[str, int]
    """canonical key → the column's 0-based index."""
    ignored: list[str]
    """headers that match no known column."""
    width: int
    """cells in the header row."""


def normalize_header(text: str) -> str:
    """How headers are compared: full-width folded, blanks, ``*`` marks and trailing notes dropped."""
    value = unicodedata.normalize("NFKC", text).replace("\ufeff", "").replace("\u200b", "")
    value = re.sub(r"\s+", "", value).strip("*")
    value = re.sub(r"[(\[【].*[)\]】]$", "", value).strip("*")
    return value.casefold()


def find_header(raw: Iterator[RawRow], aliases: dict[str, list[str]], required: list[str]) -> Header:
    """Read ``raw`` up to the first row naming a known column (the rows after it are left in ``raw``).

    ``aliases`` maps each canonical column key to the header names accepted for it (the first is
    the one named in messages); every key of ``required`` must be present.
    """
    lookup = _alias_lookup(aliases)
    seen_text = False
    for number, cells, _lossy in raw:
        if number > HEADER_SEARCH_ROWS:
            seen_text = True  # rows go on below: not an empty sheet, just no header on top
            break
        texts = [clean(c) for c in cells]
        seen_text = seen_text or any(texts)
        keys = [lookup.get(normalize_header(t)) if t else None for t in texts]
        if not any(keys):
            continue
        columns: dict[str, str] = {}
        positions: dict[str, int] = {}
        ignored: list[str] = []
        for index, (text, key) in enumerate(zip(texts, keys, strict=True)):
            if key is None:
                if text:
                    ignored.append(text)
                continue
            if key in positions:
                raise TableError(f"第{number}行（表头）中“{columns[key]}”与“{text}”是同一列，请删除重复的列")
            positions[key] = index
            columns[key] = text
        missing = [k for k in required if k not in positions]
        if missing:
            raise TableError(
                f"表头（第{number}行）缺少必填列：{_names(missing, aliases)}。请使用导入模板中的列名"
            )
        return Header(number, columns, positions, ignored, len(cells))
    if not seen_text:
        raise TableError("文件中没有内容（第一个工作表是空的），请检查后重新上传")
    raise TableError(
        f"未找到表头：文件前{HEADER_SEARCH_ROWS}行中没有 {_names(required, aliases)} 等列名，请使用导入模板"
    )


def _alias_lookup(aliases: dict[str, list[str]]) -> dict[str, str]:
    lookup: dict[str, str] = {}
    for key, names in aliases.items():
        for name in [key, *names]:
            lookup.setdefault(normalize_header(name), key)
    return lookup


def _names(keys: list[str], aliases: dict[str, list[str]]) -> str:
    """The columns of ``keys`` as messages name them: “姓名”、“身份证号”."""
    return "、".join(f"“{(aliases.get(k) or [k])[0]}”" for k in keys)
