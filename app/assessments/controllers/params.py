"""What the assessment API and pages share beyond ``app.lib.web``: the year parameter, documented as
the assessment year, the filters of the rating and exit case lists, and the rating import."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, QueryParameter

from app.assessments import importer
from app.assessments.rules import CaseStatus, RatingStatus
from app.assessments.schemas import ImportReport
from app.lib.errors import DomainError
from app.lib.uploads import NO_SHEET, require_upload
from app.lib.web import Db, Req, principal_of

Year = Annotated[int | None, QueryParameter(ge=2000, le=2100, description="考核年度")]
E = TypeVar("E", bound=StrEnum)


def _chosen(raw: str, enum: type[E], field: str) -> E | None:
    """A list filter's choice from the query: empty (the filter form's 全部) is no filter."""
    if not raw:
        return None
    try:
        return enum(raw)
    except ValueError:
        allowed = "、".join(m.value for m in enum)
        raise DomainError(
            f"筛选条件 {field} 的取值应为 {allowed} 之一，或留空（全部）", field=field
        ) from None


def _year(raw: str) -> int | None:
    """The year filter from the query: empty is every year; else 2000–2100."""
    if not raw:
        return None
    if not raw.isdigit() or not 2000 <= int(raw) <= 2100:
        raise DomainError("考核年度应为 2000–2100 之间的年份，或留空（全部）", field="year")
    return int(raw)


FilterYear = Annotated[str, QueryParameter(description="考核年度（2000–2100；空：全部）")]


@dataclass(frozen=True)
class RatingFilter:
    """The rating list's filter, as ``selectors.rating_list`` takes it (``**asdict(f)``)."""

    year: int | None = None
    agency_id: int | None = None
    grade: str = ""
    status: RatingStatus | None = None


@dataclass(frozen=True)
class CaseFilter:
    """The exit case list's filter, as ``selectors.case_list`` takes it (``**asdict(f)``)."""

    status: CaseStatus | None = None
    year: int | None = None
    returned: bool | None = None


def provide_rating_filter(
    year: FilterYear = "",
    agency_id: FromQuery[str] = "",
    grade: FromQuery[str] = "",
    status: FromQuery[str] = "",
) -> RatingFilter:
    # Strings, not typed parameters: the page's filter form sends an empty value for "全部".
    if agency_id and not agency_id.isdigit():
        raise DomainError("单位应为单位编号，或留空（全部）", field="agency_id")
    return RatingFilter(
        year=_year(year),
        agency_id=int(agency_id) if agency_id else None,
        grade=grade,
        status=_chosen(status, RatingStatus, "status"),
    )


def provide_case_filter(
    status: FromQuery[str] = "",
    year: FilterYear = "",
    returned: Annotated[
        Literal["true", "false", ""],
        QueryParameter(description="true：只看人员返回执法岗位后立案的案件；false：不含；空：全部"),
    ] = "",
) -> CaseFilter:
    # Strings, not typed parameters: the page's filter form sends an empty value for "全部".
    return CaseFilter(
        status=_chosen(status, CaseStatus, "status"),
        year=_year(year),
        returned={"true": True, "false": False}.get(returned),
    )


async def import_sheet(request: Req, db: Db, file: Any, *, year: int | None, dry_run: bool) -> ImportReport:
    """Check (``dry_run``) or import an uploaded sheet of ratings. Raises ``DomainError`` when no file
    was sent, ``app.lib.imports.ImportFileError`` (400) when it cannot be read."""
    upload = await require_upload(file, message=NO_SHEET)
    return await importer.rating_import(
        db,
        principal=principal_of(request),
        data=upload.data,
        filename=upload.filename,
        year=year,
        dry_run=dry_run,
        max_bytes=request.app.state.settings.max_upload_bytes,
    )


RatingQuery = NamedDependency[RatingFilter]
"""``f: RatingQuery`` in a handler that has the dependency ``RATING_FILTER``."""
RATING_FILTER: dict[str, Any] = {"f": Provide(provide_rating_filter, sync_to_thread=False)}
CaseQuery = NamedDependency[CaseFilter]
"""``f: CaseQuery`` in a handler that has the dependency ``CASE_FILTER``."""
CASE_FILTER: dict[str, Any] = {"f": Provide(provide_case_filter, sync_to_thread=False)}
