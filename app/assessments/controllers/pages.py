"""The HTML pages of annual assessment and exit: the administrators' (/assessments) and the
officer's own (/my/assessments). Form posts go through ``form_post``: 303 on success, or the form
again with its field errors."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any, Unpack

from litestar import Controller, Router, get, post
from litestar.enums import MediaType
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath
from litestar.response import Redirect, Response, Template

from app.accounts.selectors import agency_tree
from app.assessments import importer, selectors
from app.assessments.controllers.params import (
    CASE_FILTER,
    CASE_STEPS,
    RATING_FILTER,
    CaseQuery,
    CaseStep,
    RatingQuery,
    import_sheet,
)
from app.assessments.rules import CaseStatus, Decision, ExitOutcome, RatingStatus, Remedy, ReviewResult
from app.assessments.schemas import (
    CloseYearIn,
    ConfirmAllIn,
    CorrectionIn,
    ImportReport,
    RatingIn,
)
from app.assessments.services import closing, ratings
from app.lib import clock
from app.lib.errors import DomainError
from app.lib.guards import require_admin, require_authority, require_officer
from app.lib.security import system_principal
from app.lib.web import (
    Again,
    Db,
    Form,
    MultipartForm,
    PageNo,
    Req,
    download_headers,
    form_again,
    form_call,
    form_page,
    form_post,
    form_to_struct,
    list_page,
    own_officer_id,
    principal_of,
    recent_years,
    render,
    text_fields,
    year_or_this,
)

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


async def case_page(request: Req, db: Db, case_id: int, *, admin: bool, **again: Unpack[Again]) -> Template:
    """An exit case and its timeline: the authority's page (its decision forms) or the officer's."""
    case = await selectors.case_detail(db, principal_of(request), case_id)
    choices: dict[str, Any] = (
        {
            "decisions": Decision.choices(),
            "outcomes": ExitOutcome.choices(),
            "review_results": ReviewResult.choices(),
        }
        if admin
        else {}
    )
    return form_page(
        "assessments/case.html",
        request,
        **again,
        case=case,
        admin=admin,
        **choices,
        today=clock.today(),
        msg=request.query_params.get("msg", ""),
    )


def _case_step(step: CaseStep) -> HTTPRouteHandler:
    """A step of an exit case taken from its page (决定, 复核, 陈述申辩, 申请复核): 303 to the case's
    page, or the page again with the form and its errors. The form the page shows again names its
    ``action`` when it is one of the authority's forms."""
    admin = step.by_authority
    base = "/assessments" if admin else "/my/assessments"

    async def take(request: Req, db: Db, case_id: FromPath[int], data: Form) -> Response[Any]:
        form = {**data, "action": step.form} if step.form else data
        call = form_call(request, db, step.service, form, step.body, case_id=case_id)
        page = partial(case_page, request, db, case_id, admin=admin)
        return await form_post(
            db,
            call,
            redirect=f"{base}/cases/{case_id}?msg={step.done}",
            rerender=form_again(page, form, step.fields),
        )

    take.__name__ = take.__qualname__ = step.name
    route = post(f"{base}/cases/{{case_id:int}}/{step.path}", guards=[step.guard], media_type=MediaType.HTML)
    return route(take)


class AssessmentPages(Controller):
    path = "/assessments"
    guards = [require_admin]

    @get("/", dependencies=RATING_FILTER)
    async def index(self, request: Req, db: Db, f: RatingQuery, page: PageNo = 1) -> Template:
        p = principal_of(request)
        f = replace(f, year=year_or_this(f.year))
        agencies = await agency_tree(db, p)
        return await list_page(
            "assessments/ratings.html",
            request,
            partial(selectors.rating_list, db, p, f),
            page=page,
            year=f.year,
            years=recent_years(),
            agency_id=f.agency_id,
            grade=f.grade,
            grades=await selectors.grades_in_sight(db, agencies),
            status=f.status.value if f.status else "",
            statuses=RatingStatus.choices(),
            agencies=agencies,
            msg=request.query_params.get("msg", ""),
        )

    @post("/confirm-all", media_type=MediaType.HTML)
    async def confirm_all(self, request: Req, db: Db, data: Form) -> Redirect:
        payload = form_to_struct(data, ConfirmAllIn)
        n = await ratings.rating_confirm_all(db, principal=principal_of(request), year=payload.year)
        return Redirect(f"/assessments?year={payload.year}&msg=confirmed{n}", status_code=303)

    # ------------------------------------------------------------ an officer's record and rating entry

    async def _officer_page(self, request: Req, db: Db, officer_id: int, **again: Unpack[Again]) -> Template:
        view = await selectors.officer_assessment(db, principal_of(request), officer_id)
        on = clock.today()
        # The rating form proposes last year until April (ratings are entered early in the year).
        if not again.get("form"):
            again["form"] = {"year": on.year - 1 if on.month < 4 else on.year}
        return form_page(
            "assessments/officer.html",
            request,
            **again,
            view=view,
            years=recent_years(),
            remedies=Remedy.choices(),
            admin=True,
            msg=request.query_params.get("msg", ""),
        )

    @get("/officers/{officer_id:int}")
    async def officer(self, request: Req, db: Db, officer_id: FromPath[int]) -> Template:
        return await self._officer_page(request, db, officer_id)

    @post("/officers/{officer_id:int}", media_type=MediaType.HTML)
    async def save_rating(self, request: Req, db: Db, officer_id: FromPath[int], data: Form) -> Response[Any]:
        save = form_call(
            request,
            db,
            ratings.rating_save,
            {**data, "officer_id": officer_id},
            RatingIn,
            booleans=("confirm",),
        )

        page = partial(self._officer_page, request, db, officer_id)
        return await form_post(
            db,
            save,
            redirect=f"/assessments/officers/{officer_id}?msg=saved",
            rerender=form_again(page, data, RATING_FIELDS),
        )

    # ------------------------------------------------------------ one rating: confirm, correct

    async def _rating_page(self, request: Req, db: Db, rating_id: int, **again: Unpack[Again]) -> Template:
        rating = await selectors.rating_get(db, principal_of(request), rating_id)
        view = await selectors.officer_assessment(db, system_principal(), rating.officer_id)
        return form_page(
            "assessments/rating.html",
            request,
            **again,
            rating=rating,
            grades=view.grades,
            history=[r for r in view.ratings if r.year == rating.year],
            remedies=Remedy.choices(),
            msg=request.query_params.get("msg", ""),
        )

    @get("/ratings/{rating_id:int}")
    async def rating(self, request: Req, db: Db, rating_id: FromPath[int]) -> Template:
        return await self._rating_page(request, db, rating_id)

    @post("/ratings/{rating_id:int}/confirm", media_type=MediaType.HTML)
    async def confirm(self, request: Req, db: Db, rating_id: FromPath[int]) -> Response[Any]:
        async def again(exc: DomainError) -> Response[Any]:
            return await self._rating_page(
                request, db, rating_id, errors={"form": exc.message}, status=exc.status_code
            )

        return await form_post(
            db,
            lambda: ratings.rating_confirm(db, principal=principal_of(request), rating_id=rating_id),
            redirect=f"/assessments/ratings/{rating_id}?msg=confirmed",
            rerender=again,
        )

    @post("/ratings/{rating_id:int}/correct", media_type=MediaType.HTML)
    async def correct(self, request: Req, db: Db, rating_id: FromPath[int], data: Form) -> Response[Any]:
        correct = form_call(request, db, ratings.rating_correct, data, CorrectionIn, rating_id=rating_id)

        page = partial(self._rating_page, request, db, rating_id)
        return await form_post(
            db,
            correct,
            redirect=lambda new: f"/assessments/ratings/{new.id}?msg=corrected",
            rerender=form_again(page, data, RATING_FIELDS),
        )

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
            years=recent_years(),
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
            headers=download_headers("ratings-template.csv", "考核结果导入模板.csv"),
        )

    @post("/import", media_type=MediaType.HTML)
    async def import_file(self, request: Req, db: Db, data: MultipartForm) -> Template:
        """Not a ``form_post``: the answer is the report on the same page, never a redirect."""
        form = text_fields(data)
        raw_year = str(form.get("year", "")).strip()
        year = int(raw_year) if raw_year.isdigit() else None
        try:
            dry_run = bool(form.get("dry_run"))
            report = await import_sheet(request, db, data.get("file"), year=year, dry_run=dry_run)
        except DomainError as exc:  # the file unreadable (ImportFileError, 400) or not allowed
            return self._import_page(request, status=exc.status_code, error=exc.message, year=year)
        return self._import_page(request, status=200 if report.ok else 422, report=report, year=year)

    # ------------------------------------------------------------ exit cases

    @get("/cases", dependencies=CASE_FILTER)
    async def cases(self, request: Req, db: Db, f: CaseQuery, page: PageNo = 1) -> Template:
        return await list_page(
            "assessments/cases.html",
            request,
            partial(selectors.case_list, db, principal_of(request), f),
            page=page,
            status=f.status.value if f.status else "",
            statuses=CaseStatus.choices(),
            year=f.year,
            returned=f.returned,
        )

    @get("/cases/{case_id:int}")
    async def case(self, request: Req, db: Db, case_id: FromPath[int]) -> Template:
        return await case_page(request, db, case_id, admin=True)

    # ------------------------------------------------------------ the year-end close

    async def _close_year_page(self, request: Req, db: Db, *, error: str = "", status: int = 200) -> Template:
        return render(
            "assessments/close_year.html",
            request,
            status_code=status,
            closings=await selectors.closing_list(db, principal_of(request)),
            years=recent_years(),
            default_year=clock.today().year - 1,
            error=error,
        )

    @get("/close-year", guards=[require_authority])
    async def close_year_page(self, request: Req, db: Db) -> Template:
        return await self._close_year_page(request, db)

    @post("/close-year", guards=[require_authority], media_type=MediaType.HTML)
    async def close_year(self, request: Req, db: Db, data: Form) -> Response[Any]:
        async def close() -> Any:
            payload = form_to_struct(data, CloseYearIn)
            return await closing.close_year(db, principal=principal_of(request), year=payload.year)

        async def again(exc: DomainError) -> Response[Any]:
            return await self._close_year_page(request, db, error=exc.message, status=exc.status_code)

        return await form_post(db, close, redirect="/assessments/close-year?msg=done", rerender=again)


class MyAssessmentPages(Controller):
    path = "/my/assessments"
    guards = [require_officer]

    @get("/")
    async def mine(self, request: Req, db: Db) -> Template:
        view = await selectors.officer_assessment(db, principal_of(request), own_officer_id(request))
        return render("assessments/officer.html", request, view=view, admin=False, form={}, errors={}, msg="")

    @get("/cases/{case_id:int}")
    async def case(self, request: Req, db: Db, case_id: FromPath[int]) -> Template:
        return await case_page(request, db, case_id, admin=False)


PAGES = Router(
    "/",
    include_in_schema=False,
    route_handlers=[AssessmentPages, MyAssessmentPages, *(_case_step(s) for s in CASE_STEPS)],
)
"""The HTML pages of the domain (out of the API's schema); a case step's form posts to the
authority's pages (/assessments) or the officer's (/my/assessments)."""
