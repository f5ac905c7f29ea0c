"""HTTP for certificates: the public verification, the JSON API under /api, and the HTML pages."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, MediaType, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery, QueryParameter
from litestar.response import Redirect, Response, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency, Officer
from app.certificates import keys, public
from app.certificates import services as svc
from app.certificates.rules import CancelReason, CertificateAction, CertificateKind, CertificateStatus
from app.certificates.schemas import (
    ActionIn,
    ApplicationOut,
    ApplicationPage,
    ApplyIn,
    BatchOut,
    CertificateDetail,
    CertificateOut,
    CertificatePage,
    CheckIn,
    CheckOut,
    DecideIn,
    EligibilityOut,
    ReissueIn,
)
from app.lib import clock
from app.lib.errors import DomainError, NotFound
from app.lib.guards import PUBLIC, require_admin, require_authority, require_login
from app.lib.ratelimit import RateLimiter, client_key
from app.lib.web import Pager, page_args, principal_of, render

Req = Request[Any, Any, Any]
PageNo = Annotated[int, QueryParameter(ge=1, le=100000)]
Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


def _ctx(request: Req) -> svc.IssueContext:
    s = request.app.state.settings
    return svc.IssueContext(secret_key=s.secret_key, base_url=s.public_base_url)


def _limit(request: Req) -> None:
    limiter: RateLimiter | None = request.app.state.get("verify_limiter")
    if limiter is None:
        per_minute = request.app.state.settings.verify_rate_per_minute
        limiter = request.app.state.verify_limiter = RateLimiter(limit=per_minute, window_seconds=60)
    limiter.hit(client_key(request.client and (request.client.host, request.client.port)))


async def _lookup(request: Req, number: str) -> public.PublicRow | None:
    return await request.app.state.public_lookup.get(number)


def _wants_json(request: Req) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


# ================================================================= public

_NO_STORE = {"Cache-Control": "no-store"}


class PublicVerification(Controller):
    """What anyone reaches by scanning a card or typing its number. Rate-limited per client."""

    # No CSRF cookie is set or checked here: nothing is changed, and the hot path stays light.
    opt = {**PUBLIC, "exclude_from_csrf": True}
    include_in_schema = True
    tags = ["公开查询"]

    @get("/v", summary="证件查询（按证号）", include_in_schema=False, media_type=MediaType.HTML)
    async def lookup_form(self, request: Req, number: FromQuery[str] = "") -> Any:
        number = number.strip().upper()
        if not number:
            return render("certificates/lookup.html", request, number="", error="")
        if not public.number_ok(number):
            return render(
                "certificates/lookup.html",
                request,
                number=number,
                error="证号只能包含英文字母、数字和“-”，请核对后重新输入",
                status_code=400,
            )
        return Redirect(f"/v/{quote(number)}", status_code=303)

    @get(
        "/v/{number:str}",
        summary="证件核验：证件信息和实时状态",
        description="Accept: application/json 时返回 JSON；否则返回手机页面。二维码的签名部分在网址的 # 之后，"
        "浏览器不会发送给服务器，页面脚本会把它提交到 /api/public/certificates/check 比对。",
        media_type=MediaType.HTML,
    )
    async def verify(self, request: Req, number: str) -> Any:
        _limit(request)
        today = clock.today()
        row = await _lookup(request, number)
        if _wants_json(request):
            if row is None:
                raise NotFound("未查到该证号的证件")
            return Response(public.public_view(row, today), headers=_NO_STORE, media_type=MediaType.JSON)
        if row is None:
            if "text/html" not in request.headers.get("accept", ""):
                raise NotFound("未查到该证号的证件")  # API clients (Accept: */*) get problem+json
            return render(
                "certificates/public.html",
                request,
                cert=None,
                number=number if public.number_ok(number) else "",
                status_code=404,
            )
        view = public.public_view(row, today)
        return Template(
            "certificates/public.html",
            context={
                "cert": view,
                "number": view.number,
                "note": public.STATUS_NOTES[view.status],
                "user": None,
                "path": request.url.path,
            },
            headers=_NO_STORE,
        )

    @get("/v/{number:str}/photo", summary="证件照片（仅限该证件的公开页面）", include_in_schema=False)
    async def photo(self, request: Req, number: str) -> Response[bytes]:
        from app.accounts.photos import read_photo

        _limit(request)
        row = await _lookup(request, number)
        data = read_photo(row.photo_path) if row is not None and row.photo_path else None
        if data is None:
            raise NotFound("没有照片")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})

    @post(
        "/api/public/certificates/check",
        summary="比对扫描到的二维码与证件当前签发的二维码",
        description="fragment 为扫码打开的网址中 # 之后的部分。公开接口，无需登录和 CSRF 令牌，按客户端限流。",
        opt={"exclude_from_csrf": True},
        status_code=200,
    )
    async def check(self, request: Req, db: AsyncSession, data: CheckIn) -> Response[CheckOut]:
        _limit(request)
        row = await _lookup(request, data.number)
        jwks = await keys.jwks(db) if row is not None else None
        base = request.app.state.settings.public_base_url
        return Response(public.check(row, data.fragment, clock.today(), jwks, base), headers=_NO_STORE)

    @get(
        "/.well-known/jwks.json",
        summary="二维码签名公钥（RFC 8037 OKP，JWK Set）",
        media_type="application/jwk-set+json",
    )
    async def jwks(self, db: AsyncSession) -> Response[dict[str, Any]]:
        return Response(
            await keys.jwks(db),
            media_type="application/jwk-set+json",
            headers={"Cache-Control": "public, max-age=300"},
        )


# ================================================================= JSON API


async def _card(request: Req, db: AsyncSession, certificate_id: int, fmt: str) -> Response[bytes]:
    # Bytes rather than litestar's File: File documents Last-Modified as an ISO date-time, which the
    # HTTP-date it sends does not match (the API schema would lie about it).
    import asyncio

    cert, path = await svc.certificate_card_file(db, principal_of(request), certificate_id, fmt)
    data = await asyncio.to_thread(path.read_bytes)
    disposition = "attachment" if fmt == "pdf" else "inline"
    return Response(
        data,
        media_type="application/pdf" if fmt == "pdf" else "image/png",
        headers={"Content-Disposition": f'{disposition}; filename="{cert.number}.{fmt}"'},
    )


class CertificateApi(Controller):
    path = "/api/certificates"
    tags = ["执法证件"]

    @get("/", guards=[require_login], summary="证件列表（管理员：本单位及下级；执法人员：本人）")
    async def list_certificates(
        self,
        request: Req,
        db: AsyncSession,
        status: FromQuery[CertificateStatus | None] = None,
        kind: FromQuery[CertificateKind | None] = None,
        q: FromQuery[str] = "",
        page: PageNo = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> CertificatePage:
        items, total = await svc.certificate_list(
            db, principal_of(request), status=status, kind=kind, q=q, page=page, per_page=per_page
        )
        return CertificatePage(items=items, total=total, page=page, per_page=per_page)

    @get("/{certificate_id:int}", guards=[require_login], summary="证件详情及状态变更记录")
    async def get_certificate(self, request: Req, db: AsyncSession, certificate_id: int) -> CertificateDetail:
        return await svc.certificate_detail(db, principal_of(request), certificate_id)

    @get(
        "/{certificate_id:int}/card/pdf",
        guards=[require_login],
        summary="证件卡片 PDF（可打印，85.6×54 mm 正反两页）",
        media_type="application/pdf",
    )
    async def card_pdf(self, request: Req, db: AsyncSession, certificate_id: int) -> Response[bytes]:
        return await _card(request, db, certificate_id, "pdf")

    @get(
        "/{certificate_id:int}/card/png",
        guards=[require_login],
        summary="证件卡片预览图 PNG（正反两面）",
        media_type="image/png",
    )
    async def card_png(self, request: Req, db: AsyncSession, certificate_id: int) -> Response[bytes]:
        return await _card(request, db, certificate_id, "png")

    @post(
        "/{certificate_id:int}/actions",
        guards=[require_authority],
        summary="证件状态变更：暂扣、恢复、吊销、注销、挂失、换发",
        description="只允许从规定的状态办理；须填写依据（ground），可附证据（evidence）；注销须选 cancel_reason。",
        status_code=200,
    )
    async def act(
        self, request: Req, db: AsyncSession, certificate_id: int, data: ActionIn
    ) -> CertificateOut:
        cert = await svc.certificate_act(
            db,
            principal=principal_of(request),
            certificate_id=certificate_id,
            action=data.action,
            ground=data.ground,
            evidence=data.evidence,
            cancel_reason=data.cancel_reason,
            version=data.version,
            ctx=_ctx(request),
        )
        return svc.certificate_out(cert, clock.today())

    @post(
        "/{certificate_id:int}/reissue",
        guards=[require_authority],
        summary="补发（已挂失的证件，启用新证号）",
        status_code=201,
    )
    async def reissue(
        self, request: Req, db: AsyncSession, certificate_id: int, data: ReissueIn
    ) -> CertificateOut:
        cert = await svc.certificate_reissue(
            db,
            principal=principal_of(request),
            certificate_id=certificate_id,
            ground=data.ground,
            evidence=data.evidence,
            ctx=_ctx(request),
        )
        return svc.certificate_out(cert, clock.today())


class ApplicationApi(Controller):
    path = "/api/certificates/applications"
    tags = ["执法证件"]

    @post(
        "/eligibility",
        guards=[require_admin],
        summary="申领条件检查：逐人说明缺少哪一项条件",
        status_code=200,
    )
    async def eligibility(self, request: Req, db: AsyncSession, data: ApplyIn) -> list[EligibilityOut]:
        return await svc.eligibility_check(db, principal_of(request), data.officer_ids, kind=data.kind)

    @post(
        "/",
        guards=[require_admin],
        summary="申领证件（一人或批量，全部符合条件才提交）",
        description="有人不符合条件时返回 422，errors 中逐人说明原因（field 为 officer:<编号>），不提交任何申领。",
        status_code=201,
    )
    async def apply(self, request: Req, db: AsyncSession, data: ApplyIn) -> BatchOut:
        p = principal_of(request)
        batch = await svc.certificate_apply(
            db, principal=p, officer_ids=data.officer_ids, kind=data.kind, note=data.note
        )
        items, _ = await svc.application_list(db, p, batch_id=batch.id, per_page=len(data.officer_ids))
        return BatchOut(batch_id=batch.id, applications=items)

    @get("/", guards=[require_admin], summary="申领记录（本单位及下级；status=pending 为待审批）")
    async def list_applications(
        self,
        request: Req,
        db: AsyncSession,
        status: FromQuery[str | None] = None,
        batch_id: FromQuery[int | None] = None,
        page: PageNo = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> ApplicationPage:
        items, total = await svc.application_list(
            db, principal_of(request), status=status, batch_id=batch_id, page=page, per_page=per_page
        )
        return ApplicationPage(items=items, total=total, page=page, per_page=per_page)

    @post(
        "/decide",
        guards=[require_authority],
        summary="审批申领：批准（发证）或驳回（须说明理由）",
        status_code=200,
    )
    async def decide(self, request: Req, db: AsyncSession, data: DecideIn) -> list[ApplicationOut]:
        p = principal_of(request)
        decided = await svc.application_decide(
            db,
            principal=p,
            application_ids=data.application_ids,
            approve=data.approve,
            reason=data.reason,
            ctx=_ctx(request),
        )
        ids = {a.id for a in decided}
        items, _ = await svc.application_list(db, p, per_page=500)
        return [a for a in items if a.id in ids]


# ================================================================= pages


def _ids(raw: Any) -> list[int]:
    values = raw if isinstance(raw, list) else [raw] if raw not in (None, "") else []
    out: list[int] = []
    for v in values:
        try:
            out.append(int(v))
        except (TypeError, ValueError):
            raise DomainError("人员编号不正确", field="officer_ids") from None
    return out


ACTION_CHOICES = [(a.value, a.label) for a in CertificateAction]
STATUS_CHOICES = [("", "全部状态"), *((s.value, public.STATUS_LABELS[s]) for s in CertificateStatus)]


class CertificatePages(Controller):
    path = "/certificates"
    include_in_schema = False

    @get("/", guards=[require_login])
    async def index(
        self,
        request: Req,
        db: AsyncSession,
        status: FromQuery[str] = "",
        q: FromQuery[str] = "",
        page: PageNo = 1,
        msg: FromQuery[str] = "",
    ) -> Template:
        p = principal_of(request)
        page, per_page = page_args(page, 50)
        st = CertificateStatus(status) if status in {s.value for s in CertificateStatus} else None
        items, total = await svc.certificate_list(db, p, status=st, q=q, page=page, per_page=per_page)
        return render(
            "certificates/index.html",
            request,
            items=items,
            pg=Pager(page, per_page, total),
            status=status,
            q=q,
            statuses=STATUS_CHOICES,
            labels=public.STATUS_LABELS,
            msg=msg,
            query={k: v for k, v in request.query_params.items() if k != "page"},
        )

    @get("/{certificate_id:int}", guards=[require_login])
    async def detail(
        self, request: Req, db: AsyncSession, certificate_id: int, msg: FromQuery[str] = ""
    ) -> Template:
        return await self._detail(request, db, certificate_id, msg=msg)

    async def _detail(
        self,
        request: Req,
        db: AsyncSession,
        certificate_id: int,
        *,
        msg: str = "",
        error: str = "",
        form: dict[str, Any] | None = None,
        status_code: int = 200,
    ) -> Template:
        d = await svc.certificate_detail(db, principal_of(request), certificate_id)
        replaced_by = await db.scalar(
            select(svc.Certificate.id).where(svc.Certificate.replaces_id == certificate_id)
        )
        return render(
            "certificates/detail.html",
            request,
            d=d,
            c=d.certificate,
            labels=public.STATUS_LABELS,
            cancel_reasons=CancelReason.choices(),
            msg=msg,
            error=error,
            form=form or {},
            replaced_by=replaced_by,
            status_code=status_code,
        )

    @post("/{certificate_id:int}/action", guards=[require_authority])
    async def action(self, request: Req, db: AsyncSession, certificate_id: int, data: Form) -> Any:
        try:
            try:
                action = CertificateAction(str(data.get("action", "")))
                reason = CancelReason(data["cancel_reason"]) if data.get("cancel_reason") else None
                version = int(data["version"]) if data.get("version") else None
            except ValueError as e:
                raise DomainError("请选择有效的变更事项", field="action") from e
            await svc.certificate_act(
                db,
                principal=principal_of(request),
                certificate_id=certificate_id,
                action=action,
                ground=str(data.get("ground", "")),
                evidence=str(data.get("evidence", "")),
                cancel_reason=reason,
                version=version,
                ctx=_ctx(request),
            )
        except DomainError as exc:
            await db.rollback()
            if isinstance(exc, NotFound):
                raise
            return await self._detail(
                request, db, certificate_id, error=exc.message, form=data, status_code=exc.status_code
            )
        return Redirect(f"/certificates/{certificate_id}?msg={action.value}", status_code=303)

    @post("/{certificate_id:int}/reissue", guards=[require_authority])
    async def reissue(self, request: Req, db: AsyncSession, certificate_id: int, data: Form) -> Any:
        try:
            new = await svc.certificate_reissue(
                db,
                principal=principal_of(request),
                certificate_id=certificate_id,
                ground=str(data.get("ground", "")),
                evidence=str(data.get("evidence", "")),
                ctx=_ctx(request),
            )
        except DomainError as exc:
            await db.rollback()
            if isinstance(exc, NotFound):
                raise
            return await self._detail(
                request, db, certificate_id, error=exc.message, form=data, status_code=exc.status_code
            )
        return Redirect(f"/certificates/{new.id}?msg=reissue", status_code=303)

    # ------------------------------------------------------------ applications

    @get("/apply", guards=[require_admin])
    async def apply_form(
        self, request: Req, db: AsyncSession, kind: FromQuery[str] = "enforcement", page: PageNo = 1
    ) -> Template:
        return await self._apply_page(request, db, kind=kind, page=page)

    async def _apply_page(
        self,
        request: Req,
        db: AsyncSession,
        *,
        kind: str,
        page: int = 1,
        errors: dict[str, str] | None = None,
        error: str = "",
        status_code: int = 200,
    ) -> Template:
        p = principal_of(request)
        k = (
            CertificateKind(kind)
            if kind in {x.value for x in CertificateKind}
            else CertificateKind.ENFORCEMENT
        )
        page, per_page = page_args(page, 100)
        base = (
            select(Officer.id)
            .join(Agency, Agency.id == Officer.agency_id)
            .where(Agency.path.startswith(p.agency_path))
        )
        from sqlalchemy import func

        total = int(await db.scalar(select(func.count()).select_from(base.subquery())) or 0)
        ids = list(
            (
                await db.scalars(
                    base.order_by(Agency.path, Officer.id).offset((page - 1) * per_page).limit(per_page)
                )
            ).all()
        )
        rows = await svc.eligibility_check(db, p, ids, kind=k)
        return render(
            "certificates/apply.html",
            request,
            rows=rows,
            kind=k,
            kinds=CertificateKind.choices(),
            pg=Pager(page, per_page, total),
            errors=errors or {},
            error=error,
            query={"kind": k.value},
            status_code=status_code,
        )

    @post("/apply", guards=[require_admin])
    async def apply(self, request: Req, db: AsyncSession, data: Form) -> Any:
        kind = str(data.get("kind", "enforcement"))
        try:
            try:
                k = CertificateKind(kind)
            except ValueError as e:
                raise DomainError("请选择证件种类", field="kind") from e
            batch = await svc.certificate_apply(
                db,
                principal=principal_of(request),
                officer_ids=_ids(data.get("officer_ids")),
                kind=k,
                note=str(data.get("note", "")),
            )
        except DomainError as exc:
            await db.rollback()
            return await self._apply_page(
                request,
                db,
                kind=kind,
                errors=exc.field_messages(),
                error=exc.message,
                status_code=exc.status_code,
            )
        return Redirect(f"/certificates/applications?batch_id={batch.id}&msg=applied", status_code=303)

    @get("/applications", guards=[require_admin])
    async def applications(
        self,
        request: Req,
        db: AsyncSession,
        status: FromQuery[str] = "",
        batch_id: FromQuery[int | None] = None,
        page: PageNo = 1,
        msg: FromQuery[str] = "",
    ) -> Template:
        return await self._applications(request, db, status=status, batch_id=batch_id, page=page, msg=msg)

    async def _applications(
        self,
        request: Req,
        db: AsyncSession,
        *,
        status: str = "",
        batch_id: int | None = None,
        page: int = 1,
        msg: str = "",
        error: str = "",
        errors: list[str] | None = None,
        status_code: int = 200,
    ) -> Template:
        p = principal_of(request)
        page, per_page = page_args(page, 100)
        st = status if status in svc.APPLICATION_LABELS else None
        items, total = await svc.application_list(
            db, p, status=st, batch_id=batch_id, page=page, per_page=per_page
        )
        return render(
            "certificates/applications.html",
            request,
            items=items,
            pg=Pager(page, per_page, total),
            status=status,
            statuses=[("", "全部"), *svc.APPLICATION_LABELS.items()],
            batch_id=batch_id,
            msg=msg,
            error=error,
            errors=errors or [],
            query={k: v for k, v in request.query_params.items() if k != "page"},
            status_code=status_code,
        )

    @post("/applications/decide", guards=[require_authority])
    async def decide(self, request: Req, db: AsyncSession, data: Form) -> Any:
        approve = str(data.get("decision", "")) == "approve"
        try:
            ids = _ids(data.get("application_ids"))
            if not ids:
                raise DomainError("请勾选要审批的申领", field="application_ids")
            await svc.application_decide(
                db,
                principal=principal_of(request),
                application_ids=ids,
                approve=approve,
                reason=str(data.get("reason", "")),
                ctx=_ctx(request),
            )
        except DomainError as exc:
            await db.rollback()
            return await self._applications(
                request,
                db,
                status="pending",
                error=exc.message,
                errors=[e.message for e in exc.errors],
                status_code=exc.status_code,
            )
        return Redirect(
            f"/certificates/applications?status=pending&msg={'approved' if approve else 'rejected'}",
            status_code=303,
        )


ROUTES: list[Any] = [PublicVerification, CertificateApi, ApplicationApi, CertificatePages]

__all__ = ["ROUTES"]
