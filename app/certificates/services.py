"""Use cases of certificates: eligibility, applications, issuance, the status lifecycle, card files.

One transaction per use case (``certificates_withdraw_for_officer`` is the exception: it runs in
its caller's, the exit procedure's). Scope: an administrator sees the certificates and applications
of their agency subtree, an officer only their own cards; anything else is not found. Only the
issuing authority (司法行政管理员) decides applications and changes a card's status; every change
is a ``CertificateEvent`` (ground, evidence, actor) and an audit event in the same transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from app.accounts.models import Agency, Officer, PostingHistory
from app.accounts.rules import path_ids
from app.accounts.selectors import agency_policies
from app.audit.services import audit_record
from app.certificates import rules, signing
from app.certificates.keys import Signer, current_signer
from app.certificates.models import (
    ApplicationBatch,
    Certificate,
    CertificateApplication,
    CertificateEvent,
    NumberSequence,
    ReapplicationBar,
)
from app.certificates.rules import (
    CancelReason,
    CertificateAction,
    CertificateKind,
    CertificateStatus,
    EligibilityFacts,
    Missing,
)
from app.certificates.schemas import (
    ApplicationOut,
    CertificateDetail,
    CertificateOut,
    EligibilityOut,
    EventOut,
    MissingOut,
)
from app.exams.qualification import qualification_valid_map
from app.lib.actor import SYSTEM, Actor
from app.lib.clock import today, utcnow
from app.lib.enums import EmploymentStatus, StaffType
from app.lib.errors import (
    Conflict,
    DomainError,
    FieldError,
    Forbidden,
    InsufficientStorage,
    NotFound,
    StaleForm,
)
from app.lib.policy import DEFAULT_POLICY, Policy
from app.lib.security import Principal
from app.settings import ROOT
from app.training import rules as training_rules
from app.training.models import TrainingYearTotal

_CHUNK = 1000
LIVE = (CertificateStatus.VALID.value, CertificateStatus.SUSPENDED.value)
APPLICATION_LABELS = {"pending": "待审批", "approved": "已批准", "rejected": "已驳回"}
OUT_DIR = ROOT / "certificates" / "out"


def actor_of(principal: Principal) -> Actor:
    return SYSTEM if principal.account_id == 0 else principal.actor


class ApplicationRefused(DomainError):
    """申领未受理: at least one officer does not meet the conditions; ``errors`` name each one."""

    status_code = 422
    title = "申领条件不符"


@dataclass(frozen=True)
class IssueContext:
    """What issuance needs besides the database: the sealing secret and the public base URL."""

    secret_key: str
    base_url: str


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


# ---------------------------------------------------------------- authorities and policy


async def authorities_of(db: AsyncSession, paths: dict[int, str]) -> dict[int, Agency]:
    """The nearest issuing authority at or above each agency (id → path given); absent when none."""
    wanted = sorted({i for p in paths.values() for i in path_ids(p)})
    found: dict[int, Agency] = {}
    for chunk in _chunks(wanted):
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


async def _policy_of_authority(db: AsyncSession, authority: Agency) -> Policy:
    return (await agency_policies(db, {authority.id: authority.path})).get(authority.id, DEFAULT_POLICY)


# ---------------------------------------------------------------- eligibility


async def _facts(
    db: AsyncSession,
    officers: Sequence[Officer],
    agencies: dict[int, Agency],
    kind: CertificateKind,
    on: dt.date,
    *,
    ignore_pending: bool = False,
    ignore_holds: bool = False,
) -> dict[int, list[Missing]]:
    """Every missing condition of each officer, in a handful of set-based queries."""
    ids = sorted({o.id for o in officers})
    policies = await agency_policies(db, {a.id: a.path for a in agencies.values()})
    quals = await qualification_valid_map(db, ids, as_of=on)
    year = on.year - 1  # the last completed year
    totals: dict[int, tuple[int, int, int]] = {}
    joined: dict[int, dt.date] = {}
    barred: dict[int, dt.date] = {}
    holds: dict[int, str] = {}
    pending: set[int] = set()
    for chunk in _chunks(ids):
        t = TrainingYearTotal
        for oid, g, s, n in await db.execute(
            select(t.officer_id, t.general_law, t.special_law, t.new_law).where(
                t.year == year, t.officer_id.in_(chunk)
            )
        ):
            totals[oid] = (g or 0, s or 0, n or 0)
        for oid, started in await db.execute(
            select(PostingHistory.officer_id, func.min(PostingHistory.started_on))
            .where(PostingHistory.officer_id.in_(chunk))
            .group_by(PostingHistory.officer_id)
        ):
            joined[oid] = started
        for oid, until in await db.execute(
            select(ReapplicationBar.officer_id, ReapplicationBar.barred_until).where(
                ReapplicationBar.officer_id.in_(chunk),
                or_(ReapplicationBar.barred_until.is_(None), ReapplicationBar.barred_until >= on),
            )
        ):
            end = rules.BARRED_FOR_EVER if until is None else until
            barred[oid] = max(end, barred.get(oid, end))
        for oid, number in await db.execute(
            select(Certificate.officer_id, Certificate.number).where(
                Certificate.officer_id.in_(chunk),
                Certificate.kind == kind.value,
                Certificate.status.in_(LIVE),
                Certificate.valid_until >= on,
            )
        ):
            holds[oid] = number
        pending.update(
            await db.scalars(
                select(CertificateApplication.officer_id).where(
                    CertificateApplication.officer_id.in_(chunk),
                    CertificateApplication.kind == kind.value,
                    CertificateApplication.status == "pending",
                )
            )
        )
    out: dict[int, list[Missing]] = {}
    for o in officers:
        policy = policies.get(o.agency_id, DEFAULT_POLICY)
        training_year: int | None = None
        needed = 0
        if policy.training_required_for_issue:
            rule = training_rules.TrainingRule.from_policy(policy)
            requirement = training_rules.requirement_for(rule, year, joined.get(o.id))
            if requirement is not None:
                training_year = year
                needed, _, _ = training_rules.evaluate(
                    requirement,
                    training_rules.expected_by(requirement, on),
                    totals.get(o.id, (0, 0, 0)),
                    as_of=on,
                )
        staff = StaffType(o.staff_type)
        employment = EmploymentStatus(o.employment_status)
        facts = EligibilityFacts(
            kind=kind,
            staff_type_label=staff.label,
            staff_type_allowed=policy.staff_type_allowed(staff),
            employment_label=employment.label,
            in_post=employment is EmploymentStatus.ACTIVE,
            exam_valid=o.id in quals,
            training_year=training_year,
            training_needed_tenths=needed,
            barred_until=barred.get(o.id),
            holds_number=None if ignore_holds else holds.get(o.id),
            pending=False if ignore_pending else o.id in pending,
        )
        out[o.id] = rules.missing_conditions(facts)
    return out


async def _officers_in_scope(
    db: AsyncSession, principal: Principal, officer_ids: Sequence[int]
) -> tuple[dict[int, Officer], dict[int, Agency]]:
    officers: dict[int, Officer] = {}
    agencies: dict[int, Agency] = {}
    for chunk in _chunks(sorted(set(officer_ids))):
        rows = await db.execute(
            select(Officer, Agency)
            .join(Agency, Agency.id == Officer.agency_id)
            .where(Officer.id.in_(chunk), Agency.path.startswith(principal.agency_path))
        )
        for officer, agency in rows:
            officers[officer.id] = officer
            agencies[agency.id] = agency
    return officers, agencies


async def eligibility_check(
    db: AsyncSession,
    principal: Principal,
    officer_ids: Sequence[int],
    *,
    kind: CertificateKind = CertificateKind.ENFORCEMENT,
    on: dt.date | None = None,
) -> list[EligibilityOut]:
    """For each officer: eligible, or exactly which conditions are missing (in the order asked)."""
    if not principal.is_admin:
        raise Forbidden("只有管理员可以查询申领条件")
    on = on or today()
    officers, agencies = await _officers_in_scope(db, principal, officer_ids)
    facts = await _facts(db, list(officers.values()), agencies, kind, on)
    out: list[EligibilityOut] = []
    for oid in dict.fromkeys(officer_ids):
        o = officers.get(oid)
        if o is None:
            out.append(
                EligibilityOut(
                    oid, "", "", False, [MissingOut("not_found", "执法人员不存在或不在您的管理范围内")]
                )
            )
            continue
        missing = facts[oid]
        out.append(
            EligibilityOut(
                officer_id=oid,
                name=o.name,
                agency_name=agencies[o.agency_id].name,
                eligible=not missing,
                missing=[MissingOut(m.code, m.message) for m in missing],
            )
        )
    return out


# ---------------------------------------------------------------- applications


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
    officers, agencies = await _officers_in_scope(db, principal, ids)
    authorities = await authorities_of(db, {a.id: a.path for a in agencies.values()})
    facts = await _facts(db, list(officers.values()), agencies, kind, on)
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
            errors.append(FieldError(f"officer:{oid}", f"{o.name}：{'；'.join(reasons)}"))
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
                purpose="new",
                status="pending",
            )
        )
    await db.flush()
    await audit_record(
        db,
        actor=actor_of(principal),
        action="certificate.apply",
        entity_type="certificate_application_batch",
        entity_id=batch.id,
        agency_id=batch.agency_id,
        data={"kind": kind.value, "officer_ids": ids, "note": batch.note},
    )
    await db.commit()
    return batch


def application_out(
    a: CertificateApplication, officer_name: str, agency_name: str, number: str | None
) -> ApplicationOut:
    kind = CertificateKind(a.kind)
    return ApplicationOut(
        id=a.id,
        batch_id=a.batch_id,
        officer_id=a.officer_id,
        officer_name=officer_name,
        agency_name=agency_name,
        kind=kind,
        kind_label=kind.label,
        purpose=a.purpose,
        status=a.status,
        status_label=APPLICATION_LABELS[a.status],
        reason=a.reason,
        created_at=a.created_at,
        decided_by=a.decided_by_name,
        decided_at=a.decided_at,
        certificate_id=a.certificate_id,
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
    base = select(a).join(Agency, Agency.id == a.agency_id).where(*where)
    total = int(await db.scalar(select(func.count()).select_from(base.subquery())) or 0)
    rows = await db.execute(
        select(a, Officer.name, Agency.name, Certificate.number)
        .join(Agency, Agency.id == a.agency_id)
        .join(Officer, Officer.id == a.officer_id)
        .outerjoin(Certificate, Certificate.id == a.certificate_id)
        .where(*where)
        .order_by(a.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return [application_out(app, on, an, num) for app, on, an, num in rows], total


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


def _sign(
    cert_fields: signing.CardFields, signer: Signer, base_url: str
) -> tuple[str, str]:  # (qr_text, token)
    try:
        qr_text = signing.sign_payload(cert_fields, signer.key, signer.kid, base_url)
    except ValueError as e:
        raise DomainError(f"证件内容不能签名：{e}") from e
    return qr_text, signing.token_of(qr_text)


async def _issue(
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
    policy = await _policy_of_authority(db, authority)
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
    fields = signing.CardFields(
        number=number,
        name=officer.name,
        agency=agency.name,
        valid_from=valid_from,
        valid_until=valid_until,
        kind=kind,
    )
    qr_text, token = _sign(fields, signer, ctx.base_url)
    cert = Certificate(
        number=number,
        kind=kind.value,
        officer_id=officer.id,
        authority_id=authority.id,
        agency_id=agency.id,
        holder_name=officer.name,
        agency_name=agency.name,
        field=officer.field,
        area=officer.area,
        authority_name=authority.authority_name or authority.name,
        valid_from=valid_from,
        valid_until=valid_until,
        issued_on=on,
        status=CertificateStatus.VALID.value,
        status_changed_on=on,
        qr_text=qr_text,
        token=token,
        kid=signer.kid,
        replaces_id=replaces.id if replaces else None,
    )
    db.add(cert)
    await db.flush()
    action = "reissue" if replaces else "issue"
    await _event(db, cert, action, "", CertificateStatus.VALID, ground, evidence, "", on, actor)
    return cert


async def _event(
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


def _require_authority(principal: Principal, what: str) -> None:
    if not principal.is_authority:
        raise Forbidden(f"只有发证机关（司法行政管理员）可以{what}")


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
    _require_authority(principal, "审批证件申领")
    reason = reason.strip()
    if not approve and not reason:
        raise DomainError("驳回申领须填写理由", field="reason")
    on = on or today()
    ids = list(dict.fromkeys(application_ids))
    apps: dict[int, CertificateApplication] = {}
    for chunk in _chunks(sorted(ids)):
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
        officers, agencies = await _officers_in_scope(db, principal, officer_ids)
        authorities = {
            a.id: a
            for a in await db.scalars(select(Agency).where(Agency.id.in_({x.authority_id for x in decided})))
        }
        by_kind: dict[CertificateKind, list[Officer]] = {}
        for a in decided:
            by_kind.setdefault(CertificateKind(a.kind), []).append(officers[a.officer_id])
        for kind, group in by_kind.items():
            facts = await _facts(db, group, agencies, kind, on, ignore_pending=True)
            for o in group:
                if facts[o.id]:
                    errors.append(
                        FieldError(
                            f"officer:{o.id}", f"{o.name}：{'；'.join(m.message for m in facts[o.id])}"
                        )
                    )
        if errors:
            raise ApplicationRefused("部分人员已不符合发证条件，请驳回其申领", errors=errors)
        signer = await current_signer(db, secret_key=ctx.secret_key, actor=actor)
        for a in sorted(decided, key=lambda x: x.id):
            o = officers[a.officer_id]
            cert = await _issue(
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
    await db.commit()
    return decided


# ---------------------------------------------------------------- reading certificates


def certificate_out(c: Certificate, on: dt.date, policy: Policy | None = None) -> CertificateOut:
    status = rules.effective_status(c.status, c.valid_until, on)
    kind = CertificateKind(c.kind)
    window = (policy or DEFAULT_POLICY).certificate_renewal_window_months
    actions = rules.allowed_actions(status)
    if CertificateAction.RENEW in actions and not rules.renewal_open(c.valid_until, on, window):
        actions.remove(CertificateAction.RENEW)
    return CertificateOut(
        id=c.id,
        number=c.number,
        kind=kind,
        kind_label=kind.label,
        officer_id=c.officer_id,
        holder_name=c.holder_name,
        agency_name=c.agency_name,
        field=c.field,
        area=c.area,
        authority_name=c.authority_name,
        valid_from=c.valid_from,
        valid_until=c.valid_until,
        issued_on=c.issued_on,
        status=status,
        status_label=status.label,
        stored_status=CertificateStatus(c.status),
        kid=c.kid,
        qr_text=c.qr_text,
        version=c.version,
        replaces_id=c.replaces_id,
        allowed_actions=actions,
        renewal_opens_on=rules.renewal_opens_on(c.valid_until, window),
    )


def _scope(principal: Principal) -> Any:
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
    where: list[Any] = [_scope(principal)]
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
    total = int(await db.scalar(select(func.count()).select_from(base.subquery())) or 0)
    rows = list(
        (
            await db.scalars(
                base.order_by(Certificate.id.desc()).offset((page - 1) * per_page).limit(per_page)
            )
        ).all()
    )
    return [certificate_out(c, on) for c in rows], total


async def certificate_get(db: AsyncSession, principal: Principal, certificate_id: int) -> Certificate:
    row = await db.scalar(
        select(Certificate)
        .join(Agency, Agency.id == Certificate.agency_id)
        .where(Certificate.id == certificate_id, _scope(principal))
    )
    if row is None:
        raise NotFound("证件不存在或不在您的管理范围内")
    return row


async def certificate_detail(
    db: AsyncSession, principal: Principal, certificate_id: int, *, on: dt.date | None = None
) -> CertificateDetail:
    c = await certificate_get(db, principal, certificate_id)
    authority = await db.get(Agency, c.authority_id)
    policy = await _policy_of_authority(db, authority) if authority else DEFAULT_POLICY
    events = await db.scalars(
        select(CertificateEvent).where(CertificateEvent.certificate_id == c.id).order_by(CertificateEvent.id)
    )
    return CertificateDetail(
        certificate=certificate_out(c, on or today(), policy),
        events=[
            EventOut(
                action=e.action,
                action_label=_action_label(e.action),
                from_status=e.from_status,
                to_status=e.to_status,
                ground=e.ground,
                evidence=e.evidence,
                cancel_reason=CancelReason(e.cancel_reason).label if e.cancel_reason else "",
                effective_on=e.effective_on,
                actor=e.actor_name,
                at=e.at,
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


# ---------------------------------------------------------------- the lifecycle


async def _apply_action(
    db: AsyncSession,
    cert: Certificate,
    *,
    action: CertificateAction,
    ground: str,
    evidence: str,
    cancel_reason: CancelReason | None,
    actor: Actor,
    on: dt.date,
    policy: Policy,
) -> None:
    """Move one card (already loaded) through ``action``: transition check, bar, event and audit."""
    ground = ground.strip()
    if not ground:
        raise DomainError("请填写变更依据（事实与理由）", field="ground")
    if action is CertificateAction.CANCEL and cancel_reason is None:
        raise DomainError("注销须选择注销原因", field="cancel_reason")
    current = rules.effective_status(cert.status, cert.valid_until, on)
    try:
        target = rules.transition(current, action)
    except rules.TransitionRefused as e:
        raise Conflict(f"证件 {cert.number}：{e.message}", field="action") from e
    extra: dict[str, Any] = {}
    if action is CertificateAction.REVOKE and policy.revocation_bar_years != 0:
        until = rules.reapplication_barred_until(on, policy.revocation_bar_years)
        bar_until = None if until == rules.BARRED_FOR_EVER else until
        db.add(
            ReapplicationBar(
                officer_id=cert.officer_id, certificate_id=cert.id, revoked_on=on, barred_until=bar_until
            )
        )
        extra["barred_until"] = bar_until.isoformat() if bar_until else "forever"
    before = cert.status
    cert.status = target.value
    cert.status_changed_on = on
    await db.flush()
    await _event(
        db,
        cert,
        action.value,
        before,
        target,
        ground,
        evidence.strip(),
        cancel_reason.value if cancel_reason else "",
        on,
        actor,
        extra,
    )


async def certificate_act(
    db: AsyncSession,
    *,
    principal: Principal,
    certificate_id: int,
    action: CertificateAction,
    ground: str,
    evidence: str = "",
    cancel_reason: CancelReason | None = None,
    version: int | None = None,
    ctx: IssueContext | None = None,
    on: dt.date | None = None,
) -> Certificate:
    """暂扣 · 恢复 · 吊销 · 注销 · 挂失 · 换发 of one card, only from the statuses that allow it."""
    _require_authority(principal, "变更证件状态")
    on = on or today()
    cert = await certificate_get(db, principal, certificate_id)
    if version is not None and version != cert.version:
        raise StaleForm("证件已被他人修改，请刷新后重试")
    authority = await db.get(Agency, cert.authority_id)
    assert authority is not None
    policy = await _policy_of_authority(db, authority)
    actor = actor_of(principal)
    if action is CertificateAction.RENEW:
        await _renew(db, cert, ground=ground, evidence=evidence, actor=actor, on=on, policy=policy, ctx=ctx)
    else:
        await _apply_action(
            db,
            cert,
            action=action,
            ground=ground,
            evidence=evidence,
            cancel_reason=cancel_reason,
            actor=actor,
            on=on,
            policy=policy,
        )
    try:
        await db.commit()
    except StaleDataError as e:
        await db.rollback()
        raise StaleForm("证件已被他人修改，请刷新后重试") from e
    return cert


async def _renew(
    db: AsyncSession,
    cert: Certificate,
    *,
    ground: str,
    evidence: str,
    actor: Actor,
    on: dt.date,
    policy: Policy,
    ctx: IssueContext | None,
) -> None:
    """换发: same number, validity continued from the old last day, a new signed QR."""
    if ctx is None:
        raise DomainError("换发需要签名配置")
    current = rules.effective_status(cert.status, cert.valid_until, on)
    try:
        rules.transition(current, CertificateAction.RENEW)
    except rules.TransitionRefused as e:
        raise Conflict(f"证件 {cert.number}：{e.message}", field="action") from e
    window = policy.certificate_renewal_window_months
    if not rules.renewal_open(cert.valid_until, on, window):
        opens = rules.renewal_opens_on(cert.valid_until, window)
        raise Conflict(f"换发自有效期届满前{window}个月（{opens:%Y年%m月%d日}）起方可办理", field="action")
    officer = await db.get(Officer, cert.officer_id)
    agency = await db.get(Agency, officer.agency_id) if officer else None
    assert officer is not None and agency is not None
    missing = (
        await _facts(db, [officer], {agency.id: agency}, CertificateKind(cert.kind), on, ignore_holds=True)
    )[officer.id]
    if missing:
        raise ApplicationRefused(
            f"{officer.name}：{'；'.join(m.message for m in missing)}",
            errors=[FieldError(f"officer:{officer.id}", m.message) for m in missing],
        )
    new_from = cert.valid_until + dt.timedelta(days=1)
    _, new_until = rules.validity(new_from, policy.certificate_valid_years)
    signer = await current_signer(db, secret_key=ctx.secret_key, actor=actor)
    fields = signing.CardFields(
        number=cert.number,
        name=officer.name,
        agency=agency.name,
        valid_from=cert.valid_from,
        valid_until=new_until,
        kind=CertificateKind(cert.kind),
    )
    qr_text, token = _sign(fields, signer, ctx.base_url)
    before = {"valid_until": cert.valid_until.isoformat(), "kid": cert.kid}
    cert.holder_name, cert.agency_name, cert.agency_id = officer.name, agency.name, agency.id
    cert.field, cert.area = officer.field, officer.area
    cert.valid_until, cert.qr_text, cert.token, cert.kid = new_until, qr_text, token, signer.kid
    cert.status_changed_on = on
    await db.flush()
    await _event(
        db,
        cert,
        "renew",
        cert.status,
        CertificateStatus.VALID,
        ground.strip() or "有效期届满换发",
        evidence.strip(),
        "",
        on,
        actor,
        {"before": before, "valid_until": new_until.isoformat()},
    )


async def certificate_reissue(
    db: AsyncSession,
    *,
    principal: Principal,
    certificate_id: int,
    ground: str,
    evidence: str = "",
    ctx: IssueContext,
    on: dt.date | None = None,
) -> Certificate:
    """补发: a new card under a new number for a card declared lost; the old number stays void."""
    _require_authority(principal, "补发证件")
    on = on or today()
    old = await certificate_get(db, principal, certificate_id)
    if old.status != CertificateStatus.LOST.value:
        raise Conflict("只有已挂失（遗失作废）的证件可以补发", field="action")
    if await db.scalar(select(Certificate.id).where(Certificate.replaces_id == old.id)):
        raise Conflict(f"证件 {old.number} 已补发过，不能重复补发")
    if not ground.strip():
        raise DomainError("请填写补发依据", field="ground")
    officer = await db.get(Officer, old.officer_id)
    assert officer is not None
    agency = await db.get(Agency, officer.agency_id)
    authority = await db.get(Agency, old.authority_id)
    assert agency is not None and authority is not None
    kind = CertificateKind(old.kind)
    missing = (await _facts(db, [officer], {agency.id: agency}, kind, on, ignore_pending=True))[officer.id]
    if missing:
        raise ApplicationRefused(
            f"{officer.name}：{'；'.join(m.message for m in missing)}",
            errors=[FieldError(f"officer:{officer.id}", m.message) for m in missing],
        )
    actor = actor_of(principal)
    signer = await current_signer(db, secret_key=ctx.secret_key, actor=actor)
    cert = await _issue(
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
        ground=ground.strip(),
        evidence=evidence.strip(),
    )
    await db.commit()
    return cert


async def certificates_withdraw_for_officer(
    session: AsyncSession,
    *,
    officer_id: int,
    action: str,
    ground: str,
    evidence: str,
    actor: Principal,
    on: dt.date,
) -> list[Certificate]:
    """吊销 or 注销 every valid or suspended card of an officer, in the caller's transaction (no commit).

    For the exit procedure (assessments): ``action`` is 'revoke' (records the reapplication bar of
    the card's issuing authority's policy) or 'cancel' (ground: qualification removed). Cards that
    already read expired or final are left as they are. Returns the cards changed.
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
    for cert in cards:
        if cert.authority_id not in policies:
            authority = await session.get(Agency, cert.authority_id)
            policies[cert.authority_id] = (
                await _policy_of_authority(session, authority) if authority else DEFAULT_POLICY
            )
        await _apply_action(
            session,
            cert,
            action=act,
            ground=ground,
            evidence=evidence,
            cancel_reason=CancelReason.QUALIFICATION_REMOVED if act is CertificateAction.CANCEL else None,
            actor=who,
            on=on,
            policy=policies[cert.authority_id],
        )
        changed.append(cert)
    return changed


# ---------------------------------------------------------------- card files


def card_data(c: Certificate) -> Any:
    from app.certificates.card import CardData

    return CardData(
        kind=CertificateKind(c.kind),
        number=c.number,
        name=c.holder_name,
        agency=c.agency_name,
        field=c.field,
        area=c.area,
        valid_from=c.valid_from,
        valid_until=c.valid_until,
        issuing_authority=c.authority_name,
    )


def _render_file(card: Any, photo: bytes | None, qr_text: str, fmt: str, target: Path) -> Path:
    from app.certificates.card import render_card_pdf, render_card_png
    from app.certificates.qr import qr_png

    if target.exists():
        return target
    png = qr_png(qr_text)
    data = render_card_pdf(card, photo, png) if fmt == "pdf" else render_card_png(card, photo, png)
    _write_whole(target, data)
    return target


DISK_FULL = "服务器存储空间已满，证件文件暂时无法生成，请稍后再试；如持续出现，请联系系统管理员清理磁盘"


def _write_whole(target: Path, data: bytes) -> None:
    """``target`` holds all of ``data`` or does not exist: written to a private temporary file beside it,
    then renamed. A full disk (ENOSPC, or a quota) removes the partial file and says so in Chinese (507)."""
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        tmp = Path(name)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        tmp.replace(target)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InsufficientStorage(DISK_FULL) from exc
        raise


async def certificate_card_file(
    db: AsyncSession, principal: Principal, certificate_id: int, fmt: str, *, out_dir: Path | None = None
) -> tuple[Certificate, Path]:
    """The card as PDF or PNG, rendered on demand (off the event loop) and kept per version."""
    if fmt not in ("pdf", "png"):
        raise DomainError("格式须为 pdf 或 png", field="fmt")
    cert = await certificate_get(db, principal, certificate_id)
    return cert, await card_file_for(db, cert, fmt, out_dir=out_dir)


async def card_file_for(
    db: AsyncSession, cert: Certificate, fmt: str, *, out_dir: Path | None = None
) -> Path:
    from app.accounts.photos import read_photo

    officer = await db.get(Officer, cert.officer_id)
    photo = read_photo(officer.photo_path) if officer and officer.photo_path else None
    # The file name carries the token: a renewed card (new QR) never reuses an old file.
    target = (out_dir or OUT_DIR) / f"{cert.number}-{cert.token[:12]}.{fmt}"
    return await asyncio.to_thread(_render_file, card_data(cert), photo, cert.qr_text, fmt, target)


__all__ = [
    "ApplicationRefused",
    "IssueContext",
    "application_decide",
    "application_list",
    "certificate_act",
    "certificate_apply",
    "certificate_detail",
    "certificate_get",
    "certificate_list",
    "certificate_reissue",
    "certificates_withdraw_for_officer",
    "eligibility_check",
    "number_next",
    "today",
]
