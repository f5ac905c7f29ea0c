"""The accounts domain's HTML pages: officers (with photo and transfers), agencies and accounts.

Every form post goes through ``form_post``: parse, call the use case, 303; or re-render the form
with the field errors (the refused call's writes rolled back first). ``passthrough=()``: a refusal
of any kind, an agency out of scope included, is shown on the form, as these pages always did.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Unpack

from litestar import Controller, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Response, Template

from app.accounts.controllers.params import OFFICER_FILTER, OfficerQuery
from app.accounts.schemas import AccountIn, AgencyIn, OfficerIn, OfficerMove, OfficerUpdate
from app.accounts.selectors import (
    account_get,
    account_list,
    agency_get,
    agency_policy,
    agency_tree,
    officer_detail,
    officer_list,
)
from app.accounts.services.accounts import account_create, account_reset_password, account_set_active
from app.accounts.services.agencies import agency_create, agency_update
from app.accounts.services.officers import officer_create, officer_set_photo, officer_update
from app.accounts.services.postings import officer_move
from app.lib.enums import Role
from app.lib.errors import DomainError
from app.lib.guards import require_admin, require_authority
from app.lib.uploads import require_upload
from app.lib.web import (
    Again,
    Db,
    Form,
    MultipartForm,
    PageNo,
    Req,
    form_again,
    form_call,
    form_page,
    form_post,
    form_to_struct,
    list_page,
    principal_of,
    render,
)


class OfficerPages(Controller):
    path = "/officers"
    include_in_schema = False
    guards = [require_admin]

    @get("/", dependencies=OFFICER_FILTER)
    async def index(self, request: Req, db: Db, f: OfficerQuery, page: PageNo = 1) -> Template:
        p = principal_of(request)
        fetch = partial(officer_list, db, p, f)
        agencies = await agency_tree(db, p)
        return await list_page("accounts/officers.html", request, fetch, page=page, f=f, agencies=agencies)

    @get("/new")
    async def new_form(self, request: Req, db: Db) -> Template:
        return await self._form(request, db, form={}, errors={})

    async def _form(self, request: Req, db: Db, *, officer: Any = None, **again: Unpack[Again]) -> Template:
        p = principal_of(request)
        agencies = await agency_tree(db, p)
        agency = await agency_get(db, p, p.agency_id)
        policy = await agency_policy(db, agency)
        return form_page(
            "accounts/officer_form.html",
            request,
            **again,
            agencies=agencies,
            fields=policy.enforcement_fields,
            officer=officer,
        )

    async def _detail(
        self, request: Req, db: Db, officer_id: int, *, msg: str | None = None, **again: Unpack[Again]
    ) -> Template:
        """The detail page: as asked for, or again with the refused photo or transfer form's errors."""
        p = principal_of(request)
        return form_page(
            "accounts/officer_detail.html",
            request,
            **again,
            officer=await officer_detail(db, p, officer_id),
            agencies=await agency_tree(db, p),
            msg=msg,
        )

    @post("/new")
    async def create(self, request: Req, db: Db, data: Form) -> Response[Any]:
        call = form_call(request, db, officer_create, data, OfficerIn)

        return await form_post(
            db,
            call,
            redirect=lambda officer: f"/officers/{officer.id}?msg=created",
            rerender=form_again(partial(self._form, request, db), data),
            passthrough=(),
        )

    @get("/{officer_id:int}")
    async def detail(self, request: Req, db: Db, officer_id: FromPath[int]) -> Template:
        return await self._detail(
            request, db, officer_id, form={}, errors={}, msg=request.query_params.get("msg")
        )

    @get("/{officer_id:int}/edit")
    async def edit_form(self, request: Req, db: Db, officer_id: FromPath[int]) -> Template:
        officer = await officer_detail(db, principal_of(request), officer_id)
        form = {
            k: getattr(officer, k)
            for k in ("name", "staff_type", "post", "field", "area", "phone", "version")
        }
        return await self._form(request, db, form=form, errors={}, officer=officer)

    @post("/{officer_id:int}/edit")
    async def edit(self, request: Req, db: Db, officer_id: FromPath[int], data: Form) -> Response[Any]:
        p = principal_of(request)

        call = form_call(request, db, officer_update, data, OfficerUpdate, officer_id=officer_id)

        async def rerender(exc: DomainError) -> Template:
            officer = await officer_detail(db, p, officer_id)
            return await self._form(
                request, db, form=data, errors=exc.form_errors(), status=exc.status_code, officer=officer
            )

        return await form_post(
            db, call, redirect=f"/officers/{officer_id}?msg=updated", rerender=rerender, passthrough=()
        )

    @post("/{officer_id:int}/photo")
    async def photo(
        self, request: Req, db: Db, officer_id: FromPath[int], data: MultipartForm
    ) -> Response[Any]:
        async def call() -> Any:
            photo = await require_upload(data.get("photo"), field="photo", message="请选择照片文件")
            return await officer_set_photo(
                db, principal=principal_of(request), officer_id=officer_id, data=photo.data
            )

        page = partial(self._detail, request, db, officer_id)
        return await form_post(
            db,
            call,
            redirect=f"/officers/{officer_id}?msg=photo",
            rerender=form_again(page, {}),
            passthrough=(),
        )

    @post("/{officer_id:int}/move")
    async def move(self, request: Req, db: Db, officer_id: FromPath[int], data: Form) -> Response[Any]:
        call = form_call(request, db, officer_move, data, OfficerMove, officer_id=officer_id)

        page = partial(self._detail, request, db, officer_id)
        return await form_post(
            db,
            call,
            redirect=f"/officers/{officer_id}?msg=moved",
            rerender=form_again(page, data),
            passthrough=(),
        )


_AGENCY_BOOLS = ("is_enforcement_subject", "is_issuing_authority", "is_legal_affairs_office")


class AgencyPages(Controller):
    path = "/agencies"
    include_in_schema = False
    guards = [require_admin]

    @get("/")
    async def index(self, request: Req, db: Db) -> Template:
        agencies = await agency_tree(db, principal_of(request))
        return render(
            "accounts/agencies.html", request, agencies=agencies, msg=request.query_params.get("msg")
        )

    async def _form(self, request: Req, db: Db, *, agency: Any = None, **again: Unpack[Again]) -> Template:
        agencies = await agency_tree(db, principal_of(request))
        return form_page(
            "accounts/agency_form.html",
            request,
            **again,
            agencies=agencies,
            agency=agency,
        )

    @get("/new", guards=[require_authority])
    async def new_form(self, request: Req, db: Db) -> Template:
        return await self._form(request, db, form={}, errors={})

    @post("/new", guards=[require_authority])
    async def create(self, request: Req, db: Db, data: Form) -> Response[Any]:
        call = form_call(request, db, agency_create, data, AgencyIn, booleans=_AGENCY_BOOLS)

        return await form_post(
            db,
            call,
            redirect="/agencies?msg=created",
            rerender=form_again(partial(self._form, request, db), data),
            passthrough=(),
        )

    @get("/{agency_id:int}/edit", guards=[require_authority])
    async def edit_form(self, request: Req, db: Db, agency_id: FromPath[int]) -> Template:
        agency = await agency_get(db, principal_of(request), agency_id)
        form = {k: getattr(agency, k) for k in AgencyIn.__struct_fields__}
        return await self._form(request, db, form=form, errors={}, agency=agency)

    @post("/{agency_id:int}/edit", guards=[require_authority])
    async def edit(self, request: Req, db: Db, agency_id: FromPath[int], data: Form) -> Response[Any]:
        p = principal_of(request)
        agency = await agency_get(db, p, agency_id)
        parent_id = agency.parent_id

        call = form_call(
            request,
            db,
            agency_update,
            {**data, "parent_id": parent_id},
            AgencyIn,
            booleans=_AGENCY_BOOLS,
            agency_id=agency_id,
        )

        async def rerender(exc: DomainError) -> Template:
            # The refused call was rolled back: the agency is read again, as it stands.
            current = await agency_get(db, p, agency_id)
            return await self._form(
                request, db, form=data, errors=exc.form_errors(), agency=current, status=exc.status_code
            )

        return await form_post(db, call, redirect="/agencies?msg=updated", rerender=rerender, passthrough=())


class AccountPages(Controller):
    path = "/accounts"
    include_in_schema = False
    guards = [require_admin]

    @get("/")
    async def index(self, request: Req, db: Db, page: PageNo = 1) -> Template:
        fetch = partial(account_list, db, principal_of(request))
        return await list_page("accounts/accounts.html", request, fetch, page=page, created=None)

    async def _form(self, request: Req, db: Db, **again: Unpack[Again]) -> Template:
        p = principal_of(request)
        roles = [r for r in Role if p.is_authority or r is not Role.AUTHORITY_ADMIN]
        agencies = await agency_tree(db, p)
        return form_page(
            "accounts/account_form.html",
            request,
            **again,
            roles=roles,
            agencies=agencies,
        )

    @get("/new")
    async def new_form(self, request: Req, db: Db) -> Template:
        return await self._form(request, db, form={}, errors={})

    @post("/new")
    async def create(self, request: Req, db: Db, data: Form) -> Template:
        # Not a redirect: the one-time password is shown once, on the answer to this post.
        try:
            payload = form_to_struct(data, AccountIn)
            account, initial = await account_create(db, principal=principal_of(request), data=payload)
        except DomainError as exc:
            return await self._form(request, db, form=data, errors=exc.form_errors(), status=exc.status_code)
        return render("accounts/account_created.html", request, account=account, initial=initial, reset=False)

    @post("/{account_id:int}/reset-password")
    async def reset(self, request: Req, db: Db, account_id: FromPath[int]) -> Template:
        account, initial = await account_reset_password(
            db, principal=principal_of(request), account_id=account_id
        )
        return render("accounts/account_created.html", request, account=account, initial=initial, reset=True)

    @post("/{account_id:int}/toggle")
    async def toggle(self, request: Req, db: Db, account_id: FromPath[int]) -> Redirect:
        p = principal_of(request)
        account, _ = await account_get(db, p, account_id)
        await account_set_active(db, principal=p, account_id=account_id, active=not account.is_active)
        return Redirect("/accounts", status_code=303)


ROUTES: list[Any] = [OfficerPages, AgencyPages, AccountPages]
