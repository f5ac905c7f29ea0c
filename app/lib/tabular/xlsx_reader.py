"""XLSX, the first worksheet: its XML streamed through expat 64 KB at a time (no cell objects, never
the whole sheet in memory), values converted as openpyxl would (its date helpers are reused: date
styles, the 1904 epoch, ISO cells), about 3-5x faster than openpyxl's read-only mode.

Long numbers: a number cell holds a double. Excel keeps only 15 significant digits, so an 18-digit
ID number typed into a cell in "General" format has lost its last digits inside the file
(``3.20102198506121E+17``), and libraries such as openpyxl write doubles too (17 digits, the last
ones wrong). Nothing can bring the digits back. Only a producer that writes the integer text itself
(``<v>320102198506121237</v>``) keeps every digit, and those cells are read exactly. Any number
cell with more than 15 significant digits that may have been rounded is listed in ``Row.lossy`` so
that the caller can ask for the column to be entered as text instead of importing a wrong number.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from app.lib.tabular.table import MAX_COLUMNS, NO_LOSSY, RawRow, TableError
from app.lib.tabular.xlsx_book import DAMAGED, SEP, Book, expat, open_workbook

# Excel's own sheet limit: a row index above it is a damaged or forged file.
EXCEL_MAX_ROWS = 1_048_576
_EXACT_DIGITS = 15  # Excel's precision for numbers
_XLSX_CHUNK = 64 * 1024


def open_xlsx(data: bytes, *, max_uncompressed_bytes: int, max_ratio: float) -> tuple[Iterator[RawRow], Any]:
    """The raw rows of the first worksheet, and the function that closes the archive."""
    zf, book = open_workbook(data, max_uncompressed_bytes=max_uncompressed_bytes, max_ratio=max_ratio)
    return _xlsx_rows(zf, book), zf.close


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

    def __init__(self, book: Book) -> None:
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
        tag = name[name.rfind(SEP) + 1 :]
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
        tag = name[name.rfind(SEP) + 1 :]
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
            text, rounded = xlsx_cell(value)
            out.append(text)
            if rounded:
                lossy.add(index)
        self.ready.append((self.row_number, out, frozenset(lossy) if lossy else NO_LOSSY))


def _xlsx_rows(zf: zipfile.ZipFile, book: Book) -> Iterator[RawRow]:
    reader = _SheetReader(book)
    parser = expat(reader.start, reader.end, reader.data)
    try:
        f = zf.open(book.sheet)
    except (KeyError, zipfile.BadZipFile, OSError) as exc:
        raise TableError(DAMAGED) from exc
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


def xlsx_cell(value: Any) -> tuple[str, bool]:
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
