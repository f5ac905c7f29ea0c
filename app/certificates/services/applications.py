"""Applications (申领) and their approval (批准 issues the cards, 驳回 with a reason): all or nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency, Officer
from app.audit.services import audit_change, audit_record
from app.certificates.keys import current_signer
from app.certificates.models import (
    ApplicationBatch,
    CertificateApplication,
)
from app.certificates.rules import (
    CertificateKind,
)
from app.certificates.selectors import APPLICATION_LABELS, authorities_of
from app.certificates.services.eligibility import (
    ApplicationRefused,
    missing_by_officer,
    officers_in_scope,
    refusal_line,
)
from app.certificates.services.issuance import IssueContext, card_issue, require_authority
from app.lib.chunks import chunks
from app.lib.clock import today, utcnow
from app.lib.errors import (
    Conflict,
    DomainError,
    FieldError,
    Forbidden,
)
from app.lib.security import Principal, actor_of


async def certificate_apply(
    db: AsyncSession,
    *,
    principal: Principal,
    officer_ids: Sequence[int],
    kind: CertificateKind = CertificateKind.ENFORCEMENT,
    note: str = "",
    on: dt.date | None = None,
) -> ApplicationBatch:
    """申领 for one officer or a batch: all or nothing. Refused with every officer's missing conditions."""
    if not principal.is_admin:
        raise Forbidden("只有管理员可以申领证件")
    if not officer_ids:
        raise DomainError("请选择申领证件的执法人员", field="officer_ids")
    on = on or today()
    ids = list(dict.fromkeys(officer_ids))
    officers, agencies = await officers_in_scope(db, principal, ids)
    authorities = await authorities_of(db, {a.id: a.path for a in agencies.values()})
    facts = await missing_by_officer(db, list(officers.values()), agencies, kind, on)
    errors: list[FieldError] = []
    for oid in ids:
        o = officers.get(oid)
        if o is None:
            errors.append(FieldError(f"officer:{oid}", f"编号 {oid}：执法人员不存在或不在您的管理范围内"))
            continue
        reasons = [m.message for m in facts[oid]]
        if o.agency_id not in authorities:
            reasons.append("所在单位没有上级发证机关")
        if reasons:
            errors.append(FieldError(f"officer:{oid}", refusal_line(o, reasons)))
    if errors:
        raise ApplicationRefused(
            f"{len(errors)} 名人员不符合申领条件，本次申领未提交（共 {len(ids)} 人）", errors=errors
        )
    batch = ApplicationBatch(
        agency_id=principal.agency_id or next(iter(agencies)),
        kind=kind.value,
        size=len(ids),
        note=note.strip(),
        created_by_id=principal.account_id or None,
        created_by_name=actor_of(principal).name,
    )
    db.add(batch)
    await db.flush()
    for oid in ids:
        o = officers[oid]
        db.add(
            CertificateApplication(
                batch_id=batch.id,
                officer_id=oid,
                agency_id=o.agency_id,
                authority_id=authorities[o.agency_id].id,
                kind=kind.value,
            )
        )
    await db.flush()
    await audit_change(
        db,
        principal,
        "certificate.apply",
        batch,
        {"kind": kind.value, "officer_ids": ids, "note": batch.note},
    )
    return batch


async def application_decide(
    db: AsyncSession,
    *,
    principal: Principal,
    application_ids: Sequence[int],
    approve: bool,
    reason: str = "",
    ctx: IssueContext,
    on: dt.date | None = None,
) -> list[CertificateApplication]:
    """批准 (issues each card: number, validity, signed QR) or 驳回 with a reason. All or nothing.

    Approval checks the conditions again: an officer who lost one since applying is refused by name.
    """
    require_authority(principal, "审批证件申领")
    reason = reason.strip()
    if not approve and not reason:
        raise DomainError("驳回申领须填写理由", field="reason")
    on = on or today()
    ids = list(dict.fromkeys(application_ids))
    apps: dict[int, CertificateApplication] = {}
    for chunk in chunks(sorted(ids)):
        rows = await db.scalars(
            select(CertificateApplication)
            .join(Agency, Agency.id == CertificateApplication.agency_id)
            .where(CertificateApplication.id.in_(chunk), Agency.path.startswith(principal.agency_path))
        )
        apps.update({a.id: a for a in rows})
    errors = [
        FieldError(f"application:{i}", f"申领 {i} 不存在或不在您的管理范围内") for i in ids if i not in apps
    ]
    errors += [
        FieldError(f"application:{i}", f"申领 {i} 已{APPLICATION_LABELS[a.status]}，不能再次审批")
        for i, a in apps.items()
        if a.status != "pending"
    ]
    if errors:
        raise Conflict("审批未完成：" + "；".join(e.message for e in errors[:3]), errors=errors)
    actor = actor_of(principal)
    decided = list(apps.values())
    if approve:
        officer_ids = [a.officer_id for a in decided]
        officers, agencies = await officers_in_scope(db, principal, officer_ids)
        authorities = {
            a.id: a
            for a in await db.scalars(select(Agency).where(Agency.id.in_({x.authority_id for x in decided})))
        }
        by_kind: dict[CertificateKind, list[Officer]] = {}
        for a in decided:
            by_kind.setdefault(CertificateKind(a.kind), []).append(officers[a.officer_id])
        for kind, group in by_kind.items():
            facts = await missing_by_officer(db, group, agencies, kind, on, ignore_pending=True)
            for o in group:
                if facts[o.id]:
                    line = refusal_line(o, [m.message for m in facts[o.id]])
                    errors.append(FieldError(f"officer:{o.id}", line))
        if errors:
            raise ApplicationRefused("部分人员已不符合发证条件，请驳回其申领", errors=errors)
        signer = await current_signer(db, secret_key=ctx.secret_key, actor=actor)
        for a in sorted(decided, key=lambda x: x.id):
            o = officers[a.officer_id]
            cert = await card_issue(
                db,
                officer=o,
                agency=agencies[o.agency_id],
                authority=authorities[a.authority_id],
                kind=CertificateKind(a.kind),
                on=on,
                signer=signer,
                ctx=ctx,
                actor=actor,
                ground=reason or "申领经审核批准",
            )
            a.certificate_id = cert.id
    for a in decided:
        a.status = "approved" if approve else "rejected"
        a.reason = reason
        a.decided_at = utcnow()
        a.decided_by_id = principal.account_id or None
        a.decided_by_name = actor.name
    await audit_record(
        db,
        actor=actor,
        action="certificate.approve" if approve else "certificate.reject",
        entity_type="certificate_application",
        entity_id=",".join(str(i) for i in sorted(apps))[:64],
        data={"application_ids": sorted(apps), "reason": reason},
    )
    return decided
