"""What every CSV or XLSX file the service writes must do to its cells.

Formula injection (CSV injection): a text cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a
tab or carriage return, which Excel skips before looking) is run as a formula when the file is
opened in Excel or WPS — ``=HYPERLINK(...)`` leaks data, DDE formulas start programs. Names,
agency names, course titles and reasons are typed by users, so every exported text cell goes
through ``spreadsheet_safe``: a leading apostrophe makes the spreadsheet show the text as typed.
Numbers the service formats itself (hours, scores) are not user text and are written unchanged.
"""

from __future__ import annotations

from typing import Any

# The full-width forms are included: Chinese input methods produce them and some spreadsheet
# programs read them as the ASCII operator.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")


def spreadsheet_safe(value: Any) -> Any:
    """``value`` unchanged unless it is text a spreadsheet would run as a formula; then ``'value``."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def spreadsheet_safe_row(values: list[Any]) -> list[Any]:
    return [spreadsheet_safe(v) for v in values]


__all__ = ["FORMULA_TRIGGERS", "spreadsheet_safe", "spreadsheet_safe_row"]
