"""Read-only queries of certificates and applications (the JSON API, the pages, the console).

Scope: an administrator sees their agency subtree, an officer only their own cards; anything else
is not found."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency, Officer
from app.accounts.rules import path_ids
from app.accounts.selectors import agency_policies
from app.certificates import rules
from app.certificates.models import (
    Certificate,
    CertificateApplication,
    CertificateEvent,
)
from app.certificates.rules import (
    CancelReason,
    CertificateAction,
    CertificateKind,
    CertificateStatus,
)
from app.certificates.schemas import (
    ApplicationOut,
    CertificateDetail,
    CertificateOut,
    EventOut,
)
from app.lib.chunks import chunks
from app.lib.clock import today
from app.lib.errors import (
    DomainError,
    Forbidden,
    NotFound,
)
from app.lib.paging import count_rows, page_of
from app.lib.policy import DEFAULT_POLICY, Policy
from app.lib.security import Principal
from app.lib.structs import project

LIVE = (CertificateStatus.VALID.value, CertificateStatus.SUSPENDED.value)


APPLICATION_LABELS = {"pending": "待审批", "approved": "已批准", "rejected": "已驳回"}


async def authorities_of(db: AsyncSession, paths: dict[int, str]) -> dict[int, Agency]:
    """The nearest issuing authority at or above each agency (id → path given); absent when none."""
    wanted = sorted({i for p in paths.values() for i in path_ids(p)})
    found: dict[int, Agency] = {}
    for chunk in chunks(wanted):
        rows = await db.scalars(
            select(Agency).where(Agency.id.in_(chunk), Agency.is_issuing_authority.is_(True))
        )
        found.update({a.id: a for a in rows})
    out: dict[int, Agency] = {}
    for agency_id, path in paths.items():
        nearest = next((i for i in reversed(path_ids(path)) if i in found), None)
        if nearest is not None:
            out[agency_id] = found[nearest]
    return out


async def authority_policy(db: AsyncSession, authority: Agency) -> Policy:
    return (await agency_policies(db, {authority.id: authority.path})).get(authority.id, DEFAULT_POLICY)


def application_out(
    a: CertificateApplication, officer_name: str, agency_name: str, number: str | None
) -> ApplicationOut:
    return project(
        ApplicationOut,
        a,
        officer_name=officer_name,
        agency_name=agency_name,
        kind_label=CertificateKind(a.kind).label,
        status_label=APPLICATION_LABELS[a.status],
        decided_by=a.decided_by_name,
        certificate_number=number,
    )


async def application_list(
    db: AsyncSession,
    principal: Principal,
    *,
    status: str | None = None,
    batch_id: int | None = None,
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[ApplicationOut], int]:
    """Applications of the principal's subtree, newest first (the authority's queue with status=pending)."""
    if not principal.is_admin:
        raise Forbidden("只有管理员可以查看申领")
    if status is not None and status not in APPLICATION_LABELS:
        raise DomainError("状态筛选无效", field="status")
    a = CertificateApplication
    where: list[Any] = [Agency.path.startswith(principal.agency_path)]
    if status:
        where.append(a.status == status)
    if batch_id is not None:
        where.append(a.batch_id == batch_id)
    total = await count_rows(db, select(a).join(Agency, Agency.id == a.agency_id).where(*where))
    rows = await db.execute(
        page_of(
            select(a, Officer.name, Agency.name, Certificate.number)
            .join(Agency, Agency.id == a.agency_id)
            .join(Officer, Officer.id == a.officer_id)
            .outerjoin(Certificate, Certificate.id == a.certificate_id)
            .where(*where)
            .order_by(a.id.desc()),
            page=page,
            per_page=per_page,
        )
    )
    return [application_out(app, on, an, num) for app, on, an, num in rows], total


def certificate_out(c: Certificate, on: dt.date, policy: Policy | None = None) -> CertificateOut:
    status = rules.effective_status(c.status, c.valid_until, on)
    window = (policy or DEFAULT_POLICY).certificate_renewal_window_months
    actions = rules.allowed_actions(status)
    if CertificateAction.RENEW in actions and not rules.renewal_open(c.valid_until, on, window):
        actions.remove(CertificateAction.RENEW)
    return project(
        CertificateOut,
        c,
        kind_label=CertificateKind(c.kind).label,
        status=status,
        status_label=status.label,
        stored_status=c.status,
        allowed_actions=actions,
        renewal_opens_on=rules.renewal_opens_on(c.valid_until, window),
    )


def certificate_scope(principal: Principal) -> Any:
    if principal.is_admin:
        return Agency.path.startswith(principal.agency_path)
    return Certificate.officer_id == (principal.officer_id or -1)


async def certificate_list(
    db: AsyncSession,
    principal: Principal,
    *,
    status: CertificateStatus | None = None,
    kind: CertificateKind | None = None,
    q: str = "",
    page: int = 1,
    per_page: int = 50,
    on: dt.date | None = None,
) -> tuple[list[CertificateOut], int]:
    """Cards of the principal's subtree (an officer: their own), newest first; ``status`` is effective."""
    on = on or today()
    where: list[Any] = [certificate_scope(principal)]
    if kind:
        where.append(Certificate.kind == kind.value)
    if q.strip():
        term = q.strip()
        where.append(or_(Certificate.number == term, Certificate.holder_name.contains(term)))
    if status is CertificateStatus.EXPIRED:
        where.append(
            or_(
                Certificate.status == "expired",
                and_(Certificate.status.in_(LIVE), Certificate.valid_until < on),
            )
        )
    elif status in (CertificateStatus.VALID, CertificateStatus.SUSPENDED):
        where += [Certificate.status == status.value, Certificate.valid_until >= on]
    elif status is not None:
        where.append(Certificate.status == status.value)
    base = select(Certificate).join(Agency, Agency.id == Certificate.agency_id).where(*where)
    total = await count_rows(db, base)
    rows = await db.scalars(page_of(base.order_by(Certificate.id.desc()), page=page, per_page=per_page))
    return [certificate_out(c, on) for c in rows], total


async def certificate_get(db: AsyncSession, principal: Principal, certificate_id: int) -> Certificate:
    row = await db.scalar(
        select(Certificate)
        .join(Agency, Agency.id == Certificate.agency_id)
        .where(Certificate.id == certificate_id, certificate_scope(principal))
    )
    if row is None:
        raise NotFound("证件不存在或不在您的管理范围内")
    return row


async def certificate_detail(
    db: AsyncSession, principal: Principal, certificate_id: int, *, on: dt.date | None = None
) -> CertificateDetail:
    c = await certificate_get(db, principal, certificate_id)
    authority = await db.get(Agency, c.authority_id)
    policy = await authority_policy(db, authority) if authority else DEFAULT_POLICY
    events = await db.scalars(
        select(CertificateEvent).where(CertificateEvent.certificate_id == c.id).order_by(CertificateEvent.id)
    )
    return CertificateDetail(
        certificate=certificate_out(c, on or today(), policy),
        events=[
            project(
                EventOut,
                e,
                action_label=_action_label(e.action),
                cancel_reason=CancelReason(e.cancel_reason).label if e.cancel_reason else "",
                actor=e.actor_name,
            )
            for e in events
        ],
    )


def _action_label(action: str) -> str:
    if action == "issue":
        return "发证"
    if action == "reissue":
        return "补发"
    return CertificateAction(action).label


async def certificate_replaced_by(db: AsyncSession, certificate_id: int) -> int | None:
    """The card issued in place of this one (补发), if any."""
    return await db.scalar(select(Certificate.id).where(Certificate.replaces_id == certificate_id))


async def officers_page(
    db: AsyncSession, principal: Principal, *, page: int, per_page: int
) -> tuple[list[int], int]:
    """One page of the officers of the principal's subtree (ids, by agency), and how many there are."""
    base = (
        select(Officer.id)
        .join(Agency, Agency.id == Officer.agency_id)
        .where(Agency.path.startswith(principal.agency_path))
    )
    total = await count_rows(db, base)
    ids = await db.scalars(page_of(base.order_by(Agency.path, Officer.id), page=page, per_page=per_page))
    return list(ids), total
