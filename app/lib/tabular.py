"""A streaming reader for the spreadsheets personnel offices keep: CSV (UTF-8, GBK/GB18030) and XLSX.

``read_table`` checks the file (type by its magic bytes, size, zip-bomb limits), finds the header row
by its Chinese column names and returns a ``Table`` whose rows are produced one at a time, each with
its 1-based spreadsheet row number, so a caller can name the line of every bad row. Every refusal is
a ``TableError`` with a Chinese message meant for the person who uploaded the file.

Cells come out as stripped strings: dates as ISO ``YYYY-MM-DD``, whole floats without ``.0``.

XLSX is read by a lean streaming reader: the first worksheet's XML goes through expat 64 KB at a
time (no cell objects, never the whole sheet in memory), values converted as openpyxl would
(its date helpers are reused), about 3-5x faster than openpyxl's read-only mode. The zip is
checked first (declared sizes, ratios, entry count) and never inflated past what it declares.

Long numbers in XLSX: a number cell holds a double. Excel keeps only 15 significant digits, so an
18-digit ID number typed into a cell in "General" format has lost its last digits inside the file
(``3.20102198506121E+17``), and libraries such as openpyxl write doubles too (17 digits, the last
ones wrong). Nothing can bring the digits back. Only a producer that writes the integer text itself
(``<v>320102198506121237</v>``) keeps every digit, and those cells are read exactly. Any number
cell with more than 15 significant digits that may have been rounded is listed in ``Row.lossy`` so
that the caller can ask for the column to be entered as text instead of importing a wrong number.
"""

from __future__ import annotations

import array
import codecs
import contextlib
import csv
import datetime as dt
import io
import re
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import PurePath
from typing import Any, Literal

__all__ = [
    "BLANKS",
    "MAX_UNCOMPRESSED_BYTES",
    "MAX_ZIP_RATIO",
    "PlainCsv",
    "Row",
    "Table",
    "TableError",
    "normalize_header",
    "plain_csv",
    "read_table",
    "row_of",
    "too_many_rows",
]

# XLSX is a zip of XML: refuse archives that would inflate beyond this, or inflate suspiciously well.
MAX_UNCOMPRESSED_BYTES = 100 * 1024 * 1024
MAX_ZIP_RATIO = 100
MAX_ZIP_ENTRIES = 10_000
# Per-entry ratio is only judged above this size: tiny XML parts compress very well and are harmless.
_RATIO_MIN_BYTES = 1024 * 1024
# The header is looked for among the first rows (a title row above it is common).
HEADER_SEARCH_ROWS = 20
# Columns beyond this are ignored; keeps a malicious "XFD1" cell from widening every row.
MAX_COLUMNS = 200
# Excel's own sheet limit: a row index above it is a damaged or forged file.
EXCEL_MAX_ROWS = 1_048_576
CSV_FIELD_LIMIT = 64 * 1024
# A physical CSV line longer than this is refused before it is split into cells: a 10 MB line of
# "a," would otherwise become millions of cell strings (hundreds of MB for one request).
CSV_LINE_LIMIT = 1024 * 1024

_WS = " \t\r\n\u3000\u00a0\u200b\ufeff"
BLANKS = _WS
"""What a cell is stripped of at both ends."""
_TEXT_SAMPLE = 64 * 1024
_EXACT_DIGITS = 15  # Excel's precision for numbers

_OTHER_MAGIC: list[tuple[bytes, str]] = [
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "不支持旧版 Excel（.xls）文件，请在 Excel 中“另存为” .xlsx 或 CSV 格式后再上传",
    ),
    (b"%PDF", "不支持 PDF 文件，请上传 CSV 或 Excel（.xlsx）文件"),
    (b"\x89PNG", "不支持图片文件，请上传 CSV 或 Excel（.xlsx）文件"),
    (b"\xff\xd8\xff", "不支持图片文件，请上传 CSV 或 Excel（.xlsx）文件"),
    (b"GIF8", "不支持图片文件，请上传 CSV 或 Excel（.xlsx）文件"),
    (b"\x1f\x8b", "不支持压缩文件，请上传 CSV 或 Excel（.xlsx）文件"),
    (b"Rar!", "不支持压缩文件，请上传 CSV 或 Excel（.xlsx）文件"),
    (b"7z\xbc\xaf\x27\x1c", "不支持压缩文件，请上传 CSV 或 Excel（.xlsx）文件"),
    (b"{\\rtf", "不支持 RTF 文档，请上传 CSV 或 Excel（.xlsx）文件"),
]
_TEXT_EXTENSIONS = {".csv", ".txt", ".tsv", ""}
_XLSX_EXTENSIONS = {".xlsx", ".xlsm"}
_UNSUPPORTED = "无法识别的文件类型：请上传 CSV（逗号或制表符分隔）或 Excel（.xlsx）文件"


class TableError(Exception):
    """The file as a whole cannot be read. ``message`` is Chinese, for the uploader."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Row:
    """One data row. ``number`` is the row as the spreadsheet program shows it (1-based)."""

    number: int
    values: dict[str, str]
    lossy: frozenset[str] = frozenset()

    def get(self, key: str) -> str:
        return self.values.get(key, "")


@dataclass
class Table:
    """The header found in the file and an iterator over its data rows (each read once)."""

    kind: Literal["csv", "xlsx"]
    encoding: str | None
    header_row: int
    columns: dict[str, str]
    """canonical key → the header as written in the file (for messages naming the column)."""
    ignored: list[str]
    """headers in the file that match no known column."""
    rows: Iterator[Row] = field(repr=False)
    _closer: Any = field(default=None, repr=False)
    positions: dict[str, int] = field(default_factory=dict, repr=False)
    """canonical key → the column's 0-based index in the file."""
    width: int = 0
    """cells in the header row."""
    delimiter: str = ""
    """CSV only: the cell separator found."""

    def __iter__(self) -> Iterator[Row]:
        return self.rows

    def close(self) -> None:
        close = getattr(self.rows, "close", None)
        if close is not None:
            close()
        if self._closer is not None:
            self._closer()
            self._closer = None

    def __enter__(self) -> Table:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def label(self, key: str) -> str:
        return self.columns.get(key, key)


def normalize_header(text: str) -> str:
    """How headers are compared: full-width folded, blanks, ``*`` marks and trailing notes dropped."""
    value = unicodedata.normalize("NFKC", text).replace("\ufeff", "").replace("\u200b", "")
    value = re.sub(r"\s+", "", value).strip("*")
    value = re.sub(r"[(\[【].*[)\]】]$", "", value).strip("*")
    return value.casefold()


def read_table(
    data: bytes,
    filename: str,
    *,
    required: list[str],
    aliases: dict[str, list[str]],
    max_rows: int,
    max_bytes: int | None = None,
    max_uncompressed_bytes: int = MAX_UNCOMPRESSED_BYTES,
    max_ratio: float = MAX_ZIP_RATIO,
) -> Table:
    """Open ``data`` (the uploaded bytes) and find its header; rows are parsed lazily while iterating.

    ``aliases`` maps each canonical column key to the header names accepted for it (the first is
    the one named in messages); ``required`` lists the keys that must be present. Raises
    ``TableError`` at once for file-level problems and while iterating for a malformed line or
    more than ``max_rows`` non-blank data rows.
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise TableError(f"文件过大：不能超过 {_human_size(max_bytes)}，请拆分后分批导入")
    if _blank(data):
        raise TableError("文件是空的，请检查后重新上传")
    ext = PurePath(filename or "").suffix.lower()
    lookup = _alias_lookup(aliases)

    if data.startswith(b"PK\x03\x04"):
        if ext not in _XLSX_EXTENSIONS and ext not in _TEXT_EXTENSIONS:
            raise TableError(_UNSUPPORTED)
        raw, closer = _open_xlsx(data, max_uncompressed_bytes=max_uncompressed_bytes, max_ratio=max_ratio)
        kind: Literal["csv", "xlsx"] = "xlsx"
        encoding = None
        delimiter = ""
    else:
        for magic, message in _OTHER_MAGIC:
            if data.startswith(magic):
                raise TableError(message)
        if data.startswith(b"PK"):
            raise TableError("文件内容是压缩包而不是表格，请上传 CSV 或 Excel（.xlsx）文件")
        if ext in _XLSX_EXTENSIONS:
            raise TableError(
                "文件扩展名为 .xlsx，但内容不是有效的 Excel 文件（文件可能已损坏或被改了扩展名）"
            )
        if ext not in _TEXT_EXTENSIONS:
            raise TableError(_UNSUPPORTED)
        encoding = _detect_encoding(data)
        delimiter = _sniff_delimiter(_text(data, encoding))
        raw = _csv_iter(_text(data, encoding), delimiter)
        closer = None
        kind = "csv"

    try:
        header_row, columns, positions, ignored, width = _find_header(raw, lookup, aliases, required)
    except BaseException:
        if closer is not None:
            closer()
        raise
    rows = _data_rows(raw, positions, header_row=header_row, max_rows=max_rows, closer=closer)
    return Table(
        kind=kind,
        encoding=encoding,
        header_row=header_row,
        columns=columns,
        ignored=ignored,
        rows=rows,
        _closer=closer,
        positions=positions,
        width=width,
        delimiter=delimiter,
    )


def _blank(data: bytes) -> bool:
    """Only blanks (and a BOM)? Judged on the head first: ``strip`` of a whole upload would copy it."""
    blanks = b" \t\r\n\xef\xbb\xbf"
    return not data[:4096].strip(blanks) and not data.strip(blanks)


# ---------------------------------------------------------------- header


def _alias_lookup(aliases: dict[str, list[str]]) -> dict[str, str]:
    lookup: dict[str, str] = {}
    for key, names in aliases.items():
        for name in [key, *names]:
            lookup.setdefault(normalize_header(name), key)
    return lookup


RawRow = tuple[int, list[Any], frozenset[int]]
"""(spreadsheet row number, cell strings, indexes of cells whose number may have been rounded)"""


def _find_header(
    raw: Iterator[RawRow],
    lookup: dict[str, str],
    aliases: dict[str, list[str]],
    required: list[str],
) -> tuple[int, dict[str, str], dict[str, int], list[str], int]:
    seen_text = False
    for number, cells, _lossy in raw:
        if number > HEADER_SEARCH_ROWS:
            seen_text = True  # rows go on below: not an empty sheet, just no header on top
            break
        texts = [_clean(c) for c in cells]
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
            names = "、".join(f"“{_display(k, aliases)}”" for k in missing)
            raise TableError(f"表头（第{number}行）缺少必填列：{names}。请使用导入模板中的列名")
        return number, columns, positions, ignored, len(cells)
    if not seen_text:
        raise TableError("文件中没有内容（第一个工作表是空的），请检查后重新上传")
    names = "、".join(f"“{_display(k, aliases)}”" for k in required)
    raise TableError(f"未找到表头：文件前{HEADER_SEARCH_ROWS}行中没有 {names} 等列名，请使用导入模板")


def _display(key: str, aliases: dict[str, list[str]]) -> str:
    names = aliases.get(key) or [key]
    return names[0]


def _data_rows(
    raw: Iterator[RawRow],
    positions: dict[str, int],
    *,
    header_row: int,
    max_rows: int,
    closer: Any,
) -> Iterator[Row]:
    count = 0
    try:
        for number, cells, lossy in raw:
            row = row_of(number, cells, positions, lossy)
            if row is None:
                continue  # a blank line, or cells of other columns only
            count += 1
            if count > max_rows:
                raise TableError(too_many_rows(max_rows))
            yield row
    finally:
        if closer is not None:
            closer()


def row_of(
    number: int, cells: list[Any], positions: dict[str, int], lossy: frozenset[int] = frozenset()
) -> Row | None:
    """The row of ``cells`` as every reader gives it (cells cleaned), or None for a blank one."""
    width = len(cells)
    values = {k: (_clean(cells[i]) if i < width else "") for k, i in positions.items()}
    if not any(values.values()):
        return None
    lossy_keys = frozenset(k for k, i in positions.items() if i in lossy) if lossy else frozenset()
    return Row(number=number, values=values, lossy=lossy_keys)


def too_many_rows(max_rows: int) -> str:
    return f"数据行数超过上限：一次最多导入 {max_rows} 行，请拆分后分批导入"


def _clean(value: Any) -> str:
    if value is None:
        return ""
    return str(value).strip(_WS)


# ---------------------------------------------------------------- CSV


def _detect_encoding(data: bytes) -> str:
    """UTF-16 by its BOM; UTF-8 (BOM or not) when the whole file decodes strictly; else GB18030."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Excel's "Unicode text" export: UTF-16 with a BOM, tab-separated.
        if not _decodes(data, "utf-16"):
            raise TableError("文件的文字编码（UTF-16）有误，无法读取")
        encoding = "utf-16"
    elif _decodes(data, "utf-8"):
        encoding = "utf-8-sig"
    elif _decodes(data, "gb18030"):
        # GB18030 is a superset of GBK and GB2312, the encodings of Excel's Chinese "CSV" export.
        encoding = "gb18030"
    else:
        raise TableError("无法识别文件的文字编码：请将文件另存为“CSV UTF-8（逗号分隔）”或 Excel（.xlsx）格式")
    sample = data[:_TEXT_SAMPLE].decode(encoding, errors="ignore")
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\r\n")
    if "\x00" in sample or controls > max(3, len(sample) // 100):
        raise TableError(_UNSUPPORTED)
    return encoding


def _decodes(data: bytes, encoding: str) -> bool:
    # Chunked so that the check does not hold a second, decoded copy of the file.
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    step = 1 << 16
    try:
        for start in range(0, len(data), step):
            decoder.decode(data[start : start + step])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _sniff_delimiter(text: io.TextIOBase) -> str:
    """Comma or tab: whichever occurs more often (outside quotes) in the first non-blank lines."""
    commas = tabs = 0
    seen = 0
    for line in text:
        if not line.strip(_WS):
            continue
        unquoted = re.sub(r'"[^"]*"', "", line)
        commas += unquoted.count(",")
        tabs += unquoted.count("\t")
        seen += 1
        if seen >= 5:
            break
    return "\t" if tabs > commas else ","


_LINE_END = re.compile(rb"\r\n|\r|\n")


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


def _text(data: bytes, encoding: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(data), encoding=encoding, newline="")


_FORMULA_TEXT = re.compile(r'^="(.*)"$', re.S)
_NO_LOSSY: frozenset[int] = frozenset()


def _bounded_lines(text: io.TextIOWrapper) -> Iterator[str]:
    for number, line in enumerate(iter(lambda: text.readline(CSV_LINE_LIMIT + 1), ""), start=1):
        if len(line) > CSV_LINE_LIMIT:
            raise TableError(
                f"第{number}行超过 {_human_size(CSV_LINE_LIMIT)}，不像是正常的表格行，请检查文件后重新上传"
            )
        yield line


def _csv_iter(text: io.TextIOWrapper, delimiter: str) -> Iterator[RawRow]:
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
            yield number, [_unwrap_formula(c) for c in cells], _NO_LOSSY
    finally:
        csv.field_size_limit(previous)


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


# ---------------------------------------------------------------- XLSX


def _check_zip(data: bytes, *, max_uncompressed_bytes: int, max_ratio: float) -> None:
    """Refuse zip bombs by the sizes the archive declares, before anything is inflated.

    Python's zipfile never inflates an entry past the size its central directory declares (and
    fails on a CRC mismatch), so the declared sizes are a safe upper bound of what will be read.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise TableError("Excel 文件已损坏或不完整，无法读取，请重新导出后再上传") from exc
    if len(infos) > MAX_ZIP_ENTRIES:
        raise TableError("Excel 文件结构异常（包含的部件过多），已拒绝读取")
    total = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos)
    if total > max_uncompressed_bytes:
        raise TableError(
            f"Excel 文件解压后超过 {_human_size(max_uncompressed_bytes)}，已拒绝读取；请拆分后分批导入或改用 CSV"
        )
    if total > _RATIO_MIN_BYTES and total > max_ratio * max(packed, 1):
        raise TableError("Excel 文件压缩比异常（疑似“压缩炸弹”），已拒绝读取")
    for info in infos:
        if info.file_size > _RATIO_MIN_BYTES and info.file_size > max_ratio * max(info.compress_size, 1):
            raise TableError("Excel 文件压缩比异常（疑似“压缩炸弹”），已拒绝读取")
    names = {i.filename for i in infos}
    if "xl/workbook.xml" not in names and not any(n.endswith("workbook.xml") for n in names):
        raise TableError(
            "文件是压缩包（如 Word 文档或 zip），不是 Excel 表格，请上传 CSV 或 Excel（.xlsx）文件"
        )


def _open_xlsx(data: bytes, *, max_uncompressed_bytes: int, max_ratio: float) -> tuple[Iterator[RawRow], Any]:
    _check_zip(data, max_uncompressed_bytes=max_uncompressed_bytes, max_ratio=max_ratio)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:  # pragma: no cover - checked above
        raise TableError("Excel 文件已损坏或不完整，无法读取，请重新导出后再上传") from exc
    try:
        book = _xlsx_book(zf)
    except TableError:
        zf.close()
        raise
    except Exception as exc:
        zf.close()
        raise TableError("Excel 文件已损坏或格式不正确，无法读取，请重新导出后再上传") from exc
    return _xlsx_iter(zf, book), zf.close


# ---------------------------------------------------------------- XLSX: a lean streaming reader
#
# The first worksheet's XML is streamed through expat (64 KB at a time, never the whole sheet, no
# cell objects): about 5x faster than openpyxl's read-only mode. Values come out as openpyxl gives
# them (its own date helpers are used: date styles, the 1904 epoch, ISO cells), so that
# ``_xlsx_cell`` turns them into the same text. The shared-strings table is read whole, as every
# reader must (a cell may refer to any entry).

_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_SEP = "\x01"
_XLSX_CHUNK = 64 * 1024
# East Asian Excel's built-in date formats (年/月/日), absent from the default table: dates too.
_CJK_DATE_IDS = frozenset(range(27, 37)) | frozenset(range(50, 59))


class _SharedStrings:
    """The shared-strings table packed into one string and an offsets array: a sheet of 200 000
    names and ID numbers keeps a few MB instead of 400 000 string objects (~40 MB)."""

    def __init__(self) -> None:
        self._buffer: io.StringIO | None = io.StringIO()
        self._text = ""
        self._ends = array.array("q")
        self._size = 0

    def append(self, value: str) -> None:
        assert self._buffer is not None
        self._buffer.write(value)
        self._size += len(value)
        self._ends.append(self._size)

    def seal(self) -> None:
        if self._buffer is not None:
            self._text = self._buffer.getvalue()
            self._buffer = None

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, index: int) -> str:
        if index < 0:
            raise IndexError(index)
        end = self._ends[index]
        return self._text[self._ends[index - 1] if index else 0 : end]


@dataclass
class _Book:
    sheet: str
    strings: _SharedStrings
    date_styles: frozenset[int]
    timedelta_styles: frozenset[int]
    epoch: dt.datetime


def _refuse_doctype(*_args: Any) -> None:
    # No part of a workbook has a DTD: entity tricks (billion laughs, external entities) start here.
    raise TableError("Excel 文件包含不允许的 XML 声明（DOCTYPE），已拒绝读取，请重新导出后再上传")


def _local(name: str) -> str:
    return name.rsplit(_SEP, 1)[-1]


def _parse_part(zf: zipfile.ZipFile, name: str, start: Any, end: Any = None, text: Any = None) -> None:
    import xml.parsers.expat

    parser = xml.parsers.expat.ParserCreate(namespace_separator=_SEP)
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.StartElementHandler = start
    if end is not None:
        parser.EndElementHandler = end
    if text is not None:
        parser.CharacterDataHandler = text
    with zf.open(name) as f:
        parser.ParseFile(f)


def _xlsx_book(zf: zipfile.ZipFile) -> _Book:
    from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format, is_timedelta_format
    from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900

    names = set(zf.namelist())
    workbook = (
        "xl/workbook.xml"
        if "xl/workbook.xml" in names
        else next(n for n in names if n.endswith("workbook.xml"))
    )
    base = workbook.rsplit("/", 1)[0] + "/" if "/" in workbook else ""
    first: list[str] = []
    date1904 = [False]

    def wb_start(name: str, attrs: dict[str, str]) -> None:
        tag = _local(name)
        if tag == "sheet" and not first:
            first.append(attrs.get(f"{_REL_NS}{_SEP}id", ""))
        elif tag == "workbookPr":
            date1904[0] = attrs.get("date1904", "").lower() in ("1", "true")

    _parse_part(zf, workbook, wb_start)
    if not first:
        raise TableError("Excel 文件中没有工作表")
    targets: dict[str, str] = {}
    rels = f"{base}_rels/{workbook.rsplit('/', 1)[-1]}.rels"
    if rels in names:

        def rel_start(name: str, attrs: dict[str, str]) -> None:
            if _local(name) == "Relationship":
                targets[attrs.get("Id", "")] = attrs.get("Target", "")

        _parse_part(zf, rels, rel_start)
    target = targets.get(first[0], "worksheets/sheet1.xml")
    sheet = target.lstrip("/") if target.startswith("/") else base + target
    if sheet not in names:
        raise TableError("Excel 文件已损坏或格式不正确，无法读取，请重新导出后再上传")

    strings = _SharedStrings()
    if f"{base}sharedStrings.xml" in names:
        parts: list[str] = []
        depth = {"t": False, "rPh": 0}

        def sst_start(name: str, _attrs: dict[str, str]) -> None:
            tag = _local(name)
            if tag == "si":
                parts.clear()
            elif tag == "t":
                depth["t"] = True
            elif tag == "rPh":
                depth["rPh"] += 1

        def sst_end(name: str) -> None:
            tag = _local(name)
            if tag == "si":
                strings.append("".join(parts))
            elif tag == "t":
                depth["t"] = False
            elif tag == "rPh":
                depth["rPh"] -= 1

        def sst_text(value: str) -> None:
            if depth["t"] and not depth["rPh"]:
                parts.append(value)

        _parse_part(zf, f"{base}sharedStrings.xml", sst_start, sst_end, sst_text)
    strings.seal()

    custom: dict[int, str] = {}
    xf_formats: list[int] = []
    if f"{base}styles.xml" in names:
        in_xfs = [False]

        def st_start(name: str, attrs: dict[str, str]) -> None:
            tag = _local(name)
            if tag == "numFmt":
                with contextlib.suppress(ValueError):
                    custom[int(attrs.get("numFmtId", ""))] = attrs.get("formatCode", "")
            elif tag == "cellXfs":
                in_xfs[0] = True
            elif tag == "xf" and in_xfs[0]:
                try:
                    xf_formats.append(int(attrs.get("numFmtId", "0")))
                except ValueError:
                    xf_formats.append(0)

        def st_end(name: str) -> None:
            if _local(name) == "cellXfs":
                in_xfs[0] = False

        _parse_part(zf, f"{base}styles.xml", st_start, st_end)
    dates: set[int] = set()
    deltas: set[int] = set()
    for index, fmt_id in enumerate(xf_formats):
        code = custom.get(fmt_id) or BUILTIN_FORMATS.get(fmt_id)
        if code is None:
            if fmt_id in _CJK_DATE_IDS:
                dates.add(index)
            continue
        if is_date_format(code):
            dates.add(index)
        if is_timedelta_format(code):
            deltas.add(index)
    return _Book(
        sheet=sheet,
        strings=strings,
        date_styles=frozenset(dates),
        timedelta_styles=frozenset(deltas),
        epoch=CALENDAR_MAC_1904 if date1904[0] else CALENDAR_WINDOWS_1900,
    )


def _column_index(ref: str) -> int:
    """'B12' → 1 (0-based); -1 when there are no letters."""
    n = 0
    for ch in ref:
        o = ord(ch)
        if 65 <= o <= 90:
            n = n * 26 + o - 64
        elif 97 <= o <= 122:
            n = n * 26 + o - 96
        else:
            break
    return n - 1


class _SheetReader:
    """expat callbacks for one worksheet: completed rows are appended to ``ready``."""

    def __init__(self, book: _Book) -> None:
        self.book = book
        self.ready: list[RawRow] = []
        self.row_number = 0
        self.cells: dict[int, Any] = {}
        self.column = -1
        self.kind = "n"
        self.style = 0
        self.text: list[str] = []
        self.in_value = False
        self.in_inline = False
        self.in_phonetic = 0
        self.in_row = False

    def start(self, name: str, attrs: dict[str, str]) -> None:
        tag = name[name.rfind(_SEP) + 1 :]
        if tag == "c":
            ref = attrs.get("r")
            self.column = _column_index(ref) if ref else self.column + 1
            self.kind = attrs.get("t", "n")
            s = attrs.get("s")
            self.style = int(s) if s and s.isdigit() else 0
            self.text = []
        elif tag == "v":
            self.in_value = True
        elif tag == "t":
            self.in_inline = self.kind == "inlineStr"
        elif tag == "rPh":
            self.in_phonetic += 1
        elif tag == "row":
            r = attrs.get("r")
            self.row_number = int(r) if r and r.isdigit() else self.row_number + 1
            if self.row_number > EXCEL_MAX_ROWS:
                raise TableError("Excel 文件的行号超出 Excel 的上限，文件已损坏")
            self.cells = {}
            self.column = -1
            self.in_row = True

    def end(self, name: str) -> None:
        tag = name[name.rfind(_SEP) + 1 :]
        if tag == "c":
            if 0 <= self.column < MAX_COLUMNS and self.text:
                value = self._value("".join(self.text))
                if value is not None:
                    self.cells[self.column] = value
        elif tag == "v":
            self.in_value = False
        elif tag == "t":
            self.in_inline = False
        elif tag == "rPh":
            self.in_phonetic -= 1
        elif tag == "row":
            self.in_row = False
            self._emit()

    def data(self, value: str) -> None:
        if self.in_value or (self.in_inline and not self.in_phonetic):
            self.text.append(value)

    def _value(self, raw: str) -> Any:
        kind = self.kind
        if kind == "s":
            try:
                return self.book.strings[int(raw)]
            except (ValueError, IndexError) as exc:
                raise TableError(
                    f"Excel 文件第{self.row_number}行的文字引用无效，文件已损坏，请重新导出后再上传"
                ) from exc
        if kind in ("inlineStr", "str", "e"):
            return raw
        if kind == "b":
            return raw.strip() not in ("0", "")
        if kind == "d":
            from openpyxl.utils.datetime import from_ISO8601

            try:
                return from_ISO8601(raw)
            except ValueError:
                return raw
        try:
            number: int | float = float(raw) if ("." in raw or "E" in raw or "e" in raw) else int(raw)
        except ValueError:
            return raw
        if self.style in self.book.date_styles:
            from openpyxl.utils.datetime import from_excel

            try:
                return from_excel(number, self.book.epoch, timedelta=self.style in self.book.timedelta_styles)
            except (OverflowError, ValueError):
                return "#VALUE!"
        return number

    def _emit(self) -> None:
        cells = self.cells
        width = max(cells) + 1 if cells else 0
        lossy: set[int] = set()
        out: list[str] = []
        for index in range(width):
            value = cells.get(index)
            if value is None:
                out.append("")
                continue
            text, rounded = _xlsx_cell(value)
            out.append(text)
            if rounded:
                lossy.add(index)
        self.ready.append((self.row_number, out, frozenset(lossy) if lossy else _NO_LOSSY))


def _xlsx_iter(zf: zipfile.ZipFile, book: _Book) -> Iterator[RawRow]:
    import xml.parsers.expat

    reader = _SheetReader(book)
    parser = xml.parsers.expat.ParserCreate(namespace_separator=_SEP)
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.data
    try:
        f = zf.open(book.sheet)
    except (KeyError, zipfile.BadZipFile, OSError) as exc:
        raise TableError("Excel 文件已损坏或格式不正确，无法读取，请重新导出后再上传") from exc
    with f:
        while True:
            try:
                chunk = f.read(_XLSX_CHUNK)
                parser.Parse(chunk, not chunk)
            except TableError:
                raise
            except Exception as exc:
                raise TableError(
                    f"Excel 文件第{reader.row_number + 1}行附近已损坏，无法读取，请重新导出后再上传"
                ) from exc
            if reader.ready:
                ready, reader.ready = reader.ready, []
                yield from ready
            if not chunk:
                return


def _xlsx_cell(value: Any) -> tuple[str, bool]:
    """A cell value as text, and whether it is a number Excel may have rounded (see module doc)."""
    if value is None:
        return "", False
    if isinstance(value, str):
        return value, False
    if isinstance(value, bool):
        return ("TRUE" if value else "FALSE"), False
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat(), False
        return value.isoformat(sep=" ", timespec="seconds"), False
    if isinstance(value, dt.date | dt.time):
        return value.isoformat(), False
    if isinstance(value, int):
        digits = str(abs(value))
        # Excel writes only 15 significant digits: the rest of a longer number comes out as zeros.
        rounded = len(digits) > _EXACT_DIGITS and set(digits[_EXACT_DIGITS:]) == {"0"}
        return str(value), rounded
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return "", False
        if value.is_integer():
            text = str(int(value))
            return text, len(text.lstrip("-")) > _EXACT_DIGITS
        return _float_text(value), False
    if isinstance(value, Decimal):
        return format(value.normalize(), "f"), False
    if isinstance(value, dt.timedelta):
        return str(value), False
    return str(value), False


def _float_text(value: float) -> str:
    # repr gives the shortest text that round-trips (0.1, not 0.1000000000000000055); no exponent.
    text = repr(value)
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    return text


def _human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):g} MB"
    if size >= 1024:
        return f"{size / 1024:g} KB"
    return f"{size} 字节"
