"""The training domain's JSON API under /api: courses, attendance, corrections, compliance, imports."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from litestar import get, post, put
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, MultipartBody, QueryParameter
from litestar.response import Response

from app.lib.guards import require_login, require_officer
from app.lib.structs import project
from app.lib.uploads import FileUpload, dry_run_of, import_report, read_upload
from app.lib.web import (
    PAGING,
    Db,
    PageNo,
    Paging,
    Req,
    Year,
    keep_refusal,
    own_officer_id,
    principal_of,
    year_or_this,
)
from app.training.controllers.params import (
    COURSE_FILTER,
    ComplianceQuery,
    CourseQuery,
    DryRun,
    TrainingApi,
    compliance_filter,
    rows_refused,
)
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
    ImportReport,
    OfficerYear,
    RecordOut,
    ReversalIn,
)
from app.training.selectors.batches import batch_get, batch_list, batch_out
from app.training.selectors.compliance import training_compliance
from app.training.selectors.courses import (
    course_detail,
    course_editable,
    course_get,
    course_list,
    course_out,
)
from app.training.selectors.records import correction_out, officer_year, record_detail
from app.training.services.attendance import attendance_add
from app.training.services.corrections import record_amend, record_reverse
from app.training.services.courses import course_create, course_update
from app.training.services.imports import training_import_commit, training_import_preview
from app.training.sheets.format import ImportFileError


class CourseApi(TrainingApi):
    path = "/api/training/courses"

    @get(
        "/",
        summary="培训课程列表（本单位、下级及上级单位组织的课程）",
        dependencies={**COURSE_FILTER, **PAGING},
    )
    async def list_courses(self, request: Req, db: Db, f: CourseQuery, paging: Paging) -> CoursePage:
        p = principal_of(request)
        items, total = await course_list(db, p, f, page=paging.page, per_page=paging.per_page)
        return paging.of(CoursePage, items, total)

    @post("/", summary="登记培训课程")
    async def create_course(self, request: Req, db: Db, data: JSONBody[CourseIn]) -> CourseOut:
        p = principal_of(request)
        course = await course_create(db, principal=p, data=data)
        c, agency = await course_get(db, p, course.id)
        return course_out(c, agency.name, can_edit=course_editable(p, agency.path))

    @put(
        "/{course_id:int}",
        summary="修改课程信息（须带 version；已有学时记录的课程不能改学时和类别）",
        description="名称、培训机构、起止日期、核验方式、备注可随时修改（起止日期须包含已登记的培训日期）；"
        "学时和培训类别只能在尚无学时记录时修改，已登记的学时记录不会被改写。每次修改记入审计日志。",
    )
    async def update_course(
        self, request: Req, db: Db, course_id: FromPath[int], data: JSONBody[CourseUpdate]
    ) -> CourseOut:
        p = principal_of(request)
        await course_update(db, principal=p, course_id=course_id, data=data)
        detail = await course_detail(db, p, course_id, per_page=1)
        return project(CourseOut, detail)

    @get("/{course_id:int}", summary="课程详情及本单位人员的学时记录")
    async def get_course(
        self,
        request: Req,
        db: Db,
        course_id: FromPath[int],
        page: PageNo = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> CourseDetail:
        return await course_detail(db, principal_of(request), course_id, page=page, per_page=per_page)

    @post(
        "/{course_id:int}/attendance",
        summary="登记参训人员（按身份证号码；日期、学时默认取课程的）",
        description="全部正确才登记；有错误时返回 422，errors 中逐行说明原因（行号为 id_numbers 中的序号，从 1 起）。",
    )
    async def add_attendance(
        self, request: Req, db: Db, course_id: FromPath[int], data: JSONBody[AttendanceIn]
    ) -> AttendanceResult:
        p = principal_of(request)
        ids = await attendance_add(db, principal=p, course_id=course_id, data=data)
        created = [line for i in ids for line in await record_detail(db, p, i) if line.id == i]
        return AttendanceResult(created=created)


class RecordApi(TrainingApi):
    """A ledger line is read by its officer too; it is corrected by administrators."""

    path = "/api/training/records"
    guards = [require_login]

    @get("/{record_id:int}", summary="学时记录及其更正链（原记录、冲销、更正）")
    async def get_record(self, request: Req, db: Db, record_id: FromPath[int]) -> list[RecordOut]:
        return await record_detail(db, principal_of(request), record_id)


class CorrectionApi(TrainingApi):
    path = "/api/training/records"

    @post("/{record_id:int}/reversal", summary="冲销学时记录（新增一条负学时记录，须写明原因）")
    async def reverse(
        self, request: Req, db: Db, record_id: FromPath[int], data: JSONBody[ReversalIn]
    ) -> CorrectionOut:
        reversal = await record_reverse(db, principal=principal_of(request), record_id=record_id, data=data)
        return await correction_out(db, reversal, None)

    @post("/{record_id:int}/amendment", summary="更正学时记录（冲销原记录并登记更正后的记录，须写明原因）")
    async def amend(
        self, request: Req, db: Db, record_id: FromPath[int], data: JSONBody[AmendmentIn]
    ) -> CorrectionOut:
        p = principal_of(request)
        reversal, amendment = await record_amend(db, principal=p, record_id=record_id, data=data)
        return await correction_out(db, reversal, amendment)


class OfficerTrainingApi(TrainingApi):
    path = "/api/training/officers"

    @get("/{officer_id:int}", summary="执法人员某年度的学时、达标情况及全部记录")
    async def officer_year(
        self, request: Req, db: Db, officer_id: FromPath[int], year: Year = None
    ) -> OfficerYear:
        return await officer_year(db, principal_of(request), officer_id, year_or_this(year))


class MyTrainingApi(TrainingApi):
    path = "/api/my/training"
    guards = [require_officer]

    @get("/", summary="本人某年度的学时、达标情况及全部记录")
    async def my_year(self, request: Req, db: Db, year: Year = None) -> OfficerYear:
        officer_id = own_officer_id(request)
        return await officer_year(db, principal_of(request), officer_id, year_or_this(year))


class ComplianceApi(TrainingApi):
    path = "/api/training/compliance"

    @get(
        "/",
        summary="年度学时达标情况（本单位及下级单位全部在岗人员）",
        description=(
            "status：all 全部、short 尚差学时、behind 进度落后（低于截至 as_of 应完成的学时）、met 已达标。"
            "按尚差学时从多到少排序。"
        ),
        dependencies=compliance_filter("all"),
    )
    async def compliance(
        self,
        request: Req,
        db: Db,
        f: ComplianceQuery,
        as_of: FromQuery[dt.date | None] = None,
        page: PageNo = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> CompliancePage:
        c = await training_compliance(
            db,
            principal_of(request),
            f.year,
            agency_id=f.agency_id,
            status=f.status,
            as_of=as_of,
            offset=(page - 1) * per_page,
            limit=per_page,
        )
        return CompliancePage(summary=c.summary, items=c.rows, total=c.total, page=page, per_page=per_page)


class ImportApi(TrainingApi):
    path = "/api/training"

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
        responses=rows_refused(ImportReport),
    )
    async def import_attendance(
        self,
        request: Req,
        db: Db,
        state: State,
        data: MultipartBody[FileUpload],
        dry_run: DryRun = None,
        year: Year = None,
        course_id: Annotated[
            int | None, QueryParameter(description="为整个文件指定课程（文件中可不填课程列）")
        ] = None,
    ) -> Response[ImportReport]:
        dry_run = await dry_run_of(request, dry_run)
        upload = await read_upload(data.file)
        if upload is None:
            raise ImportFileError("请选择要上传的文件", field="file")
        kw: dict[str, Any] = {
            "principal": principal_of(request),
            "data": upload.data,
            "filename": upload.filename,
            "year": year_or_this(year),
            "course_id": course_id,
            "max_bytes": state.settings.max_upload_bytes,
        }
        if dry_run:
            preview = await training_import_preview(db, **kw)
            return import_report(ImportReport, preview, dry_run=True, imported=0, batch_id=None)
        result = await training_import_commit(db, source="api", **kw)
        if not result.ok:
            keep_refusal(request)  # the 422 answer, and the rejected batch that records it
        return import_report(
            ImportReport, result.preview, dry_run=False, imported=result.imported, batch_id=result.batch_id
        )

    @get("/imports", summary="导入批次（文件哈希、导入人、时间、结果）", dependencies=PAGING)
    async def batches(self, request: Req, db: Db, paging: Paging) -> list[BatchOut]:
        p = principal_of(request)
        items, _ = await batch_list(db, p, page=paging.page, per_page=paging.per_page)
        return items

    @get("/imports/{batch_id:int}", summary="导入批次详情")
    async def batch(self, request: Req, db: Db, batch_id: FromPath[int]) -> BatchOut:
        return batch_out(await batch_get(db, principal_of(request), batch_id))


API_ROUTES: list[Any] = [
    CourseApi,
    RecordApi,
    CorrectionApi,
    OfficerTrainingApi,
    MyTrainingApi,
    ComplianceApi,
    ImportApi,
]

__all__ = ["API_ROUTES"]
