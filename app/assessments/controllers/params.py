"""What the assessment API and pages share beyond ``app.lib.web``: the year parameter, documented as
the assessment year, and the answer to an import without its file."""

from __future__ import annotations

from typing import Annotated

from litestar.params import QueryParameter

Year = Annotated[int | None, QueryParameter(ge=2000, le=2100, description="考核年度")]
NO_FILE = "请选择要上传的文件（CSV 或 Excel .xlsx）"
"""The answer to an import sent without its file."""
