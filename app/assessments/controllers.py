"""HTTP for annual assessment and exit: the JSON API under /api and the HTML pages, side by side."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, get, post
from litestar.datastructures import State, UploadFile
from litestar.enums import MediaType, RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, FromQuery, QueryParameter
from litestar.response import Redirect, Response, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.services import agency_tree
from app.assessments import importer
from app.assessments import services as svc
from app.assessments.importer import ImportFileError
from app.assessments.rules import CaseStatus, Decision, ExitOutcome, RatingStatus, Remedy, ReviewResult
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
from app.lib import clock
from app.lib.errors import DomainError, NotFound
from app.lib.guards import require_admin, require_authority, require_login, require_officer
from app.lib.web import Pager, form_to_struct, page_args, principal_of, render

Req = Request[Any, Any, Any]
Year = Annotated[int | None, QueryParameter(ge=2000, le=2100, description="考核年度")]
PageNo = Annotated[int, QueryParameter(ge=1, le=100000)]
PerPage = Annotated[int, QueryParameter(ge=1, le=200)]
Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
MultipartForm = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]


class ImportFileProblem(DomainError):
    status_code = 400
    title = "文件无法读取"


def _year(year: int | None) -> int:
    return year or clock.today().year


def _years() -> list[int]:
    this = clock.today().year
    return list(range(this, this - 6, -1))


# ================================================================= JSON API


class RatingApi(Controller):
    path = "/api/assessments/ratings"
    tags = ["年度考核"]
    guards = [require_admin]

    @get("/", summary="考核结果列表（本单位及下级单位；默认不含已被更正的结果）")
    async def list_ratings(
        self,
        request: Req,
        db: AsyncSession,
        year: Year = None,
        agency_id: FromQuery[int | None] = None,
        grade: FromQuery[str] = "",
        status: FromQuery[RatingStatus | None] = None,
        page: PageNo = 1,
        per_page: PerPage = 50,
    ) -> RatingPage:
        items, total = await svc.rating_list(
            db,
            principal_of(request),
            year=year,
            agency_id=agency_id,
            grade=grade,
            status=status,
            page=page,
            per_page=per_page,
        )
        return RatingPage(items=items, total=total, page=page, per_page=per_page)

    @post(
        "/",
        summary="登记考核结果（草稿；confirm=true 时直接确认锁定）",
        description="同一人员同一年度只有一条有效结果：已有草稿时修改草稿；已确认的结果须办理更正（409）。",
        status_code=201,
    )
    async def save(self, request: Req, db: AsyncSession, data: RatingIn) -> RatingOut:
        p = principal_of(request)
        r = await svc.rating_save(db, principal=p, data=data)
        return await svc.rating_get(db, p, r.id)

    @get("/{rating_id:int}", summary="考核结果详情")
    async def get_rating(self, request: Req, db: AsyncSession, rating_id: int) -> RatingOut:
        return await svc.rating_get(db, principal_of(request), rating_id)

    @post("/{rating_id:int}/confirm", summary="确认（锁定）考核结果", status_code=200)
    async def confirm(self, request: Req, db: AsyncSession, rating_id: int) -> RatingOut:
        p = principal_of(request)
        await svc.rating_confirm(db, principal=p, rating_id=rating_id)
        return await svc.rating_get(db, p, rating_id)

    @post(
        "/{rating_id:int}/correction",
        summary="更正已确认的考核结果（新增一条结果并写明原因，原结果保留）",
        status_code=201,
    )
    async def correct(self, request: Req, db: AsyncSession, rating_id: int, data: CorrectionIn) -> RatingOut:
        p = principal_of(request)
        new = await svc.rating_correct(db, principal=p, rating_id=rating_id, data=data)
        return await svc.rating_get(db, p, new.id)

    @post("/confirm-all", summary="确认某年度本单位及下级单位的全部草稿", status_code=200)
    async def confirm_all(self, request: Req, db: AsyncSession, data: ConfirmAllIn) -> ConfirmAllOut:
        n = await svc.rating_confirm_all(
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
        db: AsyncSession,
        state: State,
        data: Annotated[ImportUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
        dry_run: Annotated[bool, QueryParameter(description="true：只校验不写入")] = True,
        year: Year = None,
    ) -> Response[ImportReport]:
        content, filename = await _upload(data.file)
        try:
            report = await importer.rating_import(
                db,
                principal=principal_of(request),
                data=content,
                filename=filename,
                year=year,
                dry_run=dry_run,
                max_bytes=state.settings.max_upload_bytes,
            )
        except ImportFileError as exc:
            raise ImportFileProblem(exc.message, field="file") from exc
        return Response(report, status_code=200 if report.ok else 422)


@dataclass
class ImportUpload:
    """multipart/form-data with the file in the field ``file``."""

    file: UploadFile


async def _upload(upload: Any) -> tuple[bytes, str]:
    if not isinstance(upload, UploadFile):
        raise ImportFileProblem("请选择要上传的文件（CSV 或 Excel .xlsx）", field="file")
    content = await upload.read()
    if not content and not upload.filename:
        raise ImportFileProblem("请选择要上传的文件（CSV 或 Excel .xlsx）", field="file")
    return content, upload.filename or ""


class CaseApi(Controller):
    path = "/api/assessments/cases"
    tags = ["年度考核"]

    @get("/", guards=[require_login], summary="退出案件列表（管理员：本单位及下级；执法人员：本人）")
    async def list_cases(
        self,
        request: Req,
        db: AsyncSession,
        status: FromQuery[CaseStatus | None] = None,
        year: Year = None,
        page: PageNo = 1,
        per_page: PerPage = 50,
    ) -> CasePage:
        items, total = await svc.case_list(
            db, principal_of(request), status=status, year=year, page=page, per_page=per_page
        )
        return CasePage(items=items, total=total, page=page, per_page=per_page)

    @get("/{case_id:int}", guards=[require_login], summary="退出案件详情及办理时间线")
    async def get_case(self, request: Req, db: AsyncSession, case_id: int) -> CaseOut:
        return await svc.case_detail(db, principal_of(request), case_id)

    @post(
        "/{case_id:int}/statement",
        guards=[require_officer],
        summary="当事人提交陈述申辩（期限内）",
        status_code=200,
    )
    async def statement(self, request: Req, db: AsyncSession, case_id: int, data: StatementIn) -> CaseOut:
        p = principal_of(request)
        await svc.case_statement(db, principal=p, case_id=case_id, data=data)
        return await svc.case_detail(db, p, case_id)

    @post(
        "/{case_id:int}/decision",
        guards=[require_authority],
        summary="发证机关法制机构作出决定（维持、变更或不予处理，须写明理由）",
        description="维持或变更为取消执法资格时，立即取消当事人的执法资格并处理其证件。",
        status_code=200,
    )
    async def decide(self, request: Req, db: AsyncSession, case_id: int, data: DecisionIn) -> CaseOut:
        p = principal_of(request)
        await svc.case_decide(db, principal=p, case_id=case_id, data=data)
        return await svc.case_detail(db, p, case_id)

    @post(
        "/{case_id:int}/review-request",
        guards=[require_officer],
        summary="当事人申请复核（决定后规定天数内）",
        status_code=200,
    )
    async def review_request(
        self, request: Req, db: AsyncSession, case_id: int, data: ReviewRequestIn
    ) -> CaseOut:
        p = principal_of(request)
        await svc.case_request_review(db, principal=p, case_id=case_id, data=data)
        return await svc.case_detail(db, p, case_id)

    @post(
        "/{case_id:int}/review-decision",
        guards=[require_authority],
        summary="复核决定（维持或撤销原决定）",
        status_code=200,
    )
    async def review_decision(
        self, request: Req, db: AsyncSession, case_id: int, data: ReviewDecisionIn
    ) -> CaseOut:
        p = principal_of(request)
        await svc.case_review_decide(db, principal=p, case_id=case_id, data=data)
        return await svc.case_detail(db, p, case_id)


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
    async def close(self, request: Req, db: AsyncSession, data: CloseYearIn) -> CloseYearOut:
        return await svc.close_year(db, principal=principal_of(request), year=data.year)


class OfficerAssessmentApi(Controller):
    path = "/api/assessments/officers"
    tags = ["年度考核"]
    guards = [require_admin]

    @get("/{officer_id:int}", summary="执法人员的历年考核结果、不合格后果、退出案件及学时不足标记")
    async def officer(self, request: Req, db: AsyncSession, officer_id: int) -> OfficerAssessment:
        return await svc.officer_assessment(db, principal_of(request), officer_id)


class MyAssessmentApi(Controller):
    path = "/api/my/assessments"
    tags = ["年度考核"]
    guards = [require_officer]

    @get("/", summary="本人的历年考核结果、退出案件及学时不足标记")
    async def mine(self, request: Req, db: AsyncSession) -> OfficerAssessment:
        p = principal_of(request)
        if p.officer_id is None:
            raise NotFound("您的账号未关联执法人员")
        return await svc.officer_assessment(db, p, p.officer_id)


# ================================================================= HTML pages

RATING_FIELDS = (
    "grade",
    "year",
    "daily_score",
    "legal_test_score",
    "standard_test_score",
    "case_review_score",
    "comment",
    "remedy",
    "reason",
    "officer_id",
)


class AssessmentPages(Controller):
    path = "/assessments"
    include_in_schema = False
    guards = [require_admin]

    @get("/")
    async def index(
        self,
        request: Req,
        db: AsyncSession,
        year: Year = None,
        agency_id: FromQuery[int | None] = None,
        grade: FromQuery[str] = "",
        status: FromQuery[RatingStatus | None] = None,
        page: PageNo = 1,
    ) -> Template:
        p = principal_of(request)
        y = _year(year)
        page, per_page = page_args(page, 50)
        items, total = await svc.rating_list(
            db, p, year=y, agency_id=agency_id, grade=grade, status=status, page=page, per_page=per_page
        )
        return render(
            "assessments/ratings.html",
            request,
            items=items,
            pg=Pager(page, per_page, total),
            year=y,
            years=_years(),
            agency_id=agency_id,
            grade=grade,
            status=status.value if status else "",
            statuses=RatingStatus.choices(),
            agencies=await agency_tree(db, p),
            query={k: v for k, v in request.query_params.items() if k != "page"},
            msg=request.query_params.get("msg", ""),
        )

    @post("/confirm-all", media_type=MediaType.HTML)
    async def confirm_all(self, request: Req, db: AsyncSession, data: Form) -> Redirect:
        payload = form_to_struct(data, ConfirmAllIn)
        n = await svc.rating_confirm_all(db, principal=principal_of(request), year=payload.year)
        return Redirect(f"/assessments?year={payload.year}&msg=confirmed{n}", status_code=303)

    # ------------------------------------------------------------ an officer's record and rating entry

    async def _officer_page(
        self,
        request: Req,
        db: AsyncSession,
        officer_id: int,
        *,
        form: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        status: int = 200,
    ) -> Template:
        view = await svc.officer_assessment(db, principal_of(request), officer_id)
        return render(
            "assessments/officer.html",
            request,
            status_code=status,
            view=view,
            form=form or {"year": clock.today().year - 1 if clock.today().month < 4 else clock.today().year},
            errors=errors or {},
            years=_years(),
            remedies=Remedy.choices(),
            admin=True,
            msg=request.query_params.get("msg", ""),
        )

    @get("/officers/{officer_id:int}")
    async def officer(self, request: Req, db: AsyncSession, officer_id: int) -> Template:
        return await self._officer_page(request, db, officer_id)

    @post("/officers/{officer_id:int}", media_type=MediaType.HTML)
    async def save_rating(self, request: Req, db: AsyncSession, officer_id: int, data: Form) -> Any:
        try:
            payload = form_to_struct({**data, "officer_id": officer_id}, RatingIn, booleans=("confirm",))
            await svc.rating_save(db, principal=principal_of(request), data=payload)
        except DomainError as exc:
            await db.rollback()
            return await self._officer_page(
                request,
                db,
                officer_id,
                form=data,
                errors=exc.form_errors(RATING_FIELDS),
                status=exc.status_code,
            )
        return Redirect(f"/assessments/officers/{officer_id}?msg=saved", status_code=303)

    # ------------------------------------------------------------ one rating: confirm, correct

    async def _rating_page(
        self,
        request: Req,
        db: AsyncSession,
        rating_id: int,
        *,
        form: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        status: int = 200,
    ) -> Template:
        p = principal_of(request)
        rating = await svc.rating_get(db, p, rating_id)
        view = await svc.officer_assessment(db, svc.system_principal(), rating.officer_id)
        return render(
            "assessments/rating.html",
            request,
            status_code=status,
            rating=rating,
            grades=view.grades,
            history=[r for r in view.ratings if r.year == rating.year],
            remedies=Remedy.choices(),
            form=form or {},
            errors=errors or {},
            msg=request.query_params.get("msg", ""),
        )

    @get("/ratings/{rating_id:int}")
    async def rating(self, request: Req, db: AsyncSession, rating_id: int) -> Template:
        return await self._rating_page(request, db, rating_id)

    @post("/ratings/{rating_id:int}/confirm", media_type=MediaType.HTML)
    async def confirm(self, request: Req, db: AsyncSession, rating_id: int) -> Any:
        try:
            await svc.rating_confirm(db, principal=principal_of(request), rating_id=rating_id)
        except DomainError as exc:
            await db.rollback()
            return await self._rating_page(
                request, db, rating_id, errors={"form": exc.message}, status=exc.status_code
            )
        return Redirect(f"/assessments/ratings/{rating_id}?msg=confirmed", status_code=303)

    @post("/ratings/{rating_id:int}/correct", media_type=MediaType.HTML)
    async def correct(self, request: Req, db: AsyncSession, rating_id: int, data: Form) -> Any:
        try:
            payload = form_to_struct(data, CorrectionIn)
            new = await svc.rating_correct(
                db, principal=principal_of(request), rating_id=rating_id, data=payload
            )
        except DomainError as exc:
            await db.rollback()
            return await self._rating_page(
                request,
                db,
                rating_id,
                form=data,
                errors=exc.form_errors(RATING_FIELDS),
                status=exc.status_code,
            )
        return Redirect(f"/assessments/ratings/{new.id}?msg=corrected", status_code=303)

    # ------------------------------------------------------------ import

    def _import_page(
        self,
        request: Req,
        *,
        status: int = 200,
        error: str = "",
        report: ImportReport | None = None,
        year: Any = None,
    ) -> Template:
        return render(
            "assessments/import.html",
            request,
            status_code=status,
            headers=importer.TEMPLATE_HEADERS,
            max_rows=importer.MAX_IMPORT_ROWS,
            years=_years(),
            year=year or clock.today().year,
            error=error,
            report=report,
        )

    @get("/import")
    async def import_form(self, request: Req) -> Template:
        return self._import_page(request)

    @get("/import/template.csv")
    async def import_template(self) -> Response[bytes]:
        return Response(
            importer.template_csv(),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": 'attachment; filename="ratings-template.csv"; '
                f"filename*=UTF-8''{quote('考核结果导入模板.csv')}",
                "Cache-Control": "no-store",
            },
        )

    @post("/import", media_type=MediaType.HTML)
    async def import_file(
        self, request: Req, db: AsyncSession, state: State, data: MultipartForm
    ) -> Template:
        form = {k: v for k, v in data.items() if isinstance(v, str)}
        raw_year = str(form.get("year", "")).strip()
        year = int(raw_year) if raw_year.isdigit() else None
        try:
            content, filename = await _upload(data.get("file"))
            report = await importer.rating_import(
                db,
                principal=principal_of(request),
                data=content,
                filename=filename,
                year=year,
                dry_run=bool(form.get("dry_run")),
                max_bytes=state.settings.max_upload_bytes,
            )
        except ImportFileError as exc:
            return self._import_page(request, status=400, error=exc.message, year=year)
        except DomainError as exc:
            return self._import_page(request, status=exc.status_code, error=exc.message, year=year)
        return self._import_page(request, status=200 if report.ok else 422, report=report, year=year)

    # ------------------------------------------------------------ exit cases

    @get("/cases")
    async def cases(
        self,
        request: Req,
        db: AsyncSession,
        status: FromQuery[CaseStatus | None] = None,
        year: Year = None,
        page: PageNo = 1,
    ) -> Template:
        page, per_page = page_args(page, 50)
        items, total = await svc.case_list(
            db, principal_of(request), status=status, year=year, page=page, per_page=per_page
        )
        return render(
            "assessments/cases.html",
            request,
            items=items,
            pg=Pager(page, per_page, total),
            status=status.value if status else "",
            statuses=CaseStatus.choices(),
            year=year,
            query={k: v for k, v in request.query_params.items() if k != "page"},
        )

    async def _case_page(
        self,
        request: Req,
        db: AsyncSession,
        case_id: int,
        *,
        form: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        status: int = 200,
    ) -> Template:
        case = await svc.case_detail(db, principal_of(request), case_id)
        return render(
            "assessments/case.html",
            request,
            status_code=status,
            case=case,
            admin=True,
            decisions=Decision.choices(),
            outcomes=ExitOutcome.choices(),
            review_results=ReviewResult.choices(),
            today=clock.today(),
            form=form or {},
            errors=errors or {},
            msg=request.query_params.get("msg", ""),
        )

    @get("/cases/{case_id:int}")
    async def case(self, request: Req, db: AsyncSession, case_id: int) -> Template:
        return await self._case_page(request, db, case_id)

    @post("/cases/{case_id:int}/decision", guards=[require_authority], media_type=MediaType.HTML)
    async def decide(self, request: Req, db: AsyncSession, case_id: int, data: Form) -> Any:
        try:
            payload = form_to_struct(data, DecisionIn)
            await svc.case_decide(db, principal=principal_of(request), case_id=case_id, data=payload)
        except DomainError as exc:
            await db.rollback()
            return await self._case_page(
                request,
                db,
                case_id,
                form={**data, "action": "decision"},
                errors=exc.form_errors(("decision", "outcome", "reason")),
                status=exc.status_code,
            )
        return Redirect(f"/assessments/cases/{case_id}?msg=decided", status_code=303)

    @post("/cases/{case_id:int}/review-decision", guards=[require_authority], media_type=MediaType.HTML)
    async def review_decide(self, request: Req, db: AsyncSession, case_id: int, data: Form) -> Any:
        try:
            payload = form_to_struct(data, ReviewDecisionIn)
            await svc.case_review_decide(db, principal=principal_of(request), case_id=case_id, data=payload)
        except DomainError as exc:
            await db.rollback()
            return await self._case_page(
                request,
                db,
                case_id,
                form={**data, "action": "review"},
                errors=exc.form_errors(("result", "reason")),
                status=exc.status_code,
            )
        return Redirect(f"/assessments/cases/{case_id}?msg=reviewed", status_code=303)

    # ------------------------------------------------------------ the year-end close

    @get("/close-year", guards=[require_authority])
    async def close_year_page(self, request: Req, db: AsyncSession) -> Template:
        closings = await svc.closing_list(db, principal_of(request))
        return render(
            "assessments/close_year.html",
            request,
            closings=closings,
            years=_years(),
            default_year=clock.today().year - 1,
            error="",
        )

    @post("/close-year", guards=[require_authority], media_type=MediaType.HTML)
    async def close_year(self, request: Req, db: AsyncSession, data: Form) -> Any:
        try:
            payload = form_to_struct(data, CloseYearIn)
            await svc.close_year(db, principal=principal_of(request), year=payload.year)
        except DomainError as exc:
            await db.rollback()
            closings = await svc.closing_list(db, principal_of(request))
            return render(
                "assessments/close_year.html",
                request,
                status_code=exc.status_code,
                closings=closings,
                years=_years(),
                default_year=clock.today().year - 1,
                error=exc.message,
            )
        return Redirect("/assessments/close-year?msg=done", status_code=303)


class MyAssessmentPages(Controller):
    path = "/my/assessments"
    include_in_schema = False
    guards = [require_officer]

    @get("/")
    async def mine(self, request: Req, db: AsyncSession) -> Template:
        p = principal_of(request)
        if p.officer_id is None:
            raise NotFound("您的账号未关联执法人员")
        view = await svc.officer_assessment(db, p, p.officer_id)
        return render("assessments/officer.html", request, view=view, admin=False, form={}, errors={}, msg="")

    async def _case_page(
        self,
        request: Req,
        db: AsyncSession,
        case_id: int,
        *,
        form: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        status: int = 200,
    ) -> Template:
        case = await svc.case_detail(db, principal_of(request), case_id)
        return render(
            "assessments/case.html",
            request,
            status_code=status,
            case=case,
            admin=False,
            today=clock.today(),
            form=form or {},
            errors=errors or {},
            msg=request.query_params.get("msg", ""),
        )

    @get("/cases/{case_id:int}")
    async def case(self, request: Req, db: AsyncSession, case_id: int) -> Template:
        return await self._case_page(request, db, case_id)

    @post("/cases/{case_id:int}/statement", media_type=MediaType.HTML)
    async def statement(self, request: Req, db: AsyncSession, case_id: int, data: Form) -> Any:
        try:
            payload = form_to_struct(data, StatementIn)
            await svc.case_statement(db, principal=principal_of(request), case_id=case_id, data=payload)
        except DomainError as exc:
            await db.rollback()
            return await self._case_page(
                request,
                db,
                case_id,
                form=data,
                errors=exc.form_errors(("statement",)),
                status=exc.status_code,
            )
        return Redirect(f"/my/assessments/cases/{case_id}?msg=statement", status_code=303)

    @post("/cases/{case_id:int}/review-request", media_type=MediaType.HTML)
    async def review_request(self, request: Req, db: AsyncSession, case_id: int, data: Form) -> Any:
        try:
            payload = form_to_struct(data, ReviewRequestIn)
            await svc.case_request_review(db, principal=principal_of(request), case_id=case_id, data=payload)
        except DomainError as exc:
            await db.rollback()
            return await self._case_page(
                request, db, case_id, form=data, errors=exc.form_errors(("request",)), status=exc.status_code
            )
        return Redirect(f"/my/assessments/cases/{case_id}?msg=review", status_code=303)


ROUTES: list[Any] = [
    RatingApi,
    CaseApi,
    CloseYearApi,
    OfficerAssessmentApi,
    MyAssessmentApi,
    AssessmentPages,
    MyAssessmentPages,
]
