"""XLSX, the workbook around the sheet: the zip checked against bombs before anything is inflated,
then the parts that say how to read the first worksheet (where it is, its shared strings, which
cell styles are dates, the date epoch), each parsed by expat with DTDs refused.

Python's zipfile never inflates an entry past the size its central directory declares (and fails on
a CRC mismatch), so the declared sizes are a safe upper bound of what will be read.
"""

from __future__ import annotations

import array
import contextlib
import datetime as dt
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.lib.tabular.table import TableError, human_size

if TYPE_CHECKING:
    from xml.parsers.expat import XMLParserType

# XLSX is a zip of XML: refuse archives that would inflate beyond this, or inflate suspiciously well.
MAX_UNCOMPRESSED_BYTES = 100 * 1024 * 1024
MAX_ZIP_RATIO = 100
MAX_ZIP_ENTRIES = 10_000
# Per-entry ratio is only judged above this size: tiny XML parts compress very well and are harmless.
_RATIO_MIN_BYTES = 1024 * 1024

_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
SEP = "\x01"
"""Between an element's namespace and its local name in expat's names."""
# East Asian Excel's built-in date formats (年/月/日), absent from the default table: dates too.
_CJK_DATE_IDS = frozenset(range(27, 37)) | frozenset(range(50, 59))

_INCOMPLETE = "Excel 文件已损坏或不完整，无法读取，请重新导出后再上传"
DAMAGED = "Excel 文件已损坏或格式不正确，无法读取，请重新导出后再上传"
_BOMB = "Excel 文件压缩比异常（疑似“压缩炸弹”），已拒绝读取"


def open_workbook(
    data: bytes, *, max_uncompressed_bytes: int, max_ratio: float
) -> tuple[zipfile.ZipFile, Book]:
    """The archive (open: the caller closes it) and what its workbook says about the first sheet."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise TableError(_INCOMPLETE) from exc
    try:
        _check_zip(zf.infolist(), max_uncompressed_bytes=max_uncompressed_bytes, max_ratio=max_ratio)
        return zf, _read_book(zf)
    except TableError:
        zf.close()
        raise
    except Exception as exc:
        zf.close()
        raise TableError(DAMAGED) from exc


def _check_zip(infos: list[zipfile.ZipInfo], *, max_uncompressed_bytes: int, max_ratio: float) -> None:
    """Refuse zip bombs by the sizes the archive declares, before anything is inflated."""

    def inflates_too_well(size: int, packed: int) -> bool:
        return size > _RATIO_MIN_BYTES and size > max_ratio * max(packed, 1)

    if len(infos) > MAX_ZIP_ENTRIES:
        raise TableError("Excel 文件结构异常（包含的部件过多），已拒绝读取")
    total = sum(i.file_size for i in infos)
    if total > max_uncompressed_bytes:
        raise TableError(
            f"Excel 文件解压后超过 {human_size(max_uncompressed_bytes)}，已拒绝读取；请拆分后分批导入或改用 CSV"
        )
    if inflates_too_well(total, sum(i.compress_size for i in infos)):
        raise TableError(_BOMB)
    if any(inflates_too_well(i.file_size, i.compress_size) for i in infos):
        raise TableError(_BOMB)
    names = {i.filename for i in infos}
    if "xl/workbook.xml" not in names and not any(n.endswith("workbook.xml") for n in names):
        raise TableError(
            "文件是压缩包（如 Word 文档或 zip），不是 Excel 表格，请上传 CSV 或 Excel（.xlsx）文件"
        )


class SharedStrings:
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
class Book:
    sheet: str
    strings: SharedStrings
    date_styles: frozenset[int]
    timedelta_styles: frozenset[int]
    epoch: dt.datetime


def _refuse_doctype(*_args: Any) -> None:
    # No part of a workbook has a DTD: entity tricks (billion laughs, external entities) start here.
    raise TableError("Excel 文件包含不允许的 XML 声明（DOCTYPE），已拒绝读取，请重新导出后再上传")


def _local(name: str) -> str:
    return name.rsplit(SEP, 1)[-1]


def expat(
    start: Callable[[str, dict[str, str]], None],
    end: Callable[[str], None] | None = None,
    text: Callable[[str], None] | None = None,
) -> XMLParserType:
    """An expat parser for one part of the workbook: namespaced names, no DTD."""
    import xml.parsers.expat

    parser = xml.parsers.expat.ParserCreate(namespace_separator=SEP)
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.StartElementHandler = start
    if end is not None:
        parser.EndElementHandler = end
    if text is not None:
        parser.CharacterDataHandler = text
    return parser


def _parse_part(
    zf: zipfile.ZipFile,
    name: str,
    start: Callable[[str, dict[str, str]], None],
    end: Callable[[str], None] | None = None,
    text: Callable[[str], None] | None = None,
) -> None:
    parser = expat(start, end, text)
    with zf.open(name) as f:
        parser.ParseFile(f)


def _read_book(zf: zipfile.ZipFile) -> Book:
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
            first.append(attrs.get(f"{_REL_NS}{SEP}id", ""))
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
        raise TableError(DAMAGED)

    strings = SharedStrings()
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
    return Book(
        sheet=sheet,
        strings=strings,
        date_styles=frozenset(dates),
        timedelta_styles=frozenset(deltas),
        epoch=CALENDAR_MAC_1904 if date1904[0] else CALENDAR_WINDOWS_1900,
    )
