"""What the assessment API and pages share beyond ``app.lib.web``: the year parameter, documented as
the assessment year, the filters of the rating and exit case lists, and the rating import."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, QueryParameter

from app.assessments import importer
from app.assessments.rules import CaseStatus, RatingStatus
from app.assessments.schemas import ImportReport
from app.lib.uploads import NO_SHEET, require_upload
from app.lib.web import Db, Req, principal_of

Year = Annotated[int | None, QueryParameter(ge=2000, le=2100, description="考核年度")]


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
    year: Year = None,
    agency_id: FromQuery[int | None] = None,
    grade: FromQuery[str] = "",
    status: FromQuery[RatingStatus | None] = None,
) -> RatingFilter:
    return RatingFilter(year=year, agency_id=agency_id, grade=grade, status=status)


def provide_case_filter(
    status: FromQuery[CaseStatus | None] = None,
    year: Year = None,
    returned: Annotated[
        Literal["true", "false", ""],
        QueryParameter(description="true：只看人员返回执法岗位后立案的案件；false：不含；空：全部"),
    ] = "",
) -> CaseFilter:
    # A string, not a bool: the page's filter form sends an empty value for "全部".
    return CaseFilter(status=status, year=year, returned={"true": True, "false": False}.get(returned))


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
