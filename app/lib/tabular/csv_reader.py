"""CSV: the raw rows of a decoded text file (bounded lines and cells), and ``PlainCsv``, the layout
of a file simple enough for PostgreSQL's ``COPY`` to read in place of this module."""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

from app.lib.tabular.table import MAX_COLUMNS, NO_LOSSY, RawRow, Table, TableError, human_size

CSV_FIELD_LIMIT = 64 * 1024
# A physical CSV line longer than this is refused before it is split into cells: a 10 MB line of
# "a," would otherwise become millions of cell strings (hundreds of MB for one request).
CSV_LINE_LIMIT = 1024 * 1024

_FORMULA_TEXT = re.compile(r'^="(.*)"$', re.S)
_LINE_END = re.compile(rb"\r\n|\r|\n")


def csv_rows(text: io.TextIOWrapper, delimiter: str) -> Iterator[RawRow]:
    """The rows of ``text``, numbered from 1, cut to ``MAX_COLUMNS`` cells."""
    reader = csv.reader(_bounded_lines(text), delimiter=delimiter, strict=True)
    previous = csv.field_size_limit(CSV_FIELD_LIMIT)
    number = 0
    try:
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise TableError(
                    f"第{number + 1}行附近的 CSV 格式错误（{_csv_reason(exc)}），请检查引号和分隔符是否成对、正确"
                ) from exc
            except UnicodeDecodeError as exc:
                raise TableError(f"第{number + 1}行附近有无法识别的字符，请检查文件编码") from exc
            number += 1
            if len(cells) > MAX_COLUMNS:
                cells = cells[:MAX_COLUMNS]
            # ="0123" is how some exports keep Excel from turning digits into a number.
            yield number, [_unwrap_formula(c) for c in cells], NO_LOSSY
    finally:
        csv.field_size_limit(previous)


def _bounded_lines(text: io.TextIOWrapper) -> Iterator[str]:
    for number, line in enumerate(iter(lambda: text.readline(CSV_LINE_LIMIT + 1), ""), start=1):
        if len(line) > CSV_LINE_LIMIT:
            raise TableError(
                f"第{number}行超过 {human_size(CSV_LINE_LIMIT)}，不像是正常的表格行，请检查文件后重新上传"
            )
        yield line


def _unwrap_formula(cell: str) -> str:
    if cell.startswith('="'):
        m = _FORMULA_TEXT.match(cell.strip())
        if m:
            return m.group(1)
    return cell


def _csv_reason(exc: csv.Error) -> str:
    msg = str(exc)
    if "field larger than field limit" in msg:
        return f"某个单元格超过 {CSV_FIELD_LIMIT // 1024} KB"
    if "unexpected end of data" in msg or "EOF" in msg:
        return "引号未闭合"
    if "expected" in msg and "after" in msg:
        return "引号位置不正确"
    return "无法解析"


@dataclass(frozen=True, slots=True)
class PlainCsv:
    """A CSV file that any CSV reader splits the same way: no quote character anywhere, so each
    line is one row and each delimiter separates two cells. PostgreSQL's ``COPY … (FORMAT csv)``
    then reads exactly the cells this module reads (blank and ragged lines aside, which COPY
    refuses), and a caller may hand it the rows after the header instead of splitting them here.
    """

    encoding: str
    delimiter: str
    body: int
    """byte offset of the first line after the header."""
    width: int
    """cells in the header line (every line must have as many for COPY)."""

    def chunks(self, data: bytes, size: int = 1 << 20) -> Iterator[bytes | memoryview]:
        """The lines after the header, in UTF-8 (decoded from GB18030 chunk by chunk)."""
        view = memoryview(data)
        if self.encoding == "utf-8-sig":
            # Slices of the upload itself: nothing is copied (whole, a driver would copy it once more).
            for start in range(self.body, len(data), size):
                yield view[start : start + size]
            return
        decoder = codecs.getincrementaldecoder(self.encoding)("strict")
        for start in range(self.body, len(data), size):
            yield decoder.decode(view[start : start + size]).encode("utf-8")
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail.encode("utf-8")


def plain_csv(table: Table, data: bytes) -> PlainCsv | None:
    """``data``'s layout when it is a plain CSV file (see ``PlainCsv``); None otherwise.

    Not plain: XLSX, UTF-16, any ``"`` (quoted cells), a ``\\.`` (COPY's end-of-data mark), more
    than ``MAX_COLUMNS`` header cells, or mixed line ends before the body.
    """
    if table.kind != "csv" or table.encoding not in ("utf-8-sig", "gb18030") or not table.delimiter:
        return None
    if b'"' in data or b"\\." in data or not 0 < table.width <= MAX_COLUMNS:
        return None
    ends = _LINE_END.finditer(data)
    terminator = b""
    body = 0
    for _ in range(table.header_row):
        m = next(ends, None)
        if m is None:  # the header is the last line
            body = len(data)
            break
        if terminator and m.group() != terminator:
            return None
        terminator = m.group()
        body = m.end()
    return PlainCsv(encoding=table.encoding, delimiter=table.delimiter, body=body, width=table.width)
