"""What every spreadsheet import of the service answers with, whatever it imports (officers,
attendance, ratings): the refusal of a whole file, the bad rows named by row and column, and the
counts of a preview.

An import collects each bad cell as a ``RowFault`` while it reads (cheap tuples: a bad file of
200,000 rows makes as many) and turns them into ``ImportRowError`` structs once, in the file's order.
"""

from __future__ import annotations

import msgspec

from app.lib.errors import DomainError


class ImportFileError(DomainError):
    """The file as a whole cannot be imported (type, encoding, header, size, no data row...)."""

    title = "文件无法导入"


class ImportRowError(msgspec.Struct, kw_only=True):
    row: int
    """the row number as the spreadsheet shows it (1-based, header included; 0: the file as a whole)"""
    column: str
    """the column's header as written in the file"""
    message: str


RowFault = tuple[int, int, str, str]
"""(row, the column's place in the template, the column's header in the file, message)."""


def row_errors(faults: list[RowFault]) -> list[ImportRowError]:
    """The collected faults in the file's order: by row, then by column (sorts ``faults`` in place)."""
    faults.sort(key=lambda e: (e[0], e[1]))
    return [ImportRowError(row=r, column=c, message=m) for r, _o, c, m in faults]


def encoding_label(encoding: str | None) -> str | None:
    """The name of a text file's encoding as a personnel office knows it."""
    return {"utf-8-sig": "UTF-8", "gb18030": "GBK/GB18030", "utf-16": "UTF-16"}.get(encoding or "", encoding)


class ImportCounts(msgspec.Struct, kw_only=True):
    """A checked file before anything is written: what it is, how many rows, which are bad.

    Each import's preview adds its sample rows (and what else it sums up) to these fields."""

    filename: str
    sha256: str
    file_type: str
    encoding: str | None
    total_rows: int
    valid_rows: int
    invalid_rows: int
    errors: list[ImportRowError]
    ignored_columns: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors and self.total_rows > 0


__all__ = ["ImportCounts", "ImportFileError", "ImportRowError", "RowFault", "encoding_label", "row_errors"]
