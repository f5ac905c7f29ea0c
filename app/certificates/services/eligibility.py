"""Who may hold a card (申领条件): each officer's missing conditions, in a handful of set-based
queries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency, Officer, PostingHistory
from app.accounts.selectors import agency_policies
from app.certificates import rules
from app.certificates.models import (
    Certificate,
    CertificateApplication,
    ExitBar,
    ReapplicationBar,
)
from app.certificates.rules import (
    CertificateKind,
    EligibilityFacts,
    Missing,
)
from app.certificates.schemas import (
    EligibilityOut,
    MissingOut,
)
from app.certificates.selectors import LIVE
from app.exams.qualification import qualification_valid_map
from app.lib.chunks import chunks
from app.lib.clock import today
from app.lib.enums import EmploymentStatus, StaffType
from app.lib.errors import (
    DomainError,
    FieldError,
    Forbidden,
)
from app.lib.policy import DEFAULT_POLICY
from app.lib.security import Principal
from app.training import rules as training_rules
from app.training.models import TrainingYearTotal


class ApplicationRefused(DomainError):
    """申领未受理: at least one officer does not meet the conditions; ``errors`` name each one."""

    status_code = 422
    title = "申领条件不符"


def refusal_line(officer: Officer, reasons: Sequence[str]) -> str:
    """How one refused officer reads in a refusal: 姓名：理由；理由."""
    return f"{officer.name}：{'；'.join(reasons)}"


async def require_eligible(
    db: AsyncSession,
    officer: Officer,
    agency: Agency,
    kind: CertificateKind,
    on: dt.date,
    *,
    ignore_pending: bool = False,
    ignore_holds: bool = False,
) -> None:
    """Refuse (422, every missing condition named) a card of ``kind`` to this one officer (补发, 换发)."""
    missing = (
        await missing_by_officer(
            db,
            [officer],
            {agency.id: agency},
            kind,
            on,
            ignore_pending=ignore_pending,
            ignore_holds=ignore_holds,
        )
    )[officer.id]
    if missing:
        raise ApplicationRefused(
            refusal_line(officer, [m.message for m in missing]),
            errors=[FieldError(f"officer:{officer.id}", m.message) for m in missing],
        )


async def missing_by_officer(
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
    exit_bars: dict[int, str] = {}
    pending: set[int] = set()
    for chunk in chunks(ids):
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
        for oid, conditions in await db.execute(
            select(ExitBar.officer_id, ExitBar.conditions)
            .where(
                ExitBar.officer_id.in_(chunk),
                ExitBar.lifted_on.is_(None),
                or_(ExitBar.barred_until.is_(None), ExitBar.barred_until >= on),
            )
            .order_by(ExitBar.id)
        ):
            exit_bars[oid] = conditions
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
            exit_bar=exit_bars.get(o.id),
        )
        out[o.id] = rules.missing_conditions(facts)
    return out


async def officers_in_scope(
    db: AsyncSession, principal: Principal, officer_ids: Sequence[int]
) -> tuple[dict[int, Officer], dict[int, Agency]]:
    officers: dict[int, Officer] = {}
    agencies: dict[int, Agency] = {}
    for chunk in chunks(sorted(set(officer_ids))):
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
    officers, agencies = await officers_in_scope(db, principal, officer_ids)
    facts = await missing_by_officer(db, list(officers.values()), agencies, kind, on)
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
