"""The query parameters the training pages and API share."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.params import QueryParameter

from app.lib import clock

Req = Request[Any, Any, Any]
Year = Annotated[int | None, QueryParameter(ge=2000, le=2100, description="年度（默认今年）")]
PageNo = Annotated[int, QueryParameter(ge=1, le=100000)]
StatusFilter = Annotated[str, QueryParameter(pattern="^(all|short|behind|met)$")]


def year_or_this(year: int | None) -> int:
    return year or clock.today().year


__all__ = ["PageNo", "Req", "StatusFilter", "Year", "year_or_this"]
