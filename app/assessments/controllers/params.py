"""What the assessment API and pages share: their query parameters and the years they offer."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.params import QueryParameter

from app.lib import clock

Req = Request[Any, Any, Any]
Year = Annotated[int | None, QueryParameter(ge=2000, le=2100, description="考核年度")]
PageNo = Annotated[int, QueryParameter(ge=1, le=100000)]
PerPage = Annotated[int, QueryParameter(ge=1, le=200)]
NO_FILE = "请选择要上传的文件（CSV 或 Excel .xlsx）"
"""The answer to an import sent without its file."""


def this_year_or(year: int | None) -> int:
    return year or clock.today().year


def recent_years() -> list[int]:
    """This year and the five before it, newest first (the forms' year choices)."""
    this = clock.today().year
    return list(range(this, this - 6, -1))
