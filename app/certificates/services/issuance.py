"""Issuance (发证) and numbering: the next number of the authority's template, the signed QR, the
card row with its event and audit record; 补发 (a new number for a lost card)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency, Officer
from app.audit.services import audit_record
from app.certificates import rules, signing
from app.certificates.keys import Signer, current_signer
from app.certificates.models import (
    Certificate,
    CertificateEvent,
    NumberSequence,
)
from app.certificates.rules import (
    CertificateKind,
    CertificateStatus,
)
from app.certificates.schemas import ReissueIn
from app.certificates.selectors import authority_policy, certificate_get
from app.certificates.services.eligibility import require_eligible
from app.lib.actor import Actor
from app.lib.clock import today
from app.lib.errors import (
    Conflict,
    DomainError,
    Forbidden,
)
from app.lib.security import Principal, actor_of


@dataclass(frozen=True)
class IssueContext:
    """What issuance needs besides the database: the sealing secret and the public base URL."""

    secret_key: str
    base_url: str


def require_authority(principal: Principal, what: str) -> None:
    if not principal.is_authority:
        raise Forbidden(f"只有发证机关（司法行政管理员）可以{what}")


async def number_reserve(db: AsyncSession, key: str, count: int = 1) -> int:
    """Take ``count`` values of the counter ``key``; returns the last. Atomic on both engines.

    PostgreSQL: the upsert locks the counter row until commit, so concurrent issuers queue on it
    and never see the same value; SQLite: writers are serialised by BEGIN IMMEDIATE. A rolled-back
    transaction gives its values back, which is harmless: they were never printed.
    """
    dialect = db.get_bind().dialect.name
    ins: Any = pg_insert(NumberSequence) if dialect == "postgresql" else sqlite_insert(NumberSequence)
    stmt = (
        ins.values(key=key, last_value=count)
        .on_conflict_do_update(
            index_elements=[NumberSequence.key], set_={"last_value": NumberSequence.last_value + count}
        )
        .returning(NumberSequence.last_value)
    )
    return int((await db.execute(stmt)).scalar_one())


def sequence_key(template: str, *, region: str, year: int, kind_code: str) -> str:
    values = {"region": region, "year": str(year), "kind": kind_code}
    scope = rules.sequence_scope(template)
    return template + "|" + "|".join(f"{f}={values[f]}" for f in scope)


async def number_next(
    db: AsyncSession, *, template: str, region: str, year: int, kind: CertificateKind
) -> str:
    """The next certificate number of the authority's template; skips any number already taken."""
    key = sequence_key(template, region=region, year=year, kind_code=kind.code)
    for _ in range(1000):
        seq = await number_reserve(db, key)
        try:
            number = rules.format_number(template, region, year, seq, kind.code)
        except rules.NumberTemplateError as e:
            raise Conflict(e.message) from e
        taken = await db.scalar(select(Certificate.id).where(Certificate.number == number))
        if taken is None:
            return number
    raise Conflict("无法生成新的证号，请检查证号模板")


def holder_snapshot(cert: Certificate, officer: Officer, agency: Agency) -> None:
    """What the card prints of its holder, copied from the officer at issuance and at 换发."""
    cert.holder_name, cert.agency_name, cert.agency_id = officer.name, agency.name, agency.id
    cert.field, cert.area = officer.field, officer.area


def sign_card(cert: Certificate, signer: Signer, base_url: str) -> None:
    """Sign what the card prints (its number, holder, agency, validity, kind) into its QR, and keep
    the token the public page compares a scan with."""
    fields = signing.CardFields(
        number=cert.number,
        name=cert.holder_name,
        agency=cert.agency_name,
        valid_from=cert.valid_from,
        valid_until=cert.valid_until,
        kind=CertificateKind(cert.kind),
    )
    try:
        qr_text = signing.sign_payload(fields, signer.key, signer.kid, base_url)
    except ValueError as e:
        raise DomainError(f"证件内容不能签名：{e}") from e
    cert.qr_text, cert.token, cert.kid = qr_text, signing.token_of(qr_text), signer.kid


async def holder_of(db: AsyncSession, cert: Certificate) -> tuple[Officer, Agency]:
    """The card's holder and the holder's agency now (not the snapshot the card prints)."""
    officer = await db.get(Officer, cert.officer_id)
    agency = await db.get(Agency, officer.agency_id) if officer else None
    assert officer is not None and agency is not None
    return officer, agency


async def card_issue(
    db: AsyncSession,
    *,
    officer: Officer,
    agency: Agency,
    authority: Agency,
    kind: CertificateKind,
    on: dt.date,
    signer: Signer,
    ctx: IssueContext,
    actor: Actor,
    replaces: Certificate | None = None,
    ground: str = "",
    evidence: str = "",
) -> Certificate:
    policy = await authority_policy(db, authority)
    number = await number_next(
        db,
        template=policy.certificate_number_template,
        region=authority.region_code,
        year=on.year,
        kind=kind,
    )
    if replaces is not None:  # 补发: the replacement runs to the lost card's end
        valid_from, valid_until = on, max(on, replaces.valid_until)
    else:
        valid_from, valid_until = rules.validity(on, policy.certificate_valid_years)
    cert = Certificate(
        number=number,
        kind=kind.value,
        officer_id=officer.id,
        authority_id=authority.id,
        authority_name=authority.authority_name or authority.name,
        valid_from=valid_from,
        valid_until=valid_until,
        issued_on=on,
        status=CertificateStatus.VALID.value,
        status_changed_on=on,
        replaces_id=replaces.id if replaces else None,
    )
    holder_snapshot(cert, officer, agency)
    sign_card(cert, signer, ctx.base_url)
    db.add(cert)
    await db.flush()
    action = "reissue" if replaces else "issue"
    await event_record(db, cert, action, "", CertificateStatus.VALID, ground, evidence, "", on, actor)
    return cert


async def event_record(
    db: AsyncSession,
    cert: Certificate,
    action: str,
    before: str,
    after: CertificateStatus,
    ground: str,
    evidence: str,
    cancel_reason: str,
    on: dt.date,
    actor: Actor,
    extra: dict[str, Any] | None = None,
) -> None:
    db.add(
        CertificateEvent(
            certificate_id=cert.id,
            action=action,
            from_status=before,
            to_status=after.value,
            ground=ground,
            evidence=evidence,
            cancel_reason=cancel_reason,
            effective_on=on,
            actor_id=actor.account_id,
            actor_name=actor.name,
        )
    )
    await audit_record(
        db,
        actor=actor,
        action=f"certificate.{action}",
        entity_type="certificate",
        entity_id=cert.number,
        agency_id=cert.agency_id,
        data={
            "from": before,
            "to": after.value,
            "ground": ground,
            "evidence": evidence,
            "cancel_reason": cancel_reason,
            "on": on.isoformat(),
            **(extra or {}),
        },
    )


async def certificate_reissue(
    db: AsyncSession,
    *,
    principal: Principal,
    certificate_id: int,
    data: ReissueIn,
    ctx: IssueContext,
    on: dt.date | None = None,
) -> Certificate:
    """补发: a new card under a new number for a card declared lost; the old number stays void."""
    require_authority(principal, "补发证件")
    on = on or today()
    old = await certificate_get(db, principal, certificate_id)
    if old.status != CertificateStatus.LOST.value:
        raise Conflict("只有已挂失（遗失作废）的证件可以补发", field="action")
    if await db.scalar(select(Certificate.id).where(Certificate.replaces_id == old.id)):
        raise Conflict(f"证件 {old.number} 已补发过，不能重复补发")
    if not data.ground.strip():
        raise DomainError("请填写补发依据", field="ground")
    officer, agency = await holder_of(db, old)
    authority = await db.get(Agency, old.authority_id)
    assert authority is not None
    kind = CertificateKind(old.kind)
    await require_eligible(db, officer, agency, kind, on, ignore_pending=True)
    actor = actor_of(principal)
    signer = await current_signer(db, secret_key=ctx.secret_key, actor=actor)
    cert = await card_issue(
        db,
        officer=officer,
        agency=agency,
        authority=authority,
        kind=kind,
        on=on,
        signer=signer,
        ctx=ctx,
        actor=actor,
        replaces=old,
        ground=data.ground.strip(),
        evidence=data.evidence.strip(),
    )
    return cert
