"""What every CSV or XLSX file the service writes must do to its cells.

Formula injection (CSV injection): a text cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a
tab or carriage return, which Excel skips before looking) is run as a formula when the file is
opened in Excel or WPS — ``=HYPERLINK(...)`` leaks data, DDE formulas start programs. Names,
agency names, course titles and reasons are typed by users, so every exported text cell goes
through ``spreadsheet_safe``: a leading apostrophe makes the spreadsheet show the text as typed.
Numbers the service formats itself (hours, scores) are not user text and are written unchanged.

This module is the one home of that rule: CSV rows built in Python use ``spreadsheet_safe``, CSV
cells computed by PostgreSQL (the roster's ``COPY``) use its SQL twin ``spreadsheet_safe_sql``, and
XLSX files write text as typed string cells (inline strings, never formulas), so the same text is
inert in every file the service writes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, literal

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


_TRIGGER_CODES = sorted(map(ord, FORMULA_TRIGGERS))


def spreadsheet_safe_sql(col: Any) -> Any:
    """``spreadsheet_safe`` as a PostgreSQL expression (for cells PostgreSQL writes itself).

    ``ascii()`` is the first character's code point in a UTF-8 database, full-width forms included:
    no substring is cut out of every cell of a 200,000-row export.
    """
    return case((func.ascii(col).in_(_TRIGGER_CODES), literal("'") + col), else_=col)


__all__ = ["FORMULA_TRIGGERS", "spreadsheet_safe", "spreadsheet_safe_row", "spreadsheet_safe_sql"]
