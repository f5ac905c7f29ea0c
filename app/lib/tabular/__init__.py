"""A streaming reader for the spreadsheets personnel offices keep: CSV (UTF-8, GBK/GB18030) and XLSX.

``read_table`` checks the file (type by its magic bytes, size, zip-bomb limits), finds the header row
by its Chinese column names and returns a ``Table`` whose rows are produced one at a time, each with
its 1-based spreadsheet row number, so a caller can name the line of every bad row. Every refusal is
a ``TableError`` with a Chinese message meant for the person who uploaded the file.

Cells come out as stripped strings: dates as ISO ``YYYY-MM-DD``, whole floats without ``.0``. An
XLSX number cell that Excel may have rounded (an ID number of 18 digits) is named in ``Row.lossy``
(see ``xlsx_reader``).

The modules: ``sniff`` (file type, text encoding, CSV separator), ``csv_reader`` (CSV rows and
``PlainCsv``), ``xlsx_book`` (the zip checks and the workbook's parts), ``xlsx_reader`` (the
streaming worksheet parser and cell values), ``header`` (finding the header row, matching columns)
and ``table`` (``Table``, ``Row``, ``TableError``, what every reader shares).
"""

from __future__ import annotations

from pathlib import PurePath

from app.lib.tabular.csv_reader import CSV_FIELD_LIMIT, CSV_LINE_LIMIT, PlainCsv, csv_rows, plain_csv
from app.lib.tabular.header import find_header, normalize_header
from app.lib.tabular.sniff import blank, detect_encoding, file_kind, sniff_delimiter, text
from app.lib.tabular.table import (
    BLANKS,
    Row,
    Table,
    TableError,
    data_rows,
    human_size,
    row_of,
    too_many_rows,
)
from app.lib.tabular.xlsx_book import MAX_UNCOMPRESSED_BYTES, MAX_ZIP_RATIO
from app.lib.tabular.xlsx_reader import open_xlsx

__all__ = [
    "BLANKS",
    "CSV_FIELD_LIMIT",
    "CSV_LINE_LIMIT",
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
        raise TableError(f"文件过大：不能超过 {human_size(max_bytes)}，请拆分后分批导入")
    if blank(data):
        raise TableError("文件是空的，请检查后重新上传")
    kind = file_kind(data, PurePath(filename or "").suffix.lower())
    encoding: str | None = None
    delimiter = ""
    if kind == "xlsx":
        raw, closer = open_xlsx(data, max_uncompressed_bytes=max_uncompressed_bytes, max_ratio=max_ratio)
    else:
        encoding = detect_encoding(data)
        delimiter = sniff_delimiter(text(data, encoding))
        raw, closer = csv_rows(text(data, encoding), delimiter), None

    try:
        header = find_header(raw, aliases, required)
    except BaseException:
        if closer is not None:
            closer()
        raise
    return Table(
        kind=kind,
        encoding=encoding,
        header_row=header.number,
        columns=header.columns,
        ignored=header.ignored,
        rows=data_rows(raw, header.positions, max_rows=max_rows, closer=closer),
        _closer=closer,
        positions=header.positions,
        width=header.width,
        delimiter=delimiter,
    )
