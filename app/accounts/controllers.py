"""HTTP for the accounts domain: the JSON API under /api and the HTML pages, side by side."""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.datastructures import State, UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery, QueryParameter
from litestar.response import Redirect, Response, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import services as svc
from app.accounts.importer import IMPORT_ROUTES
from app.accounts.schemas import (
    AccountCreated,
    AccountIn,
    AccountOut,
    AgencyIn,
    AgencyOut,
    LoginIn,
    Me,
    OfficerDetail,
    OfficerIn,
    OfficerMove,
    OfficerPage,
    OfficerUpdate,
    PasswordChangeIn,
)
from app.lib.enums import EmploymentStatus, Post, Role, StaffType
from app.lib.errors import DomainError, NotFound
from app.lib.guards import (
    PUBLIC,
    SESSION_ACCOUNT,
    SESSION_EPOCH,
    SESSION_ISSUED,
    require_admin,
    require_authority,
    require_login,
)
from app.lib.ratelimit import client_key
from app.lib.web import Pager, form_to_struct, page_args, principal_of, render
from app.settings import Settings

Req = Request[Any, Any, Any]


def _start_session(request: Req, account_id: int, epoch: int) -> None:
    # A fresh session dict: whatever an attacker planted before login is discarded (no fixation).
    request.clear_session()
    request.set_session({SESSION_ACCOUNT: account_id, SESSION_EPOCH: epoch, SESSION_ISSUED: int(time.time())})


async def _login(request: Req, db: AsyncSession, state: State, username: str, password: str) -> Any:
    settings: Settings = state.settings
    state.login_limiter.hit(client_key(request.client and (request.client.host, request.client.port)))
    account = await svc.authenticate(
        db,
        username=username,
        password=password,
        max_failures=settings.login_max_failures,
        lock_minutes=settings.login_lock_minutes,
    )
    _start_session(request, account.id, account.auth_epoch)
    return account


def _password_change_hit(request: Req, state: State) -> None:
    # The current password is checked here too: without a limit, a stolen session could be used to
    # guess it at full speed (and then keep the account after the session is voided).
    state.login_limiter.hit(f"password:{principal_of(request).account_id}")


def _me(request: Req) -> Me:
    p = principal_of(request)
    return Me(
        account_id=p.account_id,
        username=p.username,
        display_name=p.display_name,
        role=p.role,
        agency_id=p.agency_id,
        agency_name=p.agency_name,
        officer_id=p.officer_id,
        must_change_password=p.must_change_password,
    )


# ================================================================= JSON API


class AuthApi(Controller):
    path = "/api/auth"
    tags = ["认证"]

    @post("/login", opt=PUBLIC, summary="登录（建立会话 Cookie）", status_code=200)
    async def login(self, request: Req, db: AsyncSession, state: State, data: LoginIn) -> Me:
        account = await _login(request, db, state, data.username, data.password)
        principal = await _reload(state, account.id, account.auth_epoch)
        request.scope["user"] = principal
        return _me(request)

    @post(
        "/logout",
        guards=[require_login],
        opt={"allow_password_change": True},
        summary="退出登录",
        status_code=204,
    )
    async def logout(self, request: Req, db: AsyncSession) -> None:
        await svc.account_logout(db, principal=principal_of(request))
        request.clear_session()

    @get("/me", guards=[require_login], opt={"allow_password_change": True}, summary="当前账号")
    async def me(self, request: Req) -> Me:
        return _me(request)

    @post(
        "/password",
        guards=[require_login],
        opt={"allow_password_change": True},
        summary="修改密码",
        status_code=204,
    )
    async def change_password(
        self, request: Req, db: AsyncSession, state: State, data: PasswordChangeIn
    ) -> None:
        _password_change_hit(request, state)
        account = await svc.password_change(
            db,
            principal=principal_of(request),
            current_password=data.current_password,
            new_password=data.new_password,
        )
        _start_session(request, account.id, account.auth_epoch)


async def _reload(state: State, account_id: int, epoch: int) -> Any:
    from app.lib.guards import load_principal

    return await load_principal(state.db_sessionmaker, account_id, epoch, state.driver)


class AgencyApi(Controller):
    path = "/api/agencies"
    tags = ["单位"]
    guards = [require_admin]

    @get("/", summary="本单位及下级单位（树，按路径排序）")
    async def list_agencies(self, request: Req, db: AsyncSession) -> list[AgencyOut]:
        return [svc.agency_out(a) for a in await svc.agency_tree(db, principal_of(request))]

    @get("/{agency_id:int}", summary="单位详情")
    async def get_agency(self, request: Req, db: AsyncSession, agency_id: int) -> AgencyOut:
        return svc.agency_out(await svc.agency_get(db, principal_of(request), agency_id))

    @post("/", guards=[require_authority], summary="新增单位（发证机关）", status_code=201)
    async def create_agency(self, request: Req, db: AsyncSession, data: AgencyIn) -> AgencyOut:
        return svc.agency_out(await svc.agency_create(db, principal=principal_of(request), data=data))

    @put("/{agency_id:int}", guards=[require_authority], summary="修改单位（发证机关）")
    async def update_agency(
        self, request: Req, db: AsyncSession, agency_id: int, data: AgencyIn
    ) -> AgencyOut:
        a = await svc.agency_update(db, principal=principal_of(request), agency_id=agency_id, data=data)
        return svc.agency_out(a)


class OfficerApi(Controller):
    path = "/api/officers"
    tags = ["执法人员"]
    guards = [require_admin]

    @get("/", summary="执法人员列表（本单位及下级，分页）")
    async def list_officers(
        self,
        request: Req,
        db: AsyncSession,
        q: FromQuery[str] = "",
        agency_id: FromQuery[int | None] = None,
        staff_type: FromQuery[StaffType | None] = None,
        post_: Annotated[Post | None, QueryParameter(name="post")] = None,
        employment_status: FromQuery[EmploymentStatus | None] = None,
        field: FromQuery[str] = "",
        page: Annotated[int, QueryParameter(ge=1, le=100000)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> OfficerPage:
        f = svc.OfficerFilter(
            q=q,
            agency_id=agency_id,
            staff_type=staff_type,
            post=post_,
            employment_status=employment_status,
            field=field,
        )
        items, total = await svc.officer_list(db, principal_of(request), f, page=page, per_page=per_page)
        return OfficerPage(items=items, total=total, page=page, per_page=per_page)

    @get("/{officer_id:int}", summary="执法人员详情（含任职经历）")
    async def get_officer(self, request: Req, db: AsyncSession, officer_id: int) -> OfficerDetail:
        return await svc.officer_detail(db, principal_of(request), officer_id)

    @post("/", summary="新增执法人员", status_code=201)
    async def create_officer(self, request: Req, db: AsyncSession, data: OfficerIn) -> OfficerDetail:
        o = await svc.officer_create(db, principal=principal_of(request), data=data)
        return await svc.officer_detail(db, principal_of(request), o.id)

    @put("/{officer_id:int}", summary="修改执法人员信息（须带 version，防止覆盖他人修改）")
    async def update_officer(
        self, request: Req, db: AsyncSession, officer_id: int, data: OfficerUpdate
    ) -> OfficerDetail:
        await svc.officer_update(db, principal=principal_of(request), officer_id=officer_id, data=data)
        return await svc.officer_detail(db, principal_of(request), officer_id)

    @post("/{officer_id:int}/moves", summary="调动、调离、退休或离职（保留任职经历）", status_code=200)
    async def move_officer(
        self, request: Req, db: AsyncSession, officer_id: int, data: OfficerMove
    ) -> OfficerDetail:
        await svc.officer_move(db, principal=principal_of(request), officer_id=officer_id, data=data)
        return await svc.officer_detail(db, principal_of(request), officer_id)


class PhotoUpload(msgspec.Struct):
    photo: UploadFile


async def _upload_bytes(value: Any) -> bytes:
    if not isinstance(value, UploadFile):
        raise DomainError("请选择照片文件", field="photo")
    return await value.read()


class OfficerPhotoApi(Controller):
    path = "/api/officers/{officer_id:int}/photo"
    tags = ["执法人员"]

    @put(
        "/",
        guards=[require_admin],
        summary="上传证件照（JPG/PNG，≤5MB；统一裁剪为 358×441 JPEG，去除元数据）",
        status_code=200,
    )
    async def upload(
        self,
        request: Req,
        db: AsyncSession,
        officer_id: int,
        data: Annotated[PhotoUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> OfficerDetail:
        await svc.officer_set_photo(
            db, principal=principal_of(request), officer_id=officer_id, data=await _upload_bytes(data.photo)
        )
        return await svc.officer_detail(db, principal_of(request), officer_id)

    @get("/", guards=[require_login], summary="证件照（本人或管理范围内）", media_type="image/jpeg")
    async def download(self, request: Req, db: AsyncSession, officer_id: int) -> Response[bytes]:
        from app.accounts.photos import read_photo

        officer, _ = await svc.officer_get(db, principal_of(request), officer_id)
        data = read_photo(officer.photo_path) if officer.photo_path else None
        if data is None:
            raise NotFound("该人员尚未上传照片")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


class AccountApi(Controller):
    path = "/api/accounts"
    tags = ["账号"]
    guards = [require_admin]

    @get("/", summary="账号列表（本单位及下级）")
    async def list_accounts(
        self,
        request: Req,
        db: AsyncSession,
        page: Annotated[int, QueryParameter(ge=1, le=100000)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> list[AccountOut]:
        items, _ = await svc.account_list(db, principal_of(request), page=page, per_page=per_page)
        return items

    @post("/", summary="创建账号（返回一次性初始密码，首次登录须修改）", status_code=201)
    async def create_account(self, request: Req, db: AsyncSession, data: AccountIn) -> AccountCreated:
        account, initial = await svc.account_create(db, principal=principal_of(request), data=data)
        a, agency = await svc.account_get(db, principal_of(request), account.id)
        return AccountCreated(account=svc.account_out(a, agency.name), initial_password=initial)

    @post("/{account_id:int}/reset-password", summary="重置密码（返回一次性初始密码）", status_code=200)
    async def reset_password(self, request: Req, db: AsyncSession, account_id: int) -> AccountCreated:
        a, initial = await svc.account_reset_password(
            db, principal=principal_of(request), account_id=account_id
        )
        a, agency = await svc.account_get(db, principal_of(request), a.id)
        return AccountCreated(account=svc.account_out(a, agency.name), initial_password=initial)

    @post("/{account_id:int}/deactivate", summary="停用账号", status_code=200)
    async def deactivate(self, request: Req, db: AsyncSession, account_id: int) -> AccountOut:
        await svc.account_set_active(db, principal=principal_of(request), account_id=account_id, active=False)
        a, agency = await svc.account_get(db, principal_of(request), account_id)
        return svc.account_out(a, agency.name)

    @post("/{account_id:int}/activate", summary="启用账号", status_code=200)
    async def activate(self, request: Req, db: AsyncSession, account_id: int) -> AccountOut:
        await svc.account_set_active(db, principal=principal_of(request), account_id=account_id, active=True)
        a, agency = await svc.account_get(db, principal_of(request), account_id)
        return svc.account_out(a, agency.name)


# ================================================================= HTML pages

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


class AuthPages(Controller):
    include_in_schema = False

    @get("/login", opt=PUBLIC)
    async def login_form(
        self, request: Req, next_: Annotated[str, QueryParameter(name="next")] = "/"
    ) -> Template:
        return render("auth/login.html", request, next=_safe_next(next_), errors={}, form={})

    @post("/login", opt=PUBLIC)
    async def login_submit(self, request: Req, db: AsyncSession, state: State, data: Form) -> Any:
        username = str(data.get("username", "")).strip()
        password = str(data.get("password", ""))
        nxt = _safe_next(str(data.get("next", "/")))
        if not username or not password:
            return render(
                "auth/login.html",
                request,
                status_code=400,
                next=nxt,
                form={"username": username},
                errors={"form": "请输入用户名和密码"},
            )
        try:
            account = await _login(request, db, state, username, password)
        except DomainError as exc:
            return render(
                "auth/login.html",
                request,
                status_code=exc.status_code,
                next=nxt,
                form={"username": username},
                errors={"form": exc.message},
            )
        if account.must_change_password:
            return Redirect("/account/password", status_code=303)
        return Redirect(nxt, status_code=303)

    @post("/logout", guards=[require_login], opt={"allow_password_change": True})
    async def logout(self, request: Req, db: AsyncSession) -> Redirect:
        await svc.account_logout(db, principal=principal_of(request))
        request.clear_session()
        return Redirect("/login", status_code=303)

    @get("/account/password", guards=[require_login], opt={"allow_password_change": True})
    async def password_form(self, request: Req) -> Template:
        return render("auth/password.html", request, errors={})

    @post("/account/password", guards=[require_login], opt={"allow_password_change": True})
    async def password_submit(self, request: Req, db: AsyncSession, state: State, data: Form) -> Any:
        _password_change_hit(request, state)
        new, confirm = str(data.get("new_password", "")), str(data.get("confirm_password", ""))
        if new != confirm:
            return render(
                "auth/password.html",
                request,
                status_code=400,
                errors={"confirm_password": "两次输入的新密码不一致"},
            )
        try:
            account = await svc.password_change(
                db,
                principal=principal_of(request),
                current_password=str(data.get("current_password", "")),
                new_password=new,
            )
        except DomainError as exc:
            return render(
                "auth/password.html",
                request,
                status_code=exc.status_code,
                errors=exc.field_messages() or {"form": exc.message},
            )
        _start_session(request, account.id, account.auth_epoch)
        return Redirect("/?msg=password_changed", status_code=303)

    @get("/", guards=[require_login])
    async def home(self, request: Req, db: AsyncSession) -> Template:
        p = principal_of(request)
        officer = None
        if p.officer_id is not None:
            officer = await svc.officer_detail(db, p, p.officer_id)
        return render("home.html", request, officer=officer, msg=request.query_params.get("msg"))


def _safe_next(value: str) -> str:
    r"""Only a same-site path: never an open redirect to another host.

    Browsers drop tabs and newlines from a URL and read a backslash as a slash, so ``/\t/evil.example``
    or ``/\evil.example`` would turn into ``//evil.example``: a control character, a blank or a
    backslash makes the value unusable, as does anything that parses with a scheme or a host.
    """
    if (
        not value.startswith("/")
        or value.startswith("//")
        or any(ch in value for ch in "\\ ")
        or any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in value)
    ):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


class OfficerPages(Controller):
    path = "/officers"
    include_in_schema = False
    guards = [require_admin]

    @get("/")
    async def index(
        self,
        request: Req,
        db: AsyncSession,
        q: FromQuery[str] = "",
        agency_id: FromQuery[int | None] = None,
        staff_type: FromQuery[StaffType | None] = None,
        post_: Annotated[Post | None, QueryParameter(name="post")] = None,
        employment_status: FromQuery[EmploymentStatus | None] = None,
        page: Annotated[int, QueryParameter(ge=1, le=100000)] = 1,
    ) -> Template:
        p = principal_of(request)
        page, per_page = page_args(page, 50)
        f = svc.OfficerFilter(
            q=q, agency_id=agency_id, staff_type=staff_type, post=post_, employment_status=employment_status
        )
        items, total = await svc.officer_list(db, p, f, page=page, per_page=per_page)
        agencies = await svc.agency_tree(db, p)
        return render(
            "accounts/officers.html",
            request,
            items=items,
            pg=Pager(page, per_page, total),
            f=f,
            agencies=agencies,
            query={k: v for k, v in request.query_params.items() if k != "page"},
        )

    @get("/new")
    async def new_form(self, request: Req, db: AsyncSession) -> Template:
        return await self._form(request, db, form={}, errors={})

    async def _form(
        self,
        request: Req,
        db: AsyncSession,
        *,
        form: dict[str, Any],
        errors: dict[str, str],
        status: int = 200,
        officer: Any = None,
    ) -> Template:
        p = principal_of(request)
        agencies = await svc.agency_tree(db, p)
        agency = await svc.agency_get(db, p, p.agency_id)
        policy = await svc.agency_policy(db, agency)
        return render(
            "accounts/officer_form.html",
            request,
            status_code=status,
            form=form,
            errors=errors,
            agencies=agencies,
            fields=policy.enforcement_fields,
            officer=officer,
        )

    @post("/new")
    async def create(self, request: Req, db: AsyncSession, data: Form) -> Any:
        try:
            payload = form_to_struct(data, OfficerIn)
            officer = await svc.officer_create(db, principal=principal_of(request), data=payload)
        except DomainError as exc:
            await db.rollback()
            return await self._form(
                request,
                db,
                form=data,
                errors=exc.field_messages() or {"form": exc.message},
                status=exc.status_code,
            )
        return Redirect(f"/officers/{officer.id}?msg=created", status_code=303)

    @get("/{officer_id:int}")
    async def detail(self, request: Req, db: AsyncSession, officer_id: int) -> Template:
        p = principal_of(request)
        officer = await svc.officer_detail(db, p, officer_id)
        agencies = await svc.agency_tree(db, p)
        return render(
            "accounts/officer_detail.html",
            request,
            officer=officer,
            agencies=agencies,
            errors={},
            form={},
            msg=request.query_params.get("msg"),
        )

    @get("/{officer_id:int}/edit")
    async def edit_form(self, request: Req, db: AsyncSession, officer_id: int) -> Template:
        officer = await svc.officer_detail(db, principal_of(request), officer_id)
        form = {
            k: getattr(officer, k)
            for k in ("name", "staff_type", "post", "field", "area", "phone", "version")
        }
        return await self._form(request, db, form=form, errors={}, officer=officer)

    @post("/{officer_id:int}/edit")
    async def edit(self, request: Req, db: AsyncSession, officer_id: int, data: Form) -> Any:
        p = principal_of(request)
        try:
            payload = form_to_struct(data, OfficerUpdate)
            await svc.officer_update(db, principal=p, officer_id=officer_id, data=payload)
        except DomainError as exc:
            await db.rollback()
            officer = await svc.officer_detail(db, p, officer_id)
            return await self._form(
                request,
                db,
                form=data,
                errors=exc.field_messages() or {"form": exc.message},
                status=exc.status_code,
                officer=officer,
            )
        return Redirect(f"/officers/{officer_id}?msg=updated", status_code=303)

    @post("/{officer_id:int}/photo")
    async def photo(
        self,
        request: Req,
        db: AsyncSession,
        officer_id: int,
        data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> Any:
        p = principal_of(request)
        try:
            await svc.officer_set_photo(
                db, principal=p, officer_id=officer_id, data=await _upload_bytes(data.get("photo"))
            )
        except DomainError as exc:
            await db.rollback()
            officer = await svc.officer_detail(db, p, officer_id)
            agencies = await svc.agency_tree(db, p)
            return render(
                "accounts/officer_detail.html",
                request,
                status_code=exc.status_code,
                officer=officer,
                agencies=agencies,
                errors=exc.field_messages() or {"form": exc.message},
                form={},
                msg=None,
            )
        return Redirect(f"/officers/{officer_id}?msg=photo", status_code=303)

    @post("/{officer_id:int}/move")
    async def move(self, request: Req, db: AsyncSession, officer_id: int, data: Form) -> Any:
        p = principal_of(request)
        try:
            payload = form_to_struct(data, OfficerMove)
            await svc.officer_move(db, principal=p, officer_id=officer_id, data=payload)
        except DomainError as exc:
            await db.rollback()
            officer = await svc.officer_detail(db, p, officer_id)
            agencies = await svc.agency_tree(db, p)
            return render(
                "accounts/officer_detail.html",
                request,
                status_code=exc.status_code,
                officer=officer,
                agencies=agencies,
                errors=exc.field_messages() or {"form": exc.message},
                form=data,
                msg=None,
            )
        return Redirect(f"/officers/{officer_id}?msg=moved", status_code=303)


_AGENCY_BOOLS = ("is_enforcement_subject", "is_issuing_authority")


class AgencyPages(Controller):
    path = "/agencies"
    include_in_schema = False
    guards = [require_admin]

    @get("/")
    async def index(self, request: Req, db: AsyncSession) -> Template:
        agencies = await svc.agency_tree(db, principal_of(request))
        return render(
            "accounts/agencies.html", request, agencies=agencies, msg=request.query_params.get("msg")
        )

    async def _form(
        self,
        request: Req,
        db: AsyncSession,
        *,
        form: dict[str, Any],
        errors: dict[str, str],
        agency: Any = None,
        status: int = 200,
    ) -> Template:
        agencies = await svc.agency_tree(db, principal_of(request))
        return render(
            "accounts/agency_form.html",
            request,
            status_code=status,
            form=form,
            errors=errors,
            agencies=agencies,
            agency=agency,
        )

    @get("/new", guards=[require_authority])
    async def new_form(self, request: Req, db: AsyncSession) -> Template:
        return await self._form(request, db, form={}, errors={})

    @post("/new", guards=[require_authority])
    async def create(self, request: Req, db: AsyncSession, data: Form) -> Any:
        try:
            payload = form_to_struct(data, AgencyIn, booleans=_AGENCY_BOOLS)
            await svc.agency_create(db, principal=principal_of(request), data=payload)
        except DomainError as exc:
            await db.rollback()
            return await self._form(
                request,
                db,
                form=data,
                errors=exc.field_messages() or {"form": exc.message},
                status=exc.status_code,
            )
        return Redirect("/agencies?msg=created", status_code=303)

    @get("/{agency_id:int}/edit", guards=[require_authority])
    async def edit_form(self, request: Req, db: AsyncSession, agency_id: int) -> Template:
        agency = await svc.agency_get(db, principal_of(request), agency_id)
        form = {k: getattr(agency, k) for k in AgencyIn.__struct_fields__}
        return await self._form(request, db, form=form, errors={}, agency=agency)

    @post("/{agency_id:int}/edit", guards=[require_authority])
    async def edit(self, request: Req, db: AsyncSession, agency_id: int, data: Form) -> Any:
        p = principal_of(request)
        agency = await svc.agency_get(db, p, agency_id)
        try:
            form = dict(data)
            form["parent_id"] = agency.parent_id
            payload = form_to_struct(form, AgencyIn, booleans=_AGENCY_BOOLS)
            await svc.agency_update(db, principal=p, agency_id=agency_id, data=payload)
        except DomainError as exc:
            await db.rollback()
            return await self._form(
                request,
                db,
                form=data,
                errors=exc.field_messages() or {"form": exc.message},
                agency=agency,
                status=exc.status_code,
            )
        return Redirect("/agencies?msg=updated", status_code=303)


class AccountPages(Controller):
    path = "/accounts"
    include_in_schema = False
    guards = [require_admin]

    @get("/")
    async def index(
        self, request: Req, db: AsyncSession, page: Annotated[int, QueryParameter(ge=1, le=100000)] = 1
    ) -> Template:
        page, per_page = page_args(page, 50)
        items, total = await svc.account_list(db, principal_of(request), page=page, per_page=per_page)
        return render(
            "accounts/accounts.html", request, items=items, pg=Pager(page, per_page, total), created=None
        )

    async def _form(
        self,
        request: Req,
        db: AsyncSession,
        *,
        form: dict[str, Any],
        errors: dict[str, str],
        status: int = 200,
    ) -> Template:
        p = principal_of(request)
        roles = [r for r in Role if p.is_authority or r is not Role.AUTHORITY_ADMIN]
        agencies = await svc.agency_tree(db, p)
        return render(
            "accounts/account_form.html",
            request,
            status_code=status,
            form=form,
            errors=errors,
            roles=roles,
            agencies=agencies,
        )

    @get("/new")
    async def new_form(self, request: Req, db: AsyncSession) -> Template:
        return await self._form(request, db, form={}, errors={})

    @post("/new")
    async def create(self, request: Req, db: AsyncSession, data: Form) -> Any:
        p = principal_of(request)
        try:
            payload = form_to_struct(data, AccountIn)
            account, initial = await svc.account_create(db, principal=p, data=payload)
        except DomainError as exc:
            await db.rollback()
            return await self._form(
                request,
                db,
                form=data,
                errors=exc.field_messages() or {"form": exc.message},
                status=exc.status_code,
            )
        return render("accounts/account_created.html", request, account=account, initial=initial, reset=False)

    @post("/{account_id:int}/reset-password")
    async def reset(self, request: Req, db: AsyncSession, account_id: int) -> Template:
        account, initial = await svc.account_reset_password(
            db, principal=principal_of(request), account_id=account_id
        )
        return render("accounts/account_created.html", request, account=account, initial=initial, reset=True)

    @post("/{account_id:int}/toggle")
    async def toggle(self, request: Req, db: AsyncSession, account_id: int) -> Redirect:
        p = principal_of(request)
        account, _ = await svc.account_get(db, p, account_id)
        await svc.account_set_active(db, principal=p, account_id=account_id, active=not account.is_active)
        return Redirect("/accounts", status_code=303)


ROUTES: list[Any] = [
    AuthApi,
    AgencyApi,
    OfficerApi,
    OfficerPhotoApi,
    AccountApi,
    AuthPages,
    OfficerPages,
    AgencyPages,
    AccountPages,
    *IMPORT_ROUTES,
]

__all__ = ["ROUTES", "Response"]
