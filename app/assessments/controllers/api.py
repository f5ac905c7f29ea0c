"""The JSON API of annual assessment and exit (/api/assessments, /api/my/assessments)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Annotated

from litestar import Controller, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, MultipartBody, QueryParameter
from litestar.response import Response

from app.assessments import selectors
from app.assessments.controllers.params import (
    CASE_FILTER,
    RATING_FILTER,
    CaseQuery,
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
    DecisionIn,
    ImportReport,
    OfficerAssessment,
    RatingIn,
    RatingOut,
    RatingPage,
    ReviewDecisionIn,
    ReviewRequestIn,
    StatementIn,
)
from app.assessments.services import cases, closing, ratings
from app.lib.guards import require_admin, require_authority, require_login, require_officer
from app.lib.uploads import FileUpload, dry_run_of
from app.lib.web import PAGING, Db, Paging, Req, own_officer_id, principal_of


class RatingApi(Controller):
    path = "/api/assessments/ratings"
    tags = ["年度考核"]
    guards = [require_admin]

    @get(
        "/",
        summary="考核结果列表（本单位及下级单位；默认不含已被更正的结果）",
        dependencies={**RATING_FILTER, **PAGING},
    )
    async def list_ratings(self, request: Req, db: Db, f: RatingQuery, paging: Paging) -> RatingPage:
        p = principal_of(request)
        items, total = await selectors.rating_list(
            db, p, **asdict(f), page=paging.page, per_page=paging.per_page
        )
        return paging.of(RatingPage, items, total)

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


async def _case_after(
    request: Req, db: Db, case_id: int, step: Callable[..., Awaitable[object]], data: object
) -> CaseOut:
    """A step of an exit case (陈述申辩, 决定, 申请复核, 复核决定), answered with the case as it stands."""
    p = principal_of(request)
    await step(db, principal=p, case_id=case_id, data=data)
    return await selectors.case_detail(db, p, case_id)


class CaseApi(Controller):
    path = "/api/assessments/cases"
    tags = ["年度考核"]

    @get(
        "/",
        guards=[require_login],
        summary="退出案件列表（管理员：本单位及下级；执法人员：本人）",
        dependencies={**CASE_FILTER, **PAGING},
    )
    async def list_cases(self, request: Req, db: Db, f: CaseQuery, paging: Paging) -> CasePage:
        p = principal_of(request)
        items, total = await selectors.case_list(
            db, p, **asdict(f), page=paging.page, per_page=paging.per_page
        )
        return paging.of(CasePage, items, total)

    @get("/{case_id:int}", guards=[require_login], summary="退出案件详情及办理时间线")
    async def get_case(self, request: Req, db: Db, case_id: FromPath[int]) -> CaseOut:
        return await selectors.case_detail(db, principal_of(request), case_id)

    @post(
        "/{case_id:int}/statement",
        guards=[require_officer],
        summary="当事人提交陈述申辩（期限内）",
        status_code=200,
    )
    async def statement(
        self, request: Req, db: Db, case_id: FromPath[int], data: JSONBody[StatementIn]
    ) -> CaseOut:
        return await _case_after(request, db, case_id, cases.case_statement, data)

    @post(
        "/{case_id:int}/decision",
        guards=[require_admin],
        summary="同级或上级法制机构作出决定（维持、变更或不予处理，须写明理由）",
        description=(
            "只有当事人所在单位同级或上级的法制机构（或发证机关）管理员可以决定，否则 403 并说明原因。"
            "考核结果更正后不再连续两年不合格时，只能不予处理（422 并说明原因）。"
            "维持或变更时立即生效：取消或暂停执法资格，调离执法岗位时结束其执法任职，按政策处理证件并记录重新持证条件。"
        ),
        status_code=200,
    )
    async def decide(
        self, request: Req, db: Db, case_id: FromPath[int], data: JSONBody[DecisionIn]
    ) -> CaseOut:
        return await _case_after(request, db, case_id, cases.case_decide, data)

    @post(
        "/{case_id:int}/review-request",
        guards=[require_officer],
        summary="当事人申请复核（决定后规定天数内）",
        status_code=200,
    )
    async def review_request(
        self, request: Req, db: Db, case_id: FromPath[int], data: JSONBody[ReviewRequestIn]
    ) -> CaseOut:
        return await _case_after(request, db, case_id, cases.case_request_review, data)

    @post(
        "/{case_id:int}/review-decision",
        guards=[require_admin],
        summary="复核决定（维持或撤销原决定，同级或上级法制机构作出）",
        status_code=200,
    )
    async def review_decision(
        self, request: Req, db: Db, case_id: FromPath[int], data: JSONBody[ReviewDecisionIn]
    ) -> CaseOut:
        return await _case_after(request, db, case_id, cases.case_review_decide, data)


class CloseYearApi(Controller):
    path = "/api/assessments/close-year"
    tags = ["年度考核"]
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
    path = "/api/assessments/officers"
    tags = ["年度考核"]
    guards = [require_admin]

    @get("/{officer_id:int}", summary="执法人员的历年考核结果、不合格后果、退出案件及学时不足标记")
    async def officer(self, request: Req, db: Db, officer_id: FromPath[int]) -> OfficerAssessment:
        return await selectors.officer_assessment(db, principal_of(request), officer_id)


class MyAssessmentApi(Controller):
    path = "/api/my/assessments"
    tags = ["年度考核"]
    guards = [require_officer]

    @get("/", summary="本人的历年考核结果、退出案件及学时不足标记")
    async def mine(self, request: Req, db: Db) -> OfficerAssessment:
        return await selectors.officer_assessment(db, principal_of(request), own_officer_id(request))
