"""HTTP for the training domain: the JSON API under /api and the HTML pages, side by side."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, get, post, put
from litestar.datastructures import State, UploadFile
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, FromQuery, QueryParameter
from litestar.response import Redirect, Response, Stream, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.services import agency_tree
from app.lib import clock
from app.lib.errors import DomainError, Forbidden, NotFound, StaleForm, size_text
from app.lib.guards import require_admin, require_login, require_officer
from app.lib.web import Pager, form_to_struct, page_args, principal_of, render
from app.training import importer
from app.training import services as svc
from app.training.importer import AlreadyImported, AttendanceRejected, ImportRejected
from app.training.rules import ComplianceStatus, TrainingCategory, Verification, format_hours
from app.training.schemas import (
    AmendmentIn,
    AttendanceIn,
    AttendanceResult,
    BatchOut,
    CompliancePage,
    CorrectionOut,
    CourseDetail,
    CourseIn,
    CourseOut,
    CoursePage,
    CourseUpdate,
    ImportPreview,
    ImportReport,
    OfficerYear,
    RecordOut,
    ReversalIn,
)

Req = Request[Any, Any, Any]
Year = Annotated[int | None, QueryParameter(ge=2000, le=2100, description="年度（默认今年）")]
PageNo = Annotated[int, QueryParameter(ge=1, le=100000)]
Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
MultipartForm = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]
HTML_ERROR_LIMIT = 5000
STATUS_FILTERS = [("all", "全部"), ("short", "尚差学时"), ("behind", "进度落后"), ("met", "已达标")]


def _year(year: int | None) -> int:
    return year or clock.today().year


# ================================================================= JSON API


class CourseApi(Controller):
    path = "/api/training/courses"
    tags = ["培训学时"]
    guards = [require_admin]

    @get("/", summary="培训课程列表（本单位、下级及上级单位组织的课程）")
    async def list_courses(
        self,
        request: Req,
        db: AsyncSession,
        year: Year = None,
        q: FromQuery[str] = "",
        category: FromQuery[TrainingCategory | None] = None,
        page: PageNo = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> CoursePage:
        f = svc.CourseFilter(year=year, q=q, category=category)
        items, total = await svc.course_list(db, principal_of(request), f, page=page, per_page=per_page)
        return CoursePage(items=items, total=total, page=page, per_page=per_page)

    @post("/", summary="登记培训课程", status_code=201)
    async def create_course(self, request: Req, db: AsyncSession, data: CourseIn) -> CourseOut:
        p = principal_of(request)
        course = await svc.course_create(db, principal=p, data=data)
        c, agency = await svc.course_get(db, p, course.id)
        return svc.course_out(c, agency.name, can_edit=svc.course_editable(p, agency.path))

    @put(
        "/{course_id:int}",
        summary="修改课程信息（须带 version；已有学时记录的课程不能改学时和类别）",
        description="名称、培训机构、起止日期、核验方式、备注可随时修改（起止日期须包含已登记的培训日期）；"
        "学时和培训类别只能在尚无学时记录时修改，已登记的学时记录不会被改写。每次修改记入审计日志。",
    )
    async def update_course(
        self, request: Req, db: AsyncSession, course_id: int, data: CourseUpdate
    ) -> CourseOut:
        p = principal_of(request)
        await svc.course_update(db, principal=p, course_id=course_id, data=data)
        detail = await svc.course_detail(db, p, course_id, per_page=1)
        return CourseOut(**{k: getattr(detail, k) for k in CourseOut.__struct_fields__})

    @get("/{course_id:int}", summary="课程详情及本单位人员的学时记录")
    async def get_course(
        self,
        request: Req,
        db: AsyncSession,
        course_id: int,
        page: PageNo = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> CourseDetail:
        return await svc.course_detail(db, principal_of(request), course_id, page=page, per_page=per_page)

    @post(
        "/{course_id:int}/attendance",
        summary="登记参训人员（按身份证号码；日期、学时默认取课程的）",
        description="全部正确才登记；有错误时返回 422，errors 中逐行说明原因（行号为 id_numbers 中的序号，从 1 起）。",
        status_code=201,
    )
    async def add_attendance(
        self, request: Req, db: AsyncSession, course_id: int, data: AttendanceIn
    ) -> AttendanceResult:
        p = principal_of(request)
        ids = await importer.attendance_add(db, principal=p, course_id=course_id, data=data)
        created = [line for i in ids for line in await svc.record_detail(db, p, i) if line.id == i]
        return AttendanceResult(created=created)


class RecordApi(Controller):
    path = "/api/training/records"
    tags = ["培训学时"]

    @get(
        "/{record_id:int}",
        guards=[require_login],
        summary="学时记录及其更正链（原记录、冲销、更正）",
    )
    async def get_record(self, request: Req, db: AsyncSession, record_id: int) -> list[RecordOut]:
        return await svc.record_detail(db, principal_of(request), record_id)

    @post(
        "/{record_id:int}/reversal",
        guards=[require_admin],
        summary="冲销学时记录（新增一条负学时记录，须写明原因）",
        status_code=201,
    )
    async def reverse(
        self, request: Req, db: AsyncSession, record_id: int, data: ReversalIn
    ) -> CorrectionOut:
        p = principal_of(request)
        reversal = await svc.record_reverse(db, principal=p, record_id=record_id, data=data)
        return await svc.correction_out(db, p, reversal, None)

    @post(
        "/{record_id:int}/amendment",
        guards=[require_admin],
        summary="更正学时记录（冲销原记录并登记更正后的记录，须写明原因）",
        status_code=201,
    )
    async def amend(self, request: Req, db: AsyncSession, record_id: int, data: AmendmentIn) -> CorrectionOut:
        p = principal_of(request)
        reversal, amendment = await svc.record_amend(db, principal=p, record_id=record_id, data=data)
        return await svc.correction_out(db, p, reversal, amendment)


class OfficerTrainingApi(Controller):
    path = "/api/training/officers"
    tags = ["培训学时"]
    guards = [require_admin]

    @get("/{officer_id:int}", summary="执法人员某年度的学时、达标情况及全部记录")
    async def officer_year(
        self, request: Req, db: AsyncSession, officer_id: int, year: Year = None
    ) -> OfficerYear:
        return await svc.officer_year(db, principal_of(request), officer_id, _year(year))


class MyTrainingApi(Controller):
    path = "/api/my/training"
    tags = ["培训学时"]
    guards = [require_officer]

    @get("/", summary="本人某年度的学时、达标情况及全部记录")
    async def my_year(self, request: Req, db: AsyncSession, year: Year = None) -> OfficerYear:
        p = principal_of(request)
        if p.officer_id is None:
            raise NotFound("您的账号未关联执法人员")
        return await svc.officer_year(db, p, p.officer_id, _year(year))


class ComplianceApi(Controller):
    path = "/api/training/compliance"
    tags = ["培训学时"]
    guards = [require_admin]

    @get(
        "/",
        summary="年度学时达标情况（本单位及下级单位全部在岗人员）",
        description=(
            "status：all 全部、short 尚差学时、behind 进度落后（低于截至 as_of 应完成的学时）、met 已达标。"
            "按尚差学时从多到少排序。"
        ),
    )
    async def compliance(
        self,
        request: Req,
        db: AsyncSession,
        year: Year = None,
        agency_id: FromQuery[int | None] = None,
        status: Annotated[str, QueryParameter(pattern="^(all|short|behind|met)$")] = "all",
        as_of: FromQuery[dt.date | None] = None,
        page: PageNo = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> CompliancePage:
        c = await svc.training_compliance(
            db,
            principal_of(request),
            _year(year),
            agency_id=agency_id,
            status=status,
            as_of=as_of,
            offset=(page - 1) * per_page,
            limit=per_page,
        )
        return CompliancePage(summary=c.summary, items=c.rows, total=c.total, page=page, per_page=per_page)


@dataclass
class ImportUpload:
    """multipart/form-data with the file in the field ``file``."""

    file: UploadFile


async def _read_upload(upload: Any) -> tuple[bytes, str] | None:
    if not isinstance(upload, UploadFile):
        return None
    data = await upload.read()
    if not data and not upload.filename:
        return None
    return data, upload.filename or ""


def _report(
    preview: ImportPreview, *, dry_run: bool, imported: int, batch_id: int | None, status: int | None = None
) -> Response[ImportReport]:
    report = ImportReport(
        **{k: getattr(preview, k) for k in preview.__struct_fields__},
        dry_run=dry_run,
        imported=imported,
        batch_id=batch_id,
    )
    return Response(report, status_code=status or (200 if preview.ok else 422))


class ImportApi(Controller):
    path = "/api/training"
    tags = ["培训学时"]
    guards = [require_admin]

    @post(
        "/import",
        summary="批量导入签到表（CSV / XLSX，按身份证号码匹配人员）",
        description=(
            "上传 multipart/form-data，文件放在字段 file 中。列：身份证号码（必填）、姓名（核对用）、"
            "课程编号或课程名称（或用 course_id 为整个文件指定课程）、培训日期、学时（默认取课程的）。"
            "dry_run=true（默认）只校验不写入；dry_run=false 在全部行都正确时一次性导入，否则不写入任何数据。"
            "有错误行时返回 422，errors 列出每个错误的行号、列名和原因；文件无法读取时返回 400；"
            "同一文件已导入过时返回 409；超过上传大小限制时返回 413。"
        ),
        status_code=200,
        responses={
            422: ResponseSpec(data_container=ImportReport, description="文件中有错误行，未写入任何数据")
        },
    )
    async def import_attendance(
        self,
        request: Req,
        db: AsyncSession,
        state: State,
        data: Annotated[ImportUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
        dry_run: Annotated[
            bool, QueryParameter(description="true：只校验不写入；false：校验通过后导入")
        ] = True,
        year: Year = None,
        course_id: Annotated[
            int | None, QueryParameter(description="为整个文件指定课程（文件中可不填课程列）")
        ] = None,
    ) -> Response[ImportReport]:
        upload = await _read_upload(data.file)
        if upload is None:
            raise importer.ImportFileError("请选择要上传的文件", field="file")
        content, filename = upload
        p = principal_of(request)
        kw: dict[str, Any] = {
            "principal": p,
            "data": content,
            "filename": filename,
            "year": _year(year),
            "course_id": course_id,
            "max_bytes": state.settings.max_upload_bytes,
        }
        if dry_run:
            preview = await importer.training_import_preview(db, **kw)
            return _report(preview, dry_run=True, imported=0, batch_id=None)
        try:
            result = await importer.training_import_commit(db, source="api", **kw)
        except ImportRejected as exc:
            return _report(exc.preview, dry_run=False, imported=0, batch_id=exc.batch_id)
        return _report(result.preview, dry_run=False, imported=result.imported, batch_id=result.batch_id)

    @get("/imports", summary="导入批次（文件哈希、导入人、时间、结果）")
    async def batches(
        self,
        request: Req,
        db: AsyncSession,
        page: PageNo = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> list[BatchOut]:
        items, _ = await svc.batch_list(db, principal_of(request), page=page, per_page=per_page)
        return items

    @get("/imports/{batch_id:int}", summary="导入批次详情")
    async def batch(self, request: Req, db: AsyncSession, batch_id: int) -> BatchOut:
        return svc.batch_out(await svc.batch_get(db, principal_of(request), batch_id))


# ================================================================= HTML pages


COURSE_FIELDS = (
    "title",
    "category",
    "hours",
    "starts_on",
    "ends_on",
    "provider",
    "verification",
    "agency_id",
    "note",
)
ATTENDANCE_FIELDS = ("id_numbers", "attended_on", "hours")
CORRECTION_FIELDS = ("attended_on", "hours", "reason")


def _years() -> list[int]:
    this = clock.today().year
    return list(range(this, this - 6, -1))


class TrainingPages(Controller):
    path = "/training"
    include_in_schema = False
    guards = [require_admin]

    # ------------------------------------------------------------ compliance

    @get("/")
    async def index(
        self,
        request: Req,
        db: AsyncSession,
        year: Year = None,
        agency_id: FromQuery[int | None] = None,
        status: Annotated[str, QueryParameter(pattern="^(all|short|behind|met)$")] = "short",
        page: PageNo = 1,
    ) -> Template:
        p = principal_of(request)
        y = _year(year)
        page, per_page = page_args(page, 100)
        c = await svc.training_compliance(
            db, p, y, agency_id=agency_id, status=status, offset=(page - 1) * per_page, limit=per_page
        )
        agencies = await agency_tree(db, p)
        return render(
            "training/compliance.html",
            request,
            summary=c.summary,
            rows=c.rows,
            pg=Pager(page, per_page, c.total),
            year=y,
            years=_years(),
            agency_id=agency_id,
            status=status,
            statuses=STATUS_FILTERS,
            agencies=agencies,
            in_progress=y >= clock.today().year,
            query={k: v for k, v in request.query_params.items() if k != "page"},
        )

    @get("/compliance.csv")
    async def compliance_csv(
        self,
        request: Req,
        db: AsyncSession,
        year: Year = None,
        agency_id: FromQuery[int | None] = None,
        status: Annotated[str, QueryParameter(pattern="^(all|short|behind|met)$")] = "all",
    ) -> Stream:
        y = _year(year)
        c = await svc.training_compliance(db, principal_of(request), y, agency_id=agency_id, status=status)
        name = f"{y}年度培训学时达标情况.csv"
        return Stream(
            svc.compliance_csv(c),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f"attachment; filename=\"training-{y}.csv\"; filename*=UTF-8''{quote(name)}",
                "Cache-Control": "no-store",
            },
        )

    # ------------------------------------------------------------ courses

    @get("/courses")
    async def courses(
        self,
        request: Req,
        db: AsyncSession,
        year: Year = None,
        q: FromQuery[str] = "",
        category: FromQuery[TrainingCategory | None] = None,
        page: PageNo = 1,
    ) -> Template:
        page, per_page = page_args(page, 50)
        f = svc.CourseFilter(year=year, q=q, category=category)
        items, total = await svc.course_list(db, principal_of(request), f, page=page, per_page=per_page)
        return render(
            "training/courses.html",
            request,
            items=items,
            pg=Pager(page, per_page, total),
            f=f,
            years=_years(),
            categories=TrainingCategory.choices(),
            query={k: v for k, v in request.query_params.items() if k != "page"},
            msg=request.query_params.get("msg"),
        )

    async def _course_form(
        self,
        request: Req,
        db: AsyncSession,
        *,
        form: dict[str, Any],
        errors: dict[str, str],
        status: int = 200,
    ) -> Template:
        agencies = await agency_tree(db, principal_of(request))
        return render(
            "training/course_form.html",
            request,
            status_code=status,
            form=form,
            errors=errors,
            agencies=agencies,
            categories=TrainingCategory.choices(),
            verifications=Verification.choices(),
        )

    @get("/courses/new")
    async def new_course(self, request: Req, db: AsyncSession) -> Template:
        p = principal_of(request)
        return await self._course_form(
            request, db, form={"agency_id": p.agency_id, "starts_on": clock.today().isoformat()}, errors={}
        )

    @post("/courses/new")
    async def create_course(self, request: Req, db: AsyncSession, data: Form) -> Any:
        try:
            payload = form_to_struct(data, CourseIn)
            course = await svc.course_create(db, principal=principal_of(request), data=payload)
        except DomainError as exc:
            await db.rollback()
            return await self._course_form(
                request, db, form=data, errors=exc.form_errors(COURSE_FIELDS), status=exc.status_code
            )
        return Redirect(f"/training/courses/{course.id}?msg=created", status_code=303)

    async def _course_edit_form(
        self,
        request: Req,
        db: AsyncSession,
        course_id: int,
        *,
        form: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        status: int = 200,
    ) -> Template:
        p = principal_of(request)
        detail = await svc.course_detail(db, p, course_id, per_page=1)
        if not detail.can_edit:
            raise Forbidden("只能修改本单位及下级单位组织的课程；上级单位组织的课程请联系组织单位修改")
        if form is None:
            form = {
                "version": detail.version,
                "title": detail.title,
                "category": detail.category.value,
                "hours": format_hours(round(detail.hours * 10)),
                "starts_on": detail.starts_on.isoformat(),
                "ends_on": detail.ends_on.isoformat(),
                "provider": detail.provider,
                "verification": detail.verification.value,
                "note": detail.note,
            }
        return render(
            "training/course_form.html",
            request,
            status_code=status,
            form=form,
            errors=errors or {},
            agencies=[],
            categories=TrainingCategory.choices(),
            verifications=Verification.choices(),
            course=detail,
        )

    @get("/courses/{course_id:int}/edit")
    async def edit_course(self, request: Req, db: AsyncSession, course_id: int) -> Template:
        return await self._course_edit_form(request, db, course_id)

    @post("/courses/{course_id:int}/edit")
    async def update_course(self, request: Req, db: AsyncSession, course_id: int, data: Form) -> Any:
        try:
            payload = form_to_struct(data, CourseUpdate)
            await svc.course_update(db, principal=principal_of(request), course_id=course_id, data=payload)
        except (NotFound, Forbidden):
            raise
        except StaleForm as exc:
            # Someone saved in between: show the course as it is now, with the reason on top.
            await db.rollback()
            return await self._course_edit_form(
                request, db, course_id, errors={"form": exc.message}, status=exc.status_code
            )
        except DomainError as exc:
            await db.rollback()
            return await self._course_edit_form(
                request,
                db,
                course_id,
                form=data,
                errors=exc.form_errors(COURSE_FIELDS),
                status=exc.status_code,
            )
        return Redirect(f"/training/courses/{course_id}?msg=updated", status_code=303)

    async def _course_page(
        self,
        request: Req,
        db: AsyncSession,
        course_id: int,
        *,
        page: int = 1,
        form: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        rows: list[Any] | None = None,
        status: int = 200,
    ) -> Template:
        page, per_page = page_args(page, 100)
        detail = await svc.course_detail(db, principal_of(request), course_id, page=page, per_page=per_page)
        return render(
            "training/course_detail.html",
            request,
            status_code=status,
            course=detail,
            pg=Pager(page, per_page, detail.records_total),
            form=form or {},
            errors=errors or {},
            row_errors=rows or [],
            msg=request.query_params.get("msg"),
            query={},
        )

    @get("/courses/{course_id:int}")
    async def course(self, request: Req, db: AsyncSession, course_id: int, page: PageNo = 1) -> Template:
        return await self._course_page(request, db, course_id, page=page)

    @post("/courses/{course_id:int}/attendance")
    async def add_attendance(self, request: Req, db: AsyncSession, course_id: int, data: Form) -> Any:
        p = principal_of(request)
        await svc.course_get(db, p, course_id)
        raw = str(data.get("id_numbers", ""))
        form = {k: data.get(k, "") for k in ("id_numbers", "attended_on", "hours")}
        try:
            fields = {
                "id_numbers": [line for line in raw.replace(",", "\n").replace("，", "\n").splitlines()],
                "attended_on": data.get("attended_on") or None,
                "hours": data.get("hours") or None,
            }
            payload = form_to_struct({k: v for k, v in fields.items() if v is not None}, AttendanceIn)
            ids = await importer.attendance_add(db, principal=p, course_id=course_id, data=payload)
        except AttendanceRejected as exc:
            return await self._course_page(
                request,
                db,
                course_id,
                form=form,
                errors={"id_numbers": exc.message},
                rows=exc.rows,
                status=exc.status_code,
            )
        except DomainError as exc:
            await db.rollback()
            return await self._course_page(
                request,
                db,
                course_id,
                form=form,
                errors=exc.form_errors(ATTENDANCE_FIELDS),
                status=exc.status_code,
            )
        return Redirect(f"/training/courses/{course_id}?msg=added{len(ids)}", status_code=303)

    # ------------------------------------------------------------ an officer's ledger

    @get("/officers/{officer_id:int}")
    async def officer(self, request: Req, db: AsyncSession, officer_id: int, year: Year = None) -> Template:
        view = await svc.officer_year(db, principal_of(request), officer_id, _year(year))
        return render(
            "training/officer_year.html",
            request,
            view=view,
            years=_years(),
            admin=True,
            base_url=f"/training/officers/{officer_id}",
            fmt=format_hours,
        )

    # ------------------------------------------------------------ corrections

    async def _record_page(
        self,
        request: Req,
        db: AsyncSession,
        record_id: int,
        *,
        form: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        status: int = 200,
    ) -> Template:
        p = principal_of(request)
        chain = await svc.record_detail(db, p, record_id)
        record = next(line for line in chain if line.id == record_id)
        return render(
            "training/record.html",
            request,
            status_code=status,
            record=record,
            chain=chain,
            form=form or {},
            errors=errors or {},
            msg=request.query_params.get("msg"),
        )

    @get("/records/{record_id:int}")
    async def record(self, request: Req, db: AsyncSession, record_id: int) -> Template:
        return await self._record_page(request, db, record_id)

    @post("/records/{record_id:int}/reverse")
    async def reverse(self, request: Req, db: AsyncSession, record_id: int, data: Form) -> Any:
        p = principal_of(request)
        await svc.record_get(db, p, record_id)
        try:
            payload = form_to_struct(data, ReversalIn)
            reversal = await svc.record_reverse(db, principal=p, record_id=record_id, data=payload)
        except DomainError as exc:
            await db.rollback()
            return await self._record_page(
                request,
                db,
                record_id,
                form={**data, "action": "reverse"},
                errors=exc.form_errors(CORRECTION_FIELDS),
                status=exc.status_code,
            )
        return Redirect(f"/training/records/{reversal.id}?msg=reversed", status_code=303)

    @post("/records/{record_id:int}/amend")
    async def amend(self, request: Req, db: AsyncSession, record_id: int, data: Form) -> Any:
        p = principal_of(request)
        await svc.record_get(db, p, record_id)
        try:
            payload = form_to_struct(data, AmendmentIn)
            _reversal, amendment = await svc.record_amend(db, principal=p, record_id=record_id, data=payload)
        except DomainError as exc:
            await db.rollback()
            return await self._record_page(
                request,
                db,
                record_id,
                form={**data, "action": "amend"},
                errors=exc.form_errors(CORRECTION_FIELDS),
                status=exc.status_code,
            )
        return Redirect(f"/training/records/{amendment.id}?msg=amended", status_code=303)

    # ------------------------------------------------------------ import

    async def _import_page(
        self,
        request: Req,
        db: AsyncSession,
        *,
        status: int = 200,
        error: str = "",
        msg: str = "",
        form: dict[str, Any] | None = None,
    ) -> Template:
        await db.rollback()
        return render(
            "training/import.html",
            request,
            status_code=status,
            headers=importer.TEMPLATE_HEADERS,
            max_rows=importer.MAX_IMPORT_ROWS,
            max_size=size_text(request.app.state.settings.max_upload_bytes),
            years=_years(),
            form=form or {"year": clock.today().year},
            error=error,
            msg=msg,
        )

    @get("/import")
    async def import_form(
        self,
        request: Req,
        db: AsyncSession,
        course_id: FromQuery[int | None] = None,
        batch: Annotated[int | None, QueryParameter(ge=1)] = None,
    ) -> Template:
        msg = ""
        if batch is not None:
            b = await svc.batch_get(db, principal_of(request), batch)
            msg = f"导入成功（批次 {b.id}）：已登记 {b.rows_imported} 条学时记录，共 {format_hours(b.hours_tenths)} 学时。"
        form: dict[str, Any] = {"year": clock.today().year}
        if course_id is not None:
            c, _agency = await svc.course_get(db, principal_of(request), course_id)
            form = {"year": c.year, "course_id": c.id, "course_title": c.title}
        return await self._import_page(request, db, msg=msg, form=form)

    @get("/import/template.csv")
    async def import_template(self) -> Response[bytes]:
        name = quote("培训签到表导入模板.csv")
        return Response(
            importer.template_csv(),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f"attachment; filename=\"training-template.csv\"; filename*=UTF-8''{name}",
                "Cache-Control": "no-store",
            },
        )

    def _preview_page(
        self, request: Req, preview: ImportPreview, *, course_id: int | None, status: int
    ) -> Template:
        return render(
            "training/import_preview.html",
            request,
            status_code=status,
            preview=preview,
            errors=preview.errors[:HTML_ERROR_LIMIT],
            hidden_errors=max(0, len(preview.errors) - HTML_ERROR_LIMIT),
            course_id=course_id,
        )

    @post("/import")
    async def import_preview(
        self, request: Req, db: AsyncSession, state: State, data: MultipartForm
    ) -> Template:
        form = {k: v for k, v in data.items() if isinstance(v, str)}
        try:
            year = int(form.get("year") or clock.today().year)
            course_id = int(form["course_id"]) if str(form.get("course_id", "")).strip() else None
        except ValueError:
            return await self._import_page(request, db, status=400, error="年度或课程编号应为数字", form=form)
        if not 2000 <= year <= 2100:
            return await self._import_page(request, db, status=400, error="年度不合理", form=form)
        upload = await _read_upload(data.get("file"))
        if upload is None:
            return await self._import_page(
                request, db, status=400, error="请选择要上传的文件（CSV 或 Excel .xlsx）", form=form
            )
        content, filename = upload
        p = principal_of(request)
        try:
            preview = await importer.training_import_preview(
                db,
                principal=p,
                data=content,
                filename=filename,
                year=year,
                course_id=course_id,
                max_bytes=state.settings.max_upload_bytes,
            )
        except DomainError as exc:
            return await self._import_page(request, db, status=exc.status_code, error=exc.message, form=form)
        if preview.ok:
            meta = {"filename": preview.filename, "year": year, "course_id": course_id}
            await importer.stage_upload(p, preview.sha256, content, meta)
        return self._preview_page(request, preview, course_id=course_id, status=200 if preview.ok else 422)

    @post("/import/commit")
    async def import_commit(self, request: Req, db: AsyncSession, state: State, data: Form) -> Any:
        p = principal_of(request)
        sha256 = str(data.get("sha256", "")).strip().lower()
        staged = await importer.staged_upload(p, sha256)
        if staged is None:
            done = await svc.committed_batch(db, sha256) if sha256 else None
            if done is not None:
                return await self._import_page(request, db, status=409, error=AlreadyImported(done).message)
            return await self._import_page(
                request, db, status=400, error="待导入的文件已失效或不存在（超过24小时或已处理），请重新上传"
            )
        content, meta = staged
        course_id = meta.get("course_id")
        try:
            result = await importer.training_import_commit(
                db,
                principal=p,
                data=content,
                filename=str(meta.get("filename") or ""),
                year=int(meta.get("year") or clock.today().year),
                course_id=int(course_id) if course_id else None,
                source="web",
                max_bytes=state.settings.max_upload_bytes,
            )
        except ImportRejected as exc:
            await importer.unstage_upload(p, sha256)
            return self._preview_page(request, exc.preview, course_id=None, status=422)
        except DomainError as exc:
            await importer.unstage_upload(p, sha256)
            return await self._import_page(request, db, status=exc.status_code, error=exc.message)
        await importer.unstage_upload(p, sha256)
        return Redirect(f"/training/import?batch={result.batch_id}", status_code=303)

    @get("/imports")
    async def batches(self, request: Req, db: AsyncSession, page: PageNo = 1) -> Template:
        page, per_page = page_args(page, 50)
        items, total = await svc.batch_list(db, principal_of(request), page=page, per_page=per_page)
        return render(
            "training/batches.html", request, items=items, pg=Pager(page, per_page, total), query={}
        )

    @get("/imports/{batch_id:int}")
    async def batch(self, request: Req, db: AsyncSession, batch_id: int) -> Template:
        batch = svc.batch_out(await svc.batch_get(db, principal_of(request), batch_id))
        return render("training/batch.html", request, batch=batch)


class MyTrainingPages(Controller):
    path = "/my/training"
    include_in_schema = False
    guards = [require_officer]

    @get("/")
    async def mine(self, request: Req, db: AsyncSession, year: Year = None) -> Template:
        p = principal_of(request)
        if p.officer_id is None:
            raise NotFound("您的账号未关联执法人员")
        view = await svc.officer_year(db, p, p.officer_id, _year(year))
        return render(
            "training/officer_year.html",
            request,
            view=view,
            years=_years(),
            admin=False,
            base_url="/my/training",
            fmt=format_hours,
        )


ROUTES: list[Any] = [
    CourseApi,
    RecordApi,
    OfficerTrainingApi,
    MyTrainingApi,
    ComplianceApi,
    ImportApi,
    TrainingPages,
    MyTrainingPages,
]

__all__ = ["ROUTES", "ComplianceStatus"]
