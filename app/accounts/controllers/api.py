"""The accounts domain's JSON API: agencies, officers (and their photos) and accounts, under /api."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, get, post, put
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, JSONBody
from litestar.response import Response

from app.accounts.controllers.params import OFFICER_FILTER, OfficerQuery
from app.accounts.schemas import (
    AccountCreated,
    AccountIn,
    AccountOut,
    AgencyIn,
    AgencyOut,
    OfficerDetail,
    OfficerIn,
    OfficerMove,
    OfficerPage,
    OfficerUpdate,
    PolicyOut,
)
from app.accounts.selectors import (
    account_get,
    account_list,
    account_out,
    agency_get,
    agency_out,
    agency_policy,
    agency_tree,
    officer_detail,
    officer_get,
    officer_list,
)
from app.accounts.services.accounts import account_create, account_reset_password, account_set_active
from app.accounts.services.agencies import agency_create, agency_policy_set, agency_update
from app.accounts.services.officers import officer_create, officer_set_photo, officer_update
from app.accounts.services.postings import officer_move
from app.lib.errors import NotFound
from app.lib.guards import require_admin, require_authority, require_login
from app.lib.policy import GRADE_PRESETS
from app.lib.uploads import require_upload
from app.lib.web import PAGING, Db, Paging, Req, principal_of


class AgencyApi(Controller):
    path = "/api/agencies"
    tags = ["单位"]
    guards = [require_admin]

    @get("/", summary="本单位及下级单位（树，按路径排序）")
    async def list_agencies(self, request: Req, db: Db) -> list[AgencyOut]:
        return [agency_out(a) for a in await agency_tree(db, principal_of(request))]

    @get("/{agency_id:int}", summary="单位详情")
    async def get_agency(self, request: Req, db: Db, agency_id: FromPath[int]) -> AgencyOut:
        return agency_out(await agency_get(db, principal_of(request), agency_id))

    @post("/", guards=[require_authority], summary="新增单位（发证机关）", status_code=201)
    async def create_agency(self, request: Req, db: Db, data: JSONBody[AgencyIn]) -> AgencyOut:
        return agency_out(await agency_create(db, principal=principal_of(request), data=data))

    @put("/{agency_id:int}", guards=[require_authority], summary="修改单位（发证机关）")
    async def update_agency(
        self, request: Req, db: Db, agency_id: FromPath[int], data: JSONBody[AgencyIn]
    ) -> AgencyOut:
        a = await agency_update(db, principal=principal_of(request), agency_id=agency_id, data=data)
        return agency_out(a)

    @get("/{agency_id:int}/policy", summary="单位适用的政策设置（最近的发证机关的设置）及考核等次预设")
    async def get_policy(self, request: Req, db: Db, agency_id: FromPath[int]) -> PolicyOut:
        agency = await agency_get(db, principal_of(request), agency_id)
        return PolicyOut(policy=await agency_policy(db, agency), grade_presets=GRADE_PRESETS)

    @put(
        "/{agency_id:int}/policy",
        guards=[require_authority],
        summary="修改发证机关的政策设置",
        description=(
            "请求体为完整的政策设置（未给出的项取默认值）。不合格等次、不得评优等次须在考核等次列表中；"
            "不符合时返回 422 并说明原因，原设置不变。考核等次预设见 GET 的 grade_presets。"
        ),
    )
    async def put_policy(
        self, request: Req, db: Db, agency_id: FromPath[int], data: JSONBody[dict[str, Any]]
    ) -> PolicyOut:
        policy = await agency_policy_set(db, principal=principal_of(request), agency_id=agency_id, raw=data)
        return PolicyOut(policy=policy, grade_presets=GRADE_PRESETS)


class OfficerApi(Controller):
    path = "/api/officers"
    tags = ["执法人员"]
    guards = [require_admin]

    @get("/", summary="执法人员列表（本单位及下级，分页）", dependencies={**OFFICER_FILTER, **PAGING})
    async def list_officers(self, request: Req, db: Db, f: OfficerQuery, paging: Paging) -> OfficerPage:
        p = principal_of(request)
        items, total = await officer_list(db, p, f, page=paging.page, per_page=paging.per_page)
        return paging.of(OfficerPage, items, total)

    @get("/{officer_id:int}", summary="执法人员详情（含任职经历）")
    async def get_officer(self, request: Req, db: Db, officer_id: FromPath[int]) -> OfficerDetail:
        return await officer_detail(db, principal_of(request), officer_id)

    @post("/", summary="新增执法人员", status_code=201)
    async def create_officer(self, request: Req, db: Db, data: JSONBody[OfficerIn]) -> OfficerDetail:
        o = await officer_create(db, principal=principal_of(request), data=data)
        return await officer_detail(db, principal_of(request), o.id)

    @put("/{officer_id:int}", summary="修改执法人员信息（须带 version，防止覆盖他人修改）")
    async def update_officer(
        self, request: Req, db: Db, officer_id: FromPath[int], data: JSONBody[OfficerUpdate]
    ) -> OfficerDetail:
        await officer_update(db, principal=principal_of(request), officer_id=officer_id, data=data)
        return await officer_detail(db, principal_of(request), officer_id)

    @post("/{officer_id:int}/moves", summary="调动、调离、退休或离职（保留任职经历）", status_code=200)
    async def move_officer(
        self, request: Req, db: Db, officer_id: FromPath[int], data: JSONBody[OfficerMove]
    ) -> OfficerDetail:
        await officer_move(db, principal=principal_of(request), officer_id=officer_id, data=data)
        return await officer_detail(db, principal_of(request), officer_id)


class PhotoUpload(msgspec.Struct):
    photo: UploadFile


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
        db: Db,
        officer_id: FromPath[int],
        data: Annotated[PhotoUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> OfficerDetail:
        photo = await require_upload(data.photo, field="photo", message="请选择照片文件")
        await officer_set_photo(db, principal=principal_of(request), officer_id=officer_id, data=photo.data)
        return await officer_detail(db, principal_of(request), officer_id)

    @get("/", guards=[require_login], summary="证件照（本人或管理范围内）", media_type="image/jpeg")
    async def download(self, request: Req, db: Db, officer_id: FromPath[int]) -> Response[bytes]:
        from app.accounts.photos import read_photo

        officer, _ = await officer_get(db, principal_of(request), officer_id)
        data = read_photo(officer.photo_path) if officer.photo_path else None
        if data is None:
            raise NotFound("该人员尚未上传照片")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


class AccountApi(Controller):
    path = "/api/accounts"
    tags = ["账号"]
    guards = [require_admin]

    async def _out(self, request: Req, db: Db, account_id: int) -> AccountOut:
        a, agency = await account_get(db, principal_of(request), account_id)
        return account_out(a, agency.name)

    @get("/", summary="账号列表（本单位及下级）", dependencies=PAGING)
    async def list_accounts(self, request: Req, db: Db, paging: Paging) -> list[AccountOut]:
        p = principal_of(request)
        items, _ = await account_list(db, p, page=paging.page, per_page=paging.per_page)
        return items

    @post("/", summary="创建账号（返回一次性初始密码，首次登录须修改）", status_code=201)
    async def create_account(self, request: Req, db: Db, data: JSONBody[AccountIn]) -> AccountCreated:
        account, initial = await account_create(db, principal=principal_of(request), data=data)
        return AccountCreated(account=await self._out(request, db, account.id), initial_password=initial)

    @post("/{account_id:int}/reset-password", summary="重置密码（返回一次性初始密码）", status_code=200)
    async def reset_password(self, request: Req, db: Db, account_id: FromPath[int]) -> AccountCreated:
        a, initial = await account_reset_password(db, principal=principal_of(request), account_id=account_id)
        return AccountCreated(account=await self._out(request, db, a.id), initial_password=initial)

    @post("/{account_id:int}/deactivate", summary="停用账号", status_code=200)
    async def deactivate(self, request: Req, db: Db, account_id: FromPath[int]) -> AccountOut:
        await account_set_active(db, principal=principal_of(request), account_id=account_id, active=False)
        return await self._out(request, db, account_id)

    @post("/{account_id:int}/activate", summary="启用账号", status_code=200)
    async def activate(self, request: Req, db: Db, account_id: FromPath[int]) -> AccountOut:
        await account_set_active(db, principal=principal_of(request), account_id=account_id, active=True)
        return await self._out(request, db, account_id)


ROUTES: list[Any] = [AgencyApi, OfficerApi, OfficerPhotoApi, AccountApi]
