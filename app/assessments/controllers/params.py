"""What the assessment API and pages share beyond ``app.lib.web``: the year parameter, documented as
the assessment year, the filters of the rating and exit case lists, the rating import, and the
steps of an exit case."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, QueryParameter

from app.assessments import importer
from app.assessments.rules import CaseStatus, RatingStatus
from app.assessments.schemas import DecisionIn, ImportReport, ReviewDecisionIn, ReviewRequestIn, StatementIn
from app.assessments.selectors import CaseFilter, RatingFilter
from app.assessments.services import cases
from app.lib.errors import DomainError
from app.lib.guards import require_admin, require_officer
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


@dataclass(frozen=True)
class CaseStep:
    """One step of an exit case's due process, as the API (``POST /api/assessments/cases/{id}/<path>``)
    and the case page (a form posted to ``.../cases/{id}/<path>``) both take it."""

    path: str
    name: str
    """The handlers' name (the API's operationId)."""
    service: Callable[..., Awaitable[Any]]
    body: type[Any]
    by_authority: bool
    """Taken by the legal-affairs office (an administrator's page), else by the officer (their own)."""
    fields: tuple[str, ...]
    """The form's fields the page shows again with its errors."""
    done: str
    """The ``msg`` the case page greets the redirect with."""
    summary: str
    description: str | None = None
    form: str = ""
    """Which of the authority's forms on the case page (``action``) shows the errors."""

    @property
    def guard(self) -> Any:
        return require_admin if self.by_authority else require_officer


STATEMENT = CaseStep(
    path="statement",
    name="statement",
    service=cases.case_statement,
    body=StatementIn,
    by_authority=False,
    fields=("statement",),
    done="statement",
    summary="当事人提交陈述申辩（期限内）",
)
DECISION = CaseStep(
    path="decision",
    name="decide",
    service=cases.case_decide,
    body=DecisionIn,
    by_authority=True,
    fields=("decision", "outcome", "reason"),
    done="decided",
    summary="同级或上级法制机构作出决定（维持、变更或不予处理，须写明理由）",
    description=(
        "只有当事人所在单位同级或上级的法制机构（或发证机关）管理员可以决定，否则 403 并说明原因。"
        "考核结果更正后不再连续两年不合格时，只能不予处理（422 并说明原因）。"
        "维持或变更时立即生效：取消或暂停执法资格，调离执法岗位时结束其执法任职，按政策处理证件并记录重新持证条件。"
    ),
    form="decision",
)
REVIEW_REQUEST = CaseStep(
    path="review-request",
    name="review_request",
    service=cases.case_request_review,
    body=ReviewRequestIn,
    by_authority=False,
    fields=("request",),
    done="review",
    summary="当事人申请复核（决定后规定天数内）",
)
REVIEW_DECISION = CaseStep(
    path="review-decision",
    name="review_decision",
    service=cases.case_review_decide,
    body=ReviewDecisionIn,
    by_authority=True,
    fields=("result", "reason"),
    done="reviewed",
    summary="复核决定（维持或撤销原决定，同级或上级法制机构作出）",
    form="review",
)
CASE_STEPS = (STATEMENT, DECISION, REVIEW_REQUEST, REVIEW_DECISION)
