"""The query parameters of the training pages and API beyond the shared ones of ``app.lib.web``
(the compliance filter, the course list's filter), and the stack the training controllers share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromQuery, QueryParameter

from app.lib.guards import require_admin
from app.lib.web import Year, year_or_this
from app.training.rules import TrainingCategory
from app.training.selectors.courses import CourseFilter

StatusFilter = Annotated[str, QueryParameter(pattern="^(all|short|behind|met)$")]

DryRun = Annotated[
    bool | None,
    QueryParameter(
        description="true（默认）：只校验不写入；false：校验通过后导入。也可作为表单字段 dry_run 发送"
    ),
]
"""An import's ``dry_run`` query parameter (``app.lib.uploads.dry_run_of`` also reads the form field)."""


def rows_refused(report: type[Any]) -> dict[int, ResponseSpec]:
    """The OpenAPI ``responses`` of an import: 422 with the ``report`` listing the bad rows."""
    return {422: ResponseSpec(data_container=report, description="文件中有错误行，未写入任何数据")}


def provide_course_filter(
    year: Year = None, q: FromQuery[str] = "", category: FromQuery[TrainingCategory | None] = None
) -> CourseFilter:
    return CourseFilter(year=year, q=q, category=category)


CourseQuery = NamedDependency[CourseFilter]
"""The course list's filter: ``f: CourseQuery`` in a handler that has the dependency ``COURSE_FILTER``."""
COURSE_FILTER: dict[str, Any] = {"f": Provide(provide_course_filter, sync_to_thread=False)}


@dataclass(frozen=True)
class ComplianceFilter:
    """Whose compliance, which year (this one unless given), which standing (``StatusFilter``)."""

    year: int
    agency_id: int | None
    status: str


def compliance_filter(default_status: str) -> dict[str, Any]:
    """The dependency ``f: ComplianceQuery``, its ``status`` defaulting to ``default_status``."""

    def provide(
        year: Year = None, agency_id: FromQuery[int | None] = None, status: StatusFilter = default_status
    ) -> ComplianceFilter:
        return ComplianceFilter(year_or_this(year), agency_id, status)

    return {"f": Provide(provide, sync_to_thread=False)}


ComplianceQuery = NamedDependency[ComplianceFilter]


class TrainingApi(Controller):
    """A JSON controller of the training domain: tagged 培训学时, for administrators unless it says otherwise."""

    tags = ["培训学时"]
    guards = [require_admin]


class TrainingAdminPages(Controller):
    """HTML pages under /training, for administrators."""

    path = "/training"
    include_in_schema = False
    guards = [require_admin]


__all__ = [
    "COURSE_FILTER",
    "ComplianceFilter",
    "ComplianceQuery",
    "CourseQuery",
    "DryRun",
    "StatusFilter",
    "TrainingAdminPages",
    "TrainingApi",
    "compliance_filter",
    "rows_refused",
]
