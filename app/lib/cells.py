"""What people type into a spreadsheet cell or a form field, read the one way every import reads it."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

_DATE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
_DATE_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")


def parse_date(raw: str) -> dt.date | None:
    """2026-03-01, 2026/3/1, 2026.3.1, 2026年3月1日, 20260301 (a time part is ignored); else None."""
    text = unicodedata.normalize("NFKC", raw).strip()
    m = _DATE.match(text) or _DATE_COMPACT.match(text)
    if not m:
        return None
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


__all__ = ["parse_date"]
