"""The query parameters of the training pages and API beyond the shared ones of ``app.lib.web``."""

from __future__ import annotations

from typing import Annotated

from litestar.params import QueryParameter

StatusFilter = Annotated[str, QueryParameter(pattern="^(all|short|behind|met)$")]

__all__ = ["StatusFilter"]
