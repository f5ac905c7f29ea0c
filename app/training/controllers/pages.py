"""The training domain's HTML pages: compliance, courses and attendance, an officer's year, corrections."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, Unpack

from litestar import Controller, get, post
from litestar.params import FromPath
from litestar.response import Response, Stream, Template

from app.accounts.selectors import agency_tree
from app.lib import clock
from app.lib.errors import DomainError, Forbidden, StaleForm
from app.lib.guards import require_officer
from app.lib.web import (
    Again,
    Db,
    Form,
    PageNo,
    Pager,
    Req,
    Year,
    download_headers,
    form_again,
    form_call,
    form_page,
    form_post,
    form_to_struct,
    list_page,
    own_officer_id,
    page_args,
    paged,
    principal_of,
    recent_years,
    render,
    year_or_this,
)
from app.training.controllers.params import (
    COURSE_FILTER,
    ComplianceQuery,
    CourseQuery,
    TrainingAdminPages,
    compliance_filter,
)
from app.training.exports import compliance_csv
from app.training.rules import TrainingCategory, Verification, format_hours
from app.training.schemas import AmendmentIn, AttendanceIn, CourseIn, CourseUpdate, ReversalIn
from app.training.selectors.compliance import training_compliance
from app.training.selectors.courses import course_detail, course_get, course_list
from app.training.selectors.records import officer_year, record_detail, record_get
from app.training.services.attendance import attendance_add
from app.training.services.corrections import record_amend, record_reverse
from app.training.services.courses import course_create, course_update
from app.training.sheets.format import AttendanceRejected

STATUS_FILTERS = [("all", "全部"), ("short", "尚差学时"), ("behind", "进度落后"), ("met", "已达标")]
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


def _officer_page(request: Req, view: Any, *, admin: bool, base_url: str) -> Template:
    return render(
        "training/officer_year.html",
        request,
        view=view,
        years=recent_years(),
        admin=admin,
        base_url=base_url,
        fmt=format_hours,
    )


class TrainingPages(TrainingAdminPages):
    # ------------------------------------------------------------ compliance

    @get("/", dependencies=compliance_filter("short"))
    async def index(self, request: Req, db: Db, f: ComplianceQuery, page: PageNo = 1) -> Template:
        p = principal_of(request)
        y = f.year
        page, per_page = page_args(page, 100)
        c = await training_compliance(
            db, p, y, agency_id=f.agency_id, status=f.status, offset=(page - 1) * per_page, limit=per_page
        )
        agencies = await agency_tree(db, p)
        return render(
            "training/compliance.html",
            request,
            summary=c.summary,
            rows=c.rows,
            **paged(request, page, per_page, c.total),
            year=y,
            years=recent_years(),
            agency_id=f.agency_id,
            status=f.status,
            statuses=STATUS_FILTERS,
            agencies=agencies,
            in_progress=y >= clock.today().year,
        )

    @get("/compliance.csv", dependencies=compliance_filter("all"))
    async def compliance_csv(self, request: Req, db: Db, f: ComplianceQuery) -> Stream:
        y = f.year
        c = await training_compliance(db, principal_of(request), y, agency_id=f.agency_id, status=f.status)
        name = f"{y}年度培训学时达标情况.csv"
        return Stream(
            compliance_csv(c),
            media_type="text/csv; charset=utf-8",
            headers=download_headers(f"training-{y}.csv", name),
        )

    # ------------------------------------------------------------ courses

    @get("/courses", dependencies=COURSE_FILTER)
    async def courses(self, request: Req, db: Db, f: CourseQuery, page: PageNo = 1) -> Template:
        return await list_page(
            "training/courses.html",
            request,
            partial(course_list, db, principal_of(request), f),
            page=page,
            f=f,
            years=recent_years(),
            categories=TrainingCategory.choices(),
            msg=request.query_params.get("msg"),
        )

    async def _course_form(
        self, request: Req, db: Db, course: Any = None, **again: Unpack[Again]
    ) -> Template:
        """A new course's form (its organising agency to pick), or an existing ``course``'s."""
        agencies = [] if course else await agency_tree(db, principal_of(request))
        return form_page(
            "training/course_form.html",
            request,
            **again,
            agencies=agencies,
            categories=TrainingCategory.choices(),
            verifications=Verification.choices(),
            course=course,
        )

    @get("/courses/new")
    async def new_course(self, request: Req, db: Db) -> Template:
        p = principal_of(request)
        return await self._course_form(
            request, db, form={"agency_id": p.agency_id, "starts_on": clock.today().isoformat()}, errors={}
        )

    @post("/courses/new")
    async def create_course(self, request: Req, db: Db, data: Form) -> Response[Any]:
        call = form_call(request, db, course_create, data, CourseIn)

        # An organising agency out of scope is a field error on this form, not a missing page.
        return await form_post(
            db,
            call,
            redirect=lambda c: f"/training/courses/{c.id}?msg=created",
            rerender=form_again(partial(self._course_form, request, db), data, COURSE_FIELDS),
            passthrough=(),
        )

    async def _course_edit_form(
        self, request: Req, db: Db, course_id: int, **again: Unpack[Again]
    ) -> Template:
        p = principal_of(request)
        detail = await course_detail(db, p, course_id, per_page=1)
        if not detail.can_edit:
            raise Forbidden("只能修改本单位及下级单位组织的课程；上级单位组织的课程请联系组织单位修改")
        if "form" not in again:
            again["form"] = {
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
        return await self._course_form(request, db, detail, **again)

    @get("/courses/{course_id:int}/edit")
    async def edit_course(self, request: Req, db: Db, course_id: FromPath[int]) -> Template:
        return await self._course_edit_form(request, db, course_id)

    @post("/courses/{course_id:int}/edit")
    async def update_course(
        self, request: Req, db: Db, course_id: FromPath[int], data: Form
    ) -> Response[Any]:
        call = form_call(request, db, course_update, data, CourseUpdate, course_id=course_id)

        async def rerender(exc: DomainError) -> Response[Any]:
            if isinstance(exc, StaleForm):
                # Someone saved in between: show the course as it is now, with the reason on top.
                return await self._course_edit_form(
                    request, db, course_id, errors={"form": exc.message}, status=exc.status_code
                )
            return await self._course_edit_form(
                request,
                db,
                course_id,
                form=data,
                errors=exc.form_errors(COURSE_FIELDS),
                status=exc.status_code,
            )

        return await form_post(
            db, call, redirect=f"/training/courses/{course_id}?msg=updated", rerender=rerender
        )

    async def _course_page(
        self,
        request: Req,
        db: Db,
        course_id: int,
        *,
        page: int = 1,
        rows: Sequence[Any] = (),
        **again: Unpack[Again],
    ) -> Template:
        page, per_page = page_args(page, 100)
        detail = await course_detail(db, principal_of(request), course_id, page=page, per_page=per_page)
        return form_page(
            "training/course_detail.html",
            request,
            **again,
            course=detail,
            pg=Pager(page, per_page, detail.records_total),
            row_errors=list(rows),
            msg=request.query_params.get("msg"),
            query={},
        )

    @get("/courses/{course_id:int}")
    async def course(self, request: Req, db: Db, course_id: FromPath[int], page: PageNo = 1) -> Template:
        return await self._course_page(request, db, course_id, page=page)

    @post("/courses/{course_id:int}/attendance")
    async def add_attendance(
        self, request: Req, db: Db, course_id: FromPath[int], data: Form
    ) -> Response[Any]:
        p = principal_of(request)
        await course_get(db, p, course_id)
        form = {k: data.get(k, "") for k in ATTENDANCE_FIELDS}

        async def call() -> list[int]:
            raw = str(data.get("id_numbers", ""))
            fields = {
                "id_numbers": raw.replace(",", "\n").replace("，", "\n").splitlines(),
                "attended_on": data.get("attended_on") or None,
                "hours": data.get("hours") or None,
            }
            payload = form_to_struct({k: v for k, v in fields.items() if v is not None}, AttendanceIn)
            return await attendance_add(db, principal=p, course_id=course_id, data=payload)

        async def rerender(exc: DomainError) -> Response[Any]:
            if isinstance(exc, AttendanceRejected):
                errors, rows = {"id_numbers": exc.message}, exc.rows
            else:
                errors, rows = exc.form_errors(ATTENDANCE_FIELDS), []
            return await self._course_page(
                request, db, course_id, form=form, errors=errors, rows=rows, status=exc.status_code
            )

        return await form_post(
            db,
            call,
            redirect=lambda ids: f"/training/courses/{course_id}?msg=added{len(ids)}",
            rerender=rerender,
        )

    # ------------------------------------------------------------ an officer's ledger

    @get("/officers/{officer_id:int}")
    async def officer(self, request: Req, db: Db, officer_id: FromPath[int], year: Year = None) -> Template:
        view = await officer_year(db, principal_of(request), officer_id, year_or_this(year))
        return _officer_page(request, view, admin=True, base_url=f"/training/officers/{officer_id}")

    # ------------------------------------------------------------ corrections

    async def _record_page(self, request: Req, db: Db, record_id: int, **again: Unpack[Again]) -> Template:
        chain = await record_detail(db, principal_of(request), record_id)
        record = next(line for line in chain if line.id == record_id)
        return form_page(
            "training/record.html",
            request,
            **again,
            record=record,
            chain=chain,
            msg=request.query_params.get("msg"),
        )

    @get("/records/{record_id:int}")
    async def record(self, request: Req, db: Db, record_id: FromPath[int]) -> Template:
        return await self._record_page(request, db, record_id)

    async def _correction(
        self, request: Req, db: Db, record_id: int, data: dict[str, Any], action: str
    ) -> Response[Any]:
        """冲销 or 更正 from the record's page: 303 to the new line, or the page again with the errors."""
        p = principal_of(request)
        await record_get(db, p, record_id)

        async def call() -> Any:
            if action == "reverse":
                payload = form_to_struct(data, ReversalIn)
                return await record_reverse(db, principal=p, record_id=record_id, data=payload)
            _reversal, amendment = await record_amend(
                db, principal=p, record_id=record_id, data=form_to_struct(data, AmendmentIn)
            )
            return amendment

        done = "reversed" if action == "reverse" else "amended"
        page = partial(self._record_page, request, db, record_id)
        return await form_post(
            db,
            call,
            redirect=lambda line: f"/training/records/{line.id}?msg={done}",
            rerender=form_again(page, {**data, "action": action}, CORRECTION_FIELDS),
        )

    @post("/records/{record_id:int}/reverse")
    async def reverse(self, request: Req, db: Db, record_id: FromPath[int], data: Form) -> Response[Any]:
        return await self._correction(request, db, record_id, data, "reverse")

    @post("/records/{record_id:int}/amend")
    async def amend(self, request: Req, db: Db, record_id: FromPath[int], data: Form) -> Response[Any]:
        return await self._correction(request, db, record_id, data, "amend")


class MyTrainingPages(Controller):
    path = "/my/training"
    include_in_schema = False
    guards = [require_officer]

    @get("/")
    async def mine(self, request: Req, db: Db, year: Year = None) -> Template:
        officer_id = own_officer_id(request)
        view = await officer_year(db, principal_of(request), officer_id, year_or_this(year))
        return _officer_page(request, view, admin=False, base_url="/my/training")


__all__ = ["ATTENDANCE_FIELDS", "COURSE_FIELDS", "MyTrainingPages", "TrainingPages"]
