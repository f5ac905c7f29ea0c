"""The query parameters of the training pages and API beyond the shared ones of ``app.lib.web``:
the compliance status and the course list's filter."""

from __future__ import annotations

from typing import Annotated, Any

from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, QueryParameter

from app.lib.web import Year
from app.training.rules import TrainingCategory
from app.training.selectors.courses import CourseFilter

StatusFilter = Annotated[str, QueryParameter(pattern="^(all|short|behind|met)$")]


def provide_course_filter(
    year: Year = None, q: FromQuery[str] = "", category: FromQuery[TrainingCategory | None] = None
) -> CourseFilter:
    return CourseFilter(year=year, q=q, category=category)


CourseQuery = NamedDependency[CourseFilter]
"""The course list's filter: ``f: CourseQuery`` in a handler that has the dependency ``COURSE_FILTER``."""
COURSE_FILTER: dict[str, Any] = {"f": Provide(provide_course_filter, sync_to_thread=False)}

__all__ = ["COURSE_FILTER", "CourseQuery", "StatusFilter"]
