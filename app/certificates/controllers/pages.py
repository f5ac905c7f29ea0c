"""The certificates' HTML pages: the card list and a card's page with its status changes, the
application page (申领) and the authority's approval queue."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from litestar import Controller, Response, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Template

from app.certificates import public, selectors
from app.certificates.controllers.api import issue_context
from app.certificates.rules import CancelReason, CertificateAction, CertificateKind, CertificateStatus
from app.certificates.schemas import ActionIn, ReissueIn
from app.certificates.services.applications import application_decide, certificate_apply
from app.certificates.services.eligibility import eligibility_check
from app.certificates.services.issuance import certificate_reissue
from app.certificates.services.status import certificate_act
from app.lib.errors import DomainError
from app.lib.guards import require_admin, require_authority, require_login
from app.lib.web import Db, Form, PageNo, Pager, Req, form_post, list_page, page_args, principal_of, render


def _ids(raw: Any) -> list[int]:
    values = raw if isinstance(raw, list) else [raw] if raw not in (None, "") else []
    out: list[int] = []
    for v in values:
        try:
            out.append(int(v))
        except (TypeError, ValueError):
            raise DomainError("人员编号不正确", field="officer_ids") from None
    return out


def _text(form: dict[str, Any], name: str) -> str:
    """A posted text field, empty when not sent."""
    return str(form.get(name, ""))


ACTION_CHOICES = [(a.value, a.label) for a in CertificateAction]
STATUS_CHOICES = [("", "全部状态"), *((s.value, public.STATUS_LABELS[s]) for s in CertificateStatus)]


class CertificatePages(Controller):
    path = "/certificates"
    include_in_schema = False

    @get("/", guards=[require_login])
    async def index(
        self,
        request: Req,
        db: Db,
        status: FromQuery[str] = "",
        q: FromQuery[str] = "",
        page: PageNo = 1,
        msg: FromQuery[str] = "",
    ) -> Template:
        st = CertificateStatus(status) if status in {s.value for s in CertificateStatus} else None
        return await list_page(
            "certificates/index.html",
            request,
            partial(selectors.certificate_list, db, principal_of(request), status=st, q=q),
            page=page,
            status=status,
            q=q,
            statuses=STATUS_CHOICES,
            labels=public.STATUS_LABELS,
            msg=msg,
        )

    @get("/{certificate_id:int}", guards=[require_login])
    async def detail(
        self, request: Req, db: Db, certificate_id: FromPath[int], msg: FromQuery[str] = ""
    ) -> Template:
        return await self._detail(request, db, certificate_id, msg=msg)

    async def _detail(
        self,
        request: Req,
        db: Db,
        certificate_id: int,
        *,
        msg: str = "",
        error: str = "",
        form: dict[str, Any] | None = None,
        status_code: int = 200,
    ) -> Template:
        d = await selectors.certificate_detail(db, principal_of(request), certificate_id)
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
            replaced_by=await selectors.certificate_replaced_by(db, certificate_id),
            status_code=status_code,
        )

    def _detail_again(
        self, request: Req, db: Db, certificate_id: int, form: dict[str, Any]
    ) -> Callable[[DomainError], Awaitable[Response[Any]]]:
        """The card's page again after a refused status change or 补发: the refusal on top, the form
        as posted."""

        async def rerender(exc: DomainError) -> Response[Any]:
            return await self._detail(
                request, db, certificate_id, error=exc.message, form=form, status_code=exc.status_code
            )

        return rerender

    @post("/{certificate_id:int}/action", guards=[require_authority])
    async def action(self, request: Req, db: Db, certificate_id: FromPath[int], data: Form) -> Response[Any]:
        async def act() -> CertificateAction:
            try:
                change = ActionIn(
                    action=CertificateAction(_text(data, "action")),
                    ground=_text(data, "ground"),
                    evidence=_text(data, "evidence"),
                    cancel_reason=CancelReason(data["cancel_reason"]) if data.get("cancel_reason") else None,
                    version=int(data["version"]) if data.get("version") else None,
                )
            except ValueError as e:
                raise DomainError("请选择有效的变更事项", field="action") from e
            await certificate_act(
                db,
                principal=principal_of(request),
                certificate_id=certificate_id,
                data=change,
                ctx=issue_context(request),
            )
            return change.action

        return await form_post(
            db,
            act,
            redirect=lambda action: f"/certificates/{certificate_id}?msg={action.value}",
            rerender=self._detail_again(request, db, certificate_id, data),
        )

    @post("/{certificate_id:int}/reissue", guards=[require_authority])
    async def reissue(self, request: Req, db: Db, certificate_id: FromPath[int], data: Form) -> Response[Any]:
        return await form_post(
            db,
            lambda: certificate_reissue(
                db,
                principal=principal_of(request),
                certificate_id=certificate_id,
                data=ReissueIn(ground=_text(data, "ground"), evidence=_text(data, "evidence")),
                ctx=issue_context(request),
            ),
            redirect=lambda new: f"/certificates/{new.id}?msg=reissue",
            rerender=self._detail_again(request, db, certificate_id, data),
        )

    # ------------------------------------------------------------ applications

    @get("/apply", guards=[require_admin])
    async def apply_form(
        self, request: Req, db: Db, kind: FromQuery[str] = "enforcement", page: PageNo = 1
    ) -> Template:
        return await self._apply_page(request, db, kind=kind, page=page)

    async def _apply_page(
        self,
        request: Req,
        db: Db,
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
        ids, total = await selectors.officers_page(db, p, page=page, per_page=per_page)
        rows = await eligibility_check(db, p, ids, kind=k)
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
    async def apply(self, request: Req, db: Db, data: Form) -> Response[Any]:
        kind = str(data.get("kind", "enforcement"))

        async def call() -> Any:
            try:
                k = CertificateKind(kind)
            except ValueError as e:
                raise DomainError("请选择证件种类", field="kind") from e
            return await certificate_apply(
                db,
                principal=principal_of(request),
                officer_ids=_ids(data.get("officer_ids")),
                kind=k,
                note=_text(data, "note"),
            )

        async def rerender(exc: DomainError) -> Response[Any]:
            return await self._apply_page(
                request,
                db,
                kind=kind,
                errors=exc.field_messages(),
                error=exc.message,
                status_code=exc.status_code,
            )

        return await form_post(
            db,
            call,
            redirect=lambda batch: f"/certificates/applications?batch_id={batch.id}&msg=applied",
            rerender=rerender,
        )

    @get("/applications", guards=[require_admin])
    async def applications(
        self,
        request: Req,
        db: Db,
        status: FromQuery[str] = "",
        batch_id: FromQuery[int | None] = None,
        page: PageNo = 1,
        msg: FromQuery[str] = "",
    ) -> Template:
        return await self._applications(request, db, status=status, batch_id=batch_id, page=page, msg=msg)

    async def _applications(
        self,
        request: Req,
        db: Db,
        *,
        status: str = "",
        batch_id: int | None = None,
        page: int = 1,
        msg: str = "",
        error: str = "",
        errors: list[str] | None = None,
        status_code: int = 200,
    ) -> Template:
        st = status if status in selectors.APPLICATION_LABELS else None
        return await list_page(
            "certificates/applications.html",
            request,
            partial(selectors.application_list, db, principal_of(request), status=st, batch_id=batch_id),
            page=page,
            per_page=100,
            status=status,
            statuses=[("", "全部"), *selectors.APPLICATION_LABELS.items()],
            batch_id=batch_id,
            msg=msg,
            error=error,
            errors=errors or [],
            status_code=status_code,
        )

    @post("/applications/decide", guards=[require_authority])
    async def decide(self, request: Req, db: Db, data: Form) -> Response[Any]:
        approve = _text(data, "decision") == "approve"

        async def call() -> None:
            ids = _ids(data.get("application_ids"))
            if not ids:
                raise DomainError("请勾选要审批的申领", field="application_ids")
            await application_decide(
                db,
                principal=principal_of(request),
                application_ids=ids,
                approve=approve,
                reason=_text(data, "reason"),
                ctx=issue_context(request),
            )

        async def rerender(exc: DomainError) -> Response[Any]:
            return await self._applications(
                request,
                db,
                status="pending",
                error=exc.message,
                errors=[e.message for e in exc.errors],
                status_code=exc.status_code,
            )

        return await form_post(
            db,
            call,
            redirect=f"/certificates/applications?status=pending&msg={'approved' if approve else 'rejected'}",
            rerender=rerender,
            passthrough=(),
        )
