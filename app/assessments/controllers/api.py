"""The JSON API of annual assessment and exit (/api/assessments, /api/my/assessments): ``API``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated, Any, TypeVar

from litestar import Controller, Router, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, MultipartBody, QueryParameter
from litestar.response import Response

from app.assessments import selectors
from app.assessments.controllers.params import (
    CASE_FILTER,
    CASE_STEPS,
    RATING_FILTER,
    CaseQuery,
    CaseStep,
    RatingQuery,
    Year,
    import_sheet,
)
from app.assessments.schemas import (
    CaseOut,
    CasePage,
    CloseYearIn,
    CloseYearOut,
    ConfirmAllIn,
    ConfirmAllOut,
    CorrectionIn,
    ImportReport,
    OfficerAssessment,
    RatingIn,
    RatingOut,
    RatingPage,
)
from app.assessments.services import closing, ratings
from app.lib.guards import require_admin, require_authority, require_login, require_officer
from app.lib.uploads import FileUpload, dry_run_of
from app.lib.web import PAGING, Db, PageRequest, Paging, Req, own_officer_id, principal_of

P = TypeVar("P")


async def listed(
    paging: PageRequest, page_type: Callable[..., P], fetch: Callable[..., Awaitable[tuple[list[Any], int]]]
) -> P:
    """A JSON list's answer: ``fetch(page=..., per_page=...)`` gives the asked page's items and their
    total (``list_page``'s JSON counterpart)."""
    items, total = await fetch(page=paging.page, per_page=paging.per_page)
    return paging.of(page_type, items, total)


class RatingApi(Controller):
    path = "/assessments/ratings"
    guards = [require_admin]

    @get(
        "/",
        summary="考核结果列表（本单位及下级单位；默认不含已被更正的结果）",
        dependencies={**RATING_FILTER, **PAGING},
    )
    async def list_ratings(self, request: Req, db: Db, f: RatingQuery, paging: Paging) -> RatingPage:
        fetch = partial(selectors.rating_list, db, principal_of(request), f)
        return await listed(paging, RatingPage, fetch)

    @post(
        "/",
        summary="登记考核结果（草稿；confirm=true 时直接确认锁定）",
        description="同一人员同一年度只有一条有效结果：已有草稿时修改草稿；已确认的结果须办理更正（409）。",
        status_code=201,
    )
    async def save(self, request: Req, db: Db, data: JSONBody[RatingIn]) -> RatingOut:
        p = principal_of(request)
        r = await ratings.rating_save(db, principal=p, data=data)
        return await selectors.rating_get(db, p, r.id)

    @get("/{rating_id:int}", summary="考核结果详情")
    async def get_rating(self, request: Req, db: Db, rating_id: FromPath[int]) -> RatingOut:
        return await selectors.rating_get(db, principal_of(request), rating_id)

    @post("/{rating_id:int}/confirm", summary="确认（锁定）考核结果", status_code=200)
    async def confirm(self, request: Req, db: Db, rating_id: FromPath[int]) -> RatingOut:
        p = principal_of(request)
        await ratings.rating_confirm(db, principal=p, rating_id=rating_id)
        return await selectors.rating_get(db, p, rating_id)

    @post(
        "/{rating_id:int}/correction",
        summary="更正已确认的考核结果（新增一条结果并写明原因，原结果保留）",
        status_code=201,
    )
    async def correct(
        self, request: Req, db: Db, rating_id: FromPath[int], data: JSONBody[CorrectionIn]
    ) -> RatingOut:
        p = principal_of(request)
        new = await ratings.rating_correct(db, principal=p, rating_id=rating_id, data=data)
        return await selectors.rating_get(db, p, new.id)

    @post("/confirm-all", summary="确认某年度本单位及下级单位的全部草稿", status_code=200)
    async def confirm_all(self, request: Req, db: Db, data: JSONBody[ConfirmAllIn]) -> ConfirmAllOut:
        n = await ratings.rating_confirm_all(
            db, principal=principal_of(request), year=data.year, agency_id=data.agency_id
        )
        return ConfirmAllOut(confirmed=n)

    @post(
        "/import",
        summary="批量导入考核结果（CSV / XLSX，按身份证号码匹配人员，导入为草稿）",
        description=(
            "multipart/form-data，文件放在字段 file 中。列：身份证号码、考核等次（必填），姓名（核对用）、考核年度"
            "（或用 year 为整个文件指定）、平时考核、法律知识测试、执法规范测试、案卷评查（0–100）、不合格处理方式"
            "（批评教育 / 离岗培训）、评语。dry_run=true（默认）只校验；false 时全部正确才写入。"
            "有错误行时返回 422，errors 列出行号、列名和原因；文件无法读取时返回 400。"
        ),
        status_code=200,
        responses={
            422: ResponseSpec(data_container=ImportReport, description="文件中有错误行，未写入任何数据")
        },
    )
    async def import_ratings(
        self,
        request: Req,
        db: Db,
        data: MultipartBody[FileUpload],
        dry_run: Annotated[
            bool | None,
            QueryParameter(
                description="true（默认）：只校验不写入；false：校验通过后导入。也可作为表单字段 dry_run 发送"
            ),
        ] = None,
        year: Year = None,
    ) -> Response[ImportReport]:
        report = await import_sheet(
            request, db, data.file, year=year, dry_run=await dry_run_of(request, dry_run)
        )
        return Response(report, status_code=200 if report.ok else 422)


StepBody = Any
"""The body of a case step's handler: each handler resolves it to its step's struct (Litestar's
``signature_namespace``), so the API validates and documents the step's own body."""


def _case_step(step: CaseStep) -> HTTPRouteHandler:
    """POST /{case_id}/<step>: a step of an exit case (陈述申辩, 决定, 申请复核, 复核决定), answered
    with the case as it stands."""

    async def take(request: Req, db: Db, case_id: FromPath[int], data: JSONBody[StepBody]) -> CaseOut:
        p = principal_of(request)
        await step.service(db, principal=p, case_id=case_id, data=data)
        return await selectors.case_detail(db, p, case_id)

    take.__name__ = take.__qualname__ = step.name  # the operationId, as when each was written out
    return post(
        f"/assessments/cases/{{case_id:int}}/{step.path}",
        guards=[step.guard],
        summary=step.summary,
        description=step.description,
        status_code=200,
        signature_namespace={"StepBody": step.body},
    )(take)


class CaseApi(Controller):
    path = "/assessments/cases"

    @get(
        "/",
        guards=[require_login],
        summary="退出案件列表（管理员：本单位及下级；执法人员：本人）",
        dependencies={**CASE_FILTER, **PAGING},
    )
    async def list_cases(self, request: Req, db: Db, f: CaseQuery, paging: Paging) -> CasePage:
        fetch = partial(selectors.case_list, db, principal_of(request), f)
        return await listed(paging, CasePage, fetch)

    @get("/{case_id:int}", guards=[require_login], summary="退出案件详情及办理时间线")
    async def get_case(self, request: Req, db: Db, case_id: FromPath[int]) -> CaseOut:
        return await selectors.case_detail(db, principal_of(request), case_id)


class CloseYearApi(Controller):
    path = "/assessments/close-year"
    guards = [require_authority]

    @post(
        "/",
        summary="年度结转：连续两年考核不合格的人员开立退出案件，标记培训学时不足",
        description="对本发证机关管辖范围内的全部人员一次性处理；可重复执行，不会重复开立案件或重复标记。",
        status_code=200,
    )
    async def close(self, request: Req, db: Db, data: JSONBody[CloseYearIn]) -> CloseYearOut:
        return await closing.close_year(db, principal=principal_of(request), year=data.year)


class OfficerAssessmentApi(Controller):
    path = "/assessments/officers"
    guards = [require_admin]

    @get("/{officer_id:int}", summary="执法人员的历年考核结果、不合格后果、退出案件及学时不足标记")
    async def officer(self, request: Req, db: Db, officer_id: FromPath[int]) -> OfficerAssessment:
        return await selectors.officer_assessment(db, principal_of(request), officer_id)


class MyAssessmentApi(Controller):
    path = "/my/assessments"
    guards = [require_officer]

    @get("/", summary="本人的历年考核结果、退出案件及学时不足标记")
    async def mine(self, request: Req, db: Db) -> OfficerAssessment:
        return await selectors.officer_assessment(db, principal_of(request), own_officer_id(request))


API = Router(
    "/api",
    tags=["年度考核"],
    route_handlers=[
        RatingApi,
        CaseApi,
        *(_case_step(s) for s in CASE_STEPS),
        CloseYearApi,
        OfficerAssessmentApi,
        MyAssessmentApi,
    ],
)
"""The JSON API of the domain, under /api with its one tag."""
