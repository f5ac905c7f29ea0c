"""The certificates' JSON API under /api: cards, their status changes and files; applications."""

from __future__ import annotations

import asyncio
from typing import Annotated

from litestar import Controller, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Response

from app.certificates import selectors
from app.certificates.rules import CertificateKind, CertificateStatus
from app.certificates.schemas import (
    ActionIn,
    ApplicationOut,
    ApplicationPage,
    ApplyIn,
    BatchOut,
    CertificateDetail,
    CertificateOut,
    CertificatePage,
    DecideIn,
    EligibilityOut,
    ReissueIn,
)
from app.certificates.services.applications import application_decide, certificate_apply
from app.certificates.services.cards import certificate_card_file
from app.certificates.services.eligibility import eligibility_check
from app.certificates.services.issuance import IssueContext, certificate_reissue
from app.certificates.services.status import certificate_act
from app.lib import clock
from app.lib.guards import require_admin, require_authority, require_login
from app.lib.web import PAGING, Db, PageNo, Paging, Req, principal_of


def issue_context(request: Req) -> IssueContext:
    """What issuance needs from the settings: the sealing secret and the public base URL."""
    s = request.app.state.settings
    return IssueContext(secret_key=s.secret_key, base_url=s.public_base_url)


async def _card(request: Req, db: Db, certificate_id: int, fmt: str) -> Response[bytes]:
    # Bytes rather than litestar's File: File documents Last-Modified as an ISO date-time, which the
    # HTTP-date it sends does not match (the API schema would lie about it).
    cert, path = await certificate_card_file(db, principal_of(request), certificate_id, fmt)
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

    @get(
        "/",
        guards=[require_login],
        summary="证件列表（管理员：本单位及下级；执法人员：本人）",
        dependencies=PAGING,
    )
    async def list_certificates(
        self,
        request: Req,
        db: Db,
        paging: Paging,
        status: FromQuery[CertificateStatus | None] = None,
        kind: FromQuery[CertificateKind | None] = None,
        q: FromQuery[str] = "",
    ) -> CertificatePage:
        items, total = await selectors.certificate_list(
            db,
            principal_of(request),
            status=status,
            kind=kind,
            q=q,
            page=paging.page,
            per_page=paging.per_page,
        )
        return paging.of(CertificatePage, items, total)

    @get("/{certificate_id:int}", guards=[require_login], summary="证件详情及状态变更记录")
    async def get_certificate(self, request: Req, db: Db, certificate_id: FromPath[int]) -> CertificateDetail:
        return await selectors.certificate_detail(db, principal_of(request), certificate_id)

    @get(
        "/{certificate_id:int}/card/pdf",
        guards=[require_login],
        summary="证件卡片 PDF（可打印，85.6×54 mm 正反两页）",
        media_type="application/pdf",
    )
    async def card_pdf(self, request: Req, db: Db, certificate_id: FromPath[int]) -> Response[bytes]:
        return await _card(request, db, certificate_id, "pdf")

    @get(
        "/{certificate_id:int}/card/png",
        guards=[require_login],
        summary="证件卡片预览图 PNG（正反两面）",
        media_type="image/png",
    )
    async def card_png(self, request: Req, db: Db, certificate_id: FromPath[int]) -> Response[bytes]:
        return await _card(request, db, certificate_id, "png")

    @post(
        "/{certificate_id:int}/actions",
        guards=[require_authority],
        summary="证件状态变更：暂扣、恢复、吊销、注销、挂失、换发",
        description="只允许从规定的状态办理；须填写依据（ground），可附证据（evidence）；注销须选 cancel_reason。",
        status_code=200,
    )
    async def act(
        self, request: Req, db: Db, certificate_id: FromPath[int], data: JSONBody[ActionIn]
    ) -> CertificateOut:
        cert = await certificate_act(
            db,
            principal=principal_of(request),
            certificate_id=certificate_id,
            data=data,
            ctx=issue_context(request),
        )
        return selectors.certificate_out(cert, clock.today())

    @post(
        "/{certificate_id:int}/reissue",
        guards=[require_authority],
        summary="补发（已挂失的证件，启用新证号）",
        status_code=201,
    )
    async def reissue(
        self, request: Req, db: Db, certificate_id: FromPath[int], data: JSONBody[ReissueIn]
    ) -> CertificateOut:
        cert = await certificate_reissue(
            db,
            principal=principal_of(request),
            certificate_id=certificate_id,
            data=data,
            ctx=issue_context(request),
        )
        return selectors.certificate_out(cert, clock.today())


class ApplicationApi(Controller):
    path = "/api/certificates/applications"
    tags = ["执法证件"]

    @post(
        "/eligibility",
        guards=[require_admin],
        summary="申领条件检查：逐人说明缺少哪一项条件",
        status_code=200,
    )
    async def eligibility(self, request: Req, db: Db, data: JSONBody[ApplyIn]) -> list[EligibilityOut]:
        return await eligibility_check(db, principal_of(request), data.officer_ids, kind=data.kind)

    @post(
        "/",
        guards=[require_admin],
        summary="申领证件（一人或批量，全部符合条件才提交）",
        description="有人不符合条件时返回 422，errors 中逐人说明原因（field 为 officer:<编号>），不提交任何申领。",
        status_code=201,
    )
    async def apply(self, request: Req, db: Db, data: JSONBody[ApplyIn]) -> BatchOut:
        p = principal_of(request)
        batch = await certificate_apply(
            db, principal=p, officer_ids=data.officer_ids, kind=data.kind, note=data.note
        )
        items, _ = await selectors.application_list(db, p, batch_id=batch.id, per_page=len(data.officer_ids))
        return BatchOut(batch_id=batch.id, applications=items)

    @get("/", guards=[require_admin], summary="申领记录（本单位及下级；status=pending 为待审批）")
    async def list_applications(
        self,
        request: Req,
        db: Db,
        status: FromQuery[str | None] = None,
        batch_id: FromQuery[int | None] = None,
        page: PageNo = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> ApplicationPage:
        items, total = await selectors.application_list(
            db, principal_of(request), status=status, batch_id=batch_id, page=page, per_page=per_page
        )
        return ApplicationPage(items=items, total=total, page=page, per_page=per_page)

    @post(
        "/decide",
        guards=[require_authority],
        summary="审批申领：批准（发证）或驳回（须说明理由）",
        status_code=200,
    )
    async def decide(self, request: Req, db: Db, data: JSONBody[DecideIn]) -> list[ApplicationOut]:
        p = principal_of(request)
        decided = await application_decide(
            db,
            principal=p,
            application_ids=data.application_ids,
            approve=data.approve,
            reason=data.reason,
            ctx=issue_context(request),
        )
        ids = {a.id for a in decided}
        items, _ = await selectors.application_list(db, p, per_page=500)
        return [a for a in items if a.id in ids]
