"""HTTP for the officer import: the JSON API (dry run or commit in one call) and the HTML pages
(upload → preview → confirm, the file staged on the server in between)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body, QueryParameter
from litestar.response import Response, Template

from app.accounts.import_rules import MAX_IMPORT_ROWS, TEMPLATE_HEADERS, ImportFileError
from app.accounts.schemas import ImportReport
from app.accounts.selectors import agency_policy, agency_tree
from app.accounts.services.imports import (
    ImportRejected,
    OfficerSheet,
    officer_import_commit,
    officer_import_done,
    officer_import_preview,
)
from app.accounts.services.staging import is_sha256, stage_upload, staged_upload, unstage_upload
from app.lib.errors import DomainError
from app.lib.guards import require_admin
from app.lib.policy import DEFAULT_POLICY
from app.lib.templating import fmt_dt
from app.lib.uploads import (
    NO_SHEET,
    STAGED_GONE,
    FileUpload,
    confirmed_sha256,
    dry_run_of,
    import_report,
    preview_page,
    read_upload,
    upload_page,
)
from app.lib.web import (
    Db,
    Form,
    MultipartForm,
    Req,
    download_headers,
    form_post,
    principal_of,
    session_provider,
)

READ_DB = {"db": Provide(session_provider(write=False))}


class OfficerImportApi(Controller):
    path = "/api/officers/import"
    tags = ["执法人员"]
    guards = [require_admin]

    @post(
        "/",
        summary="批量导入执法人员（CSV / XLSX）",
        description=(
            "上传 multipart/form-data，文件放在字段 file 中。dry_run=true（默认）只校验不写入；"
            "dry_run=false 在全部行都正确时一次性导入（全部成功或全部不写入）。"
            "有错误行时返回 422，errors 中列出每个错误的行号、列名和原因；"
            "文件本身无法读取（类型、编码、表头、行数）时返回 400；超过上传大小限制时返回 413。"
        ),
        status_code=200,
        responses={
            422: ResponseSpec(
                data_container=ImportReport,
                description="文件中有错误行，未写入任何数据",
                examples=[
                    Example(
                        summary="错误行",
                        value={
                            "errors": [{"row": 3, "column": "身份证号码", "message": "身份证号码校验位错误"}]
                        },
                    )
                ],
            ),
        },
    )
    async def import_officers(
        self,
        request: Req,
        db: Db,
        state: State,
        data: Annotated[FileUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
        dry_run: Annotated[
            bool | None,
            QueryParameter(
                description="true（默认）：只校验不写入；false：校验通过后导入。也可作为表单字段 dry_run 发送"
            ),
        ] = None,
    ) -> Response[ImportReport]:
        dry_run = await dry_run_of(request, dry_run)
        upload = await read_upload(data.file)
        if upload is None:
            raise ImportFileError("请选择要上传的文件", field="file")
        p = principal_of(request)
        sheet = OfficerSheet(upload.data, upload.filename, max_bytes=state.settings.max_upload_bytes)
        if dry_run:
            preview = await officer_import_preview(db, principal=p, sheet=sheet)
            return import_report(ImportReport, preview, dry_run=True, imported=0)
        try:
            result = await officer_import_commit(db, principal=p, sheet=sheet)
        except ImportRejected as exc:
            return import_report(ImportReport, exc.preview, dry_run=False, imported=0)
        return import_report(ImportReport, result.preview, dry_run=False, imported=result.imported)


class OfficerImportPages(Controller):
    path = "/officers/import"
    include_in_schema = False
    guards = [require_admin]

    async def _page(
        self, request: Req, db: Db, *, status: int = 200, error: str = "", msg: str = ""
    ) -> Template:
        p = principal_of(request)
        agencies = await agency_tree(db, p)
        own = next((a for a in agencies if a.id == p.agency_id), None)
        policy = await agency_policy(db, own) if own else DEFAULT_POLICY
        return upload_page(
            "accounts/import.html",
            request,
            status=status,
            error=error,
            agencies=[a for a in agencies if a.is_active],
            fields=policy.enforcement_fields,
            headers=TEMPLATE_HEADERS,
            max_rows=MAX_IMPORT_ROWS,
            msg=msg,
        )

    @get("/")
    async def form(
        self, request: Req, db: Db, imported: Annotated[int | None, QueryParameter(ge=0)] = None
    ) -> Template:
        msg = f"导入成功：已登记 {imported} 名执法人员。" if imported is not None else ""
        return await self._page(request, db, msg=msg)

    @get("/template.csv")
    async def template(self) -> Response[bytes]:
        # With a BOM, so that Excel opens the UTF-8 file with the right characters.
        body = ("\ufeff" + ",".join(TEMPLATE_HEADERS) + "\r\n").encode("utf-8")
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers=download_headers("officers-template.csv", "执法人员导入模板.csv"),
        )

    # Checking writes nothing: a read session, so a big file's check holds no write lock.
    @post("/", dependencies=READ_DB)
    async def preview(self, request: Req, db: Db, state: State, data: MultipartForm) -> Template:
        upload = await read_upload(data.get("file"))
        if upload is None:
            return await self._page(request, db, status=400, error=NO_SHEET)
        p = principal_of(request)
        sheet = OfficerSheet(upload.data, upload.filename, max_bytes=state.settings.max_upload_bytes)
        try:
            preview = await officer_import_preview(db, principal=p, sheet=sheet)
        except DomainError as exc:
            return await self._page(request, db, status=exc.status_code, error=exc.message)
        if preview.ok:
            await stage_upload(p, preview.sha256, upload.data, upload.filename)
        return preview_page("accounts/import_preview.html", request, preview)

    @post("/commit")
    async def commit(self, request: Req, db: Db, state: State, data: Form) -> Response[Any]:
        p = principal_of(request)
        sha256 = confirmed_sha256(data)
        staged = await staged_upload(p, sha256)
        if staged is None:
            done = await officer_import_done(db, principal=p, sha256=sha256) if is_sha256(sha256) else None
            if done is not None:
                at, rows = done
                error = f"该文件已于 {fmt_dt(at)} 导入（{rows} 人），不会重复导入。"
                return await self._page(request, db, status=409, error=error)
            return await self._page(request, db, status=400, error=STAGED_GONE)
        content, filename = staged
        sheet = OfficerSheet(content, filename, max_bytes=state.settings.max_upload_bytes)

        async def rerender(exc: DomainError) -> Response[Any]:
            if isinstance(exc, ImportRejected):
                await unstage_upload(p, sha256)
                return preview_page("accounts/import_preview.html", request, exc.preview)
            return await self._page(request, db, status=exc.status_code, error=exc.message)

        response = await form_post(
            db,
            lambda: officer_import_commit(db, principal=p, sheet=sheet),
            redirect=lambda result: f"/officers/import?imported={result.imported}",
            rerender=rerender,
            passthrough=(),
        )
        if response.status_code == 303:
            await unstage_upload(p, sha256)
        return response


IMPORT_ROUTES: list[Any] = [OfficerImportApi, OfficerImportPages]
