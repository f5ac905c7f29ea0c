"""Status changes of a card (暂扣 · 恢复 · 吊销 · 注销 · 挂失 · 换发), and the exit procedure's
withdrawal of an officer's cards. Each change is a ``CertificateEvent`` and an audit event."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from app.accounts.models import Agency
from app.certificates import rules
from app.certificates.keys import current_signer
from app.certificates.models import (
    Certificate,
    ReapplicationBar,
)
from app.certificates.rules import (
    CancelReason,
    CertificateAction,
    CertificateKind,
)
from app.certificates.schemas import ActionIn
from app.certificates.selectors import LIVE, authority_policy, certificate_get
from app.certificates.services.eligibility import require_eligible
from app.certificates.services.issuance import (
    IssueContext,
    event_record,
    holder_of,
    holder_snapshot,
    require_authority,
    sign_card,
)
from app.lib.actor import Actor
from app.lib.clock import today
from app.lib.errors import (
    Conflict,
    DomainError,
    StaleForm,
)
from app.lib.policy import DEFAULT_POLICY, Policy
from app.lib.security import Principal, actor_of


async def status_change(
    db: AsyncSession,
    cert: Certificate,
    data: ActionIn,
    *,
    actor: Actor,
    on: dt.date,
    policy: Policy,
    ctx: IssueContext | None = None,
) -> None:
    """Move one card (already loaded) through ``data.action``: the transition check, what the action
    does besides the status (吊销's reapplication bar, 换发's new validity and QR), event and audit."""
    action, renew = data.action, data.action is CertificateAction.RENEW
    ground = data.ground.strip() or ("有效期届满换发" if renew else "")
    if not ground:
        raise DomainError("请填写变更依据（事实与理由）", field="ground")
    if action is CertificateAction.CANCEL and data.cancel_reason is None:
        raise DomainError("注销须选择注销原因", field="cancel_reason")
    current = rules.effective_status(cert.status, cert.valid_until, on)
    try:
        target = rules.transition(current, action)
    except rules.TransitionRefused as e:
        raise Conflict(f"证件 {cert.number}：{e.message}", field="action") from e
    before = cert.status
    if renew:
        extra = await _renew(db, cert, actor=actor, on=on, policy=policy, ctx=ctx)
    elif action is CertificateAction.REVOKE:
        extra = _reapplication_bar(db, cert, on, policy)
    else:
        extra = {}
    cert.status = target.value
    cert.status_changed_on = on
    await db.flush()
    reason = data.cancel_reason.value if data.cancel_reason and not renew else ""
    await event_record(
        db, cert, action.value, before, target, ground, data.evidence.strip(), reason, on, actor, extra
    )


def _reapplication_bar(db: AsyncSession, cert: Certificate, on: dt.date, policy: Policy) -> dict[str, Any]:
    """吊销 bars the holder from applying again for the policy's years (none when 0); the audit's extra."""
    if policy.revocation_bar_years == 0:
        return {}
    until = rules.reapplication_barred_until(on, policy.revocation_bar_years)
    bar_until = None if until == rules.BARRED_FOR_EVER else until
    db.add(
        ReapplicationBar(
            officer_id=cert.officer_id, certificate_id=cert.id, revoked_on=on, barred_until=bar_until
        )
    )
    return {"barred_until": bar_until.isoformat() if bar_until else "forever"}


async def certificate_act(
    db: AsyncSession,
    *,
    principal: Principal,
    certificate_id: int,
    data: ActionIn,
    ctx: IssueContext | None = None,
    on: dt.date | None = None,
) -> Certificate:
    """暂扣 · 恢复 · 吊销 · 注销 · 挂失 · 换发 of one card, only from the statuses that allow it."""
    require_authority(principal, "变更证件状态")
    on = on or today()
    cert = await certificate_get(db, principal, certificate_id)
    if data.version is not None and data.version != cert.version:
        raise StaleForm("证件已被他人修改，请刷新后重试")
    authority = await db.get(Agency, cert.authority_id)
    assert authority is not None
    policy = await authority_policy(db, authority)
    actor = actor_of(principal)
    # The card's version column makes a concurrent change fail the flush: the form was stale.
    try:
        await status_change(db, cert, data, actor=actor, on=on, policy=policy, ctx=ctx)
        await db.flush()
    except StaleDataError as e:
        raise StaleForm("证件已被他人修改，请刷新后重试") from e
    return cert


async def _renew(
    db: AsyncSession,
    cert: Certificate,
    *,
    actor: Actor,
    on: dt.date,
    policy: Policy,
    ctx: IssueContext | None,
) -> dict[str, Any]:
    """换发: same number, validity continued from the old last day, the holder's details as they are
    now, a new signed QR. Returns what the audit adds (the old last day and key, the new last day)."""
    if ctx is None:
        raise DomainError("换发需要签名配置")
    window = policy.certificate_renewal_window_months
    if not rules.renewal_open(cert.valid_until, on, window):
        opens = rules.renewal_opens_on(cert.valid_until, window)
        raise Conflict(f"换发自有效期届满前{window}个月（{opens:%Y年%m月%d日}）起方可办理", field="action")
    officer, agency = await holder_of(db, cert)
    await require_eligible(db, officer, agency, CertificateKind(cert.kind), on, ignore_holds=True)
    new_from = cert.valid_until + dt.timedelta(days=1)
    _, new_until = rules.validity(new_from, policy.certificate_valid_years)
    signer = await current_signer(db, secret_key=ctx.secret_key, actor=actor)
    before = {"valid_until": cert.valid_until.isoformat(), "kid": cert.kid}
    holder_snapshot(cert, officer, agency)
    cert.valid_until = new_until
    sign_card(cert, signer, ctx.base_url)
    return {"before": before, "valid_until": new_until.isoformat()}


async def certificates_withdraw_for_officer(
    session: AsyncSession,
    *,
    officer_id: int,
    action: str,
    kinds: list[str],
    ground: str,
    evidence: str,
    actor: Principal,
    on: dt.date,
    cancel_reason: CancelReason = CancelReason.QUALIFICATION_REMOVED,
) -> list[Certificate]:
    """吊销 or 注销 every valid or suspended card of ``kinds`` of an officer, in the caller's
    transaction (no commit).

    For the exit procedure (assessments): ``action`` is 'revoke' (records the reapplication bar of
    the card's issuing authority's policy) or 'cancel' (``cancel_reason``: qualification removed,
    or left the post for 调离执法岗位); ``kinds``
    are the policy's ``exit_certificate_kinds``. Cards that already read expired or final are left
    as they are, and so are cards of other kinds. Returns the cards changed.
    """
    act = CertificateAction(action)
    if act not in (CertificateAction.REVOKE, CertificateAction.CANCEL):
        raise DomainError("只能吊销或注销证件", field="action")
    cards = list(
        (
            await session.scalars(
                select(Certificate)
                .where(
                    Certificate.officer_id == officer_id,
                    Certificate.kind.in_(kinds),
                    Certificate.status.in_(LIVE),
                    Certificate.valid_until >= on,
                )
                .order_by(Certificate.id)
            )
        ).all()
    )
    changed: list[Certificate] = []
    policies: dict[int, Policy] = {}
    who = actor_of(actor)
    data = ActionIn(
        action=act,
        ground=ground,
        evidence=evidence,
        cancel_reason=cancel_reason if act is CertificateAction.CANCEL else None,
    )
    for cert in cards:
        if cert.authority_id not in policies:
            authority = await session.get(Agency, cert.authority_id)
            policies[cert.authority_id] = (
                await authority_policy(session, authority) if authority else DEFAULT_POLICY
            )
        await status_change(session, cert, data, actor=who, on=on, policy=policies[cert.authority_id])
        changed.append(cert)
    return changed
