"""The attendance import's HTML pages: upload and preview, then import the checked file; the batches.

Not ``form_post`` flows: the preview answers with a page (200, or 422 listing the bad rows) rather
than a redirect, and a refused import is a result to keep (its rejected batch), not an error to roll
back — ``keep_refusal`` has the edge commit that record with the 422 page.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from litestar import get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, Response, Template

from app.lib import clock
from app.lib.errors import DomainError
from app.lib.uploads import NO_SHEET, STAGED_GONE, confirmed_sha256, preview_page, read_upload, upload_page
from app.lib.web import (
    Db,
    Form,
    MultipartForm,
    PageNo,
    Req,
    download_headers,
    keep_refusal,
    list_page,
    principal_of,
    recent_years,
    render,
    text_fields,
)
from app.training.controllers.params import TrainingAdminPages
from app.training.rules import format_hours
from app.training.schemas import ImportPreview
from app.training.selectors.batches import batch_get, batch_list, batch_out, committed_batch
from app.training.selectors.courses import course_get
from app.training.services.imports import training_import_commit, training_import_preview
from app.training.sheets.format import MAX_IMPORT_ROWS, TEMPLATE_HEADERS, AlreadyImported, template_csv
from app.training.sheets.staging import stage_upload, staged_upload, unstage_upload


def _import_page(
    request: Req, *, status: int = 200, error: str = "", msg: str = "", form: dict[str, Any] | None = None
) -> Template:
    return upload_page(
        "training/import.html",
        request,
        status=status,
        error=error,
        headers=TEMPLATE_HEADERS,
        max_rows=MAX_IMPORT_ROWS,
        years=recent_years(),
        form=form or {"year": clock.today().year},
        msg=msg,
    )


def _preview_page(request: Req, preview: ImportPreview, *, course_id: int | None) -> Template:
    return preview_page("training/import_preview.html", request, preview, course_id=course_id)


class TrainingImportPages(TrainingAdminPages):
    @get("/import")
    async def import_form(
        self,
        request: Req,
        db: Db,
        course_id: FromQuery[int | None] = None,
        batch: Annotated[int | None, QueryParameter(ge=1)] = None,
    ) -> Template:
        msg = ""
        if batch is not None:
            b = await batch_get(db, principal_of(request), batch)
            msg = f"导入成功（批次 {b.id}）：已登记 {b.rows_imported} 条学时记录，共 {format_hours(b.hours_tenths)} 学时。"
        form: dict[str, Any] = {"year": clock.today().year}
        if course_id is not None:
            c, _agency = await course_get(db, principal_of(request), course_id)
            form = {"year": c.year, "course_id": c.id, "course_title": c.title}
        return _import_page(request, msg=msg, form=form)

    @get("/import/template.csv")
    async def import_template(self) -> Response[bytes]:
        return Response(
            template_csv(),
            media_type="text/csv; charset=utf-8",
            headers=download_headers("training-template.csv", "培训签到表导入模板.csv"),
        )

    @post("/import")
    async def import_preview(self, request: Req, db: Db, state: State, data: MultipartForm) -> Template:
        form = text_fields(data)
        try:
            year = int(form.get("year") or clock.today().year)
            course_id = int(form["course_id"]) if str(form.get("course_id", "")).strip() else None
        except ValueError:
            return _import_page(request, status=400, error="年度或课程编号应为数字", form=form)
        if not 2000 <= year <= 2100:
            return _import_page(request, status=400, error="年度不合理", form=form)
        upload = await read_upload(data.get("file"))
        if upload is None:
            return _import_page(request, status=400, error=NO_SHEET, form=form)
        p = principal_of(request)
        try:
            preview = await training_import_preview(
                db,
                principal=p,
                data=upload.data,
                filename=upload.filename,
                year=year,
                course_id=course_id,
                max_bytes=state.settings.max_upload_bytes,
            )
        except DomainError as exc:
            return _import_page(request, status=exc.status_code, error=exc.message, form=form)
        if preview.ok:
            meta = {"filename": preview.filename, "year": year, "course_id": course_id}
            await stage_upload(p, preview.sha256, upload.data, meta)
        return _preview_page(request, preview, course_id=course_id)

    @post("/import/commit")
    async def import_commit(self, request: Req, db: Db, state: State, data: Form) -> Response[Any]:
        p = principal_of(request)
        sha256 = confirmed_sha256(data)
        staged = await staged_upload(p, sha256)
        if staged is None:
            done = await committed_batch(db, sha256) if sha256 else None
            if done is not None:
                return _import_page(request, status=409, error=AlreadyImported(done).message)
            return _import_page(request, status=400, error=STAGED_GONE)
        content, meta = staged
        course_id = meta.get("course_id")
        try:
            result = await training_import_commit(
                db,
                principal=p,
                data=content,
                filename=str(meta.get("filename") or ""),
                year=int(meta.get("year") or clock.today().year),
                course_id=int(course_id) if course_id else None,
                source="web",
                max_bytes=state.settings.max_upload_bytes,
            )
        except DomainError as exc:
            await unstage_upload(p, sha256)
            return _import_page(request, status=exc.status_code, error=exc.message)
        await unstage_upload(p, sha256)
        if not result.ok:
            keep_refusal(request)  # the 422 page, and the rejected batch that records it
            return _preview_page(request, result.preview, course_id=None)
        return Redirect(f"/training/import?batch={result.batch_id}", status_code=303)

    @get("/imports")
    async def batches(self, request: Req, db: Db, page: PageNo = 1) -> Template:
        fetch = partial(batch_list, db, principal_of(request))
        return await list_page("training/batches.html", request, fetch, page=page, query={})

    @get("/imports/{batch_id:int}")
    async def batch(self, request: Req, db: Db, batch_id: FromPath[int]) -> Template:
        item = batch_out(await batch_get(db, principal_of(request), batch_id))
        return render("training/batch.html", request, batch=item)


__all__ = ["TrainingImportPages"]
