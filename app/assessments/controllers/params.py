"""What the assessment API and pages share beyond ``app.lib.web``: the year parameter, documented as
the assessment year."""

from __future__ import annotations

from typing import Annotated

from litestar.params import QueryParameter

Year = Annotated[int | None, QueryParameter(ge=2000, le=2100, description="考核年度")]
