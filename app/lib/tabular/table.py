"""What every reader of the package shares: the error, the row and table types, the raw rows the
CSV and XLSX readers produce, and how a raw row becomes a ``Row``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

# Columns beyond this are ignored; keeps a malicious "XFD1" cell from widening every row.
MAX_COLUMNS = 200

BLANKS = " \t\r\n\u3000\u00a0\u200b\ufeff"
"""What a cell is stripped of at both ends."""

UNSUPPORTED = "无法识别的文件类型：请上传 CSV（逗号或制表符分隔）或 Excel（.xlsx）文件"

RawRow = tuple[int, list[Any], frozenset[int]]
"""(spreadsheet row number, cell strings, indexes of cells whose number may have been rounded)"""
NO_LOSSY: frozenset[int] = frozenset()


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


def data_rows(
    raw: Iterator[RawRow],
    positions: dict[str, int],
    *,
    max_rows: int,
    closer: Any,
) -> Iterator[Row]:
    """The data rows below the header (blank ones skipped); ``closer`` runs when they end."""
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
    values = {k: (clean(cells[i]) if i < width else "") for k, i in positions.items()}
    if not any(values.values()):
        return None
    lossy_keys = frozenset(k for k, i in positions.items() if i in lossy) if lossy else frozenset()
    return Row(number=number, values=values, lossy=lossy_keys)


def too_many_rows(max_rows: int) -> str:
    return f"数据行数超过上限：一次最多导入 {max_rows} 行，请拆分后分批导入"


def clean(value: Any) -> str:
    if value is None:
        return ""
    return str(value).strip(BLANKS)


def human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):g} MB"
    if size >= 1024:
        return f"{size / 1024:g} KB"
    return f"{size} 字节"
