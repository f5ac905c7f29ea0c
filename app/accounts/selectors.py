"""Read-only queries of the accounts domain: agencies, officers and accounts as a principal sees them.

Every function that takes a ``principal`` scopes what it reads to the principal's agency subtree;
an object outside it is reported as not found, so its existence is not revealed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import rules
from app.accounts.models import Account, Agency, Officer, PostingHistory
from app.accounts.schemas import (
    AccountOut,
    AgencyOut,
    OfficerDetail,
    OfficerOut,
    PostingOut,
)
from app.lib.chunks import chunks
from app.lib.clock import utcnow
from app.lib.enums import EmploymentStatus, Post, StaffType
from app.lib.errors import NotFound
from app.lib.paging import count_rows, page_of
from app.lib.policy import DEFAULT_POLICY, Policy, policy_from_json
from app.lib.security import Principal
from app.lib.structs import project

_InAgency = TypeVar("_InAgency", Officer, Account)


def agency_out(a: Agency) -> AgencyOut:
    return project(AgencyOut, a)


async def agency_get(db: AsyncSession, principal: Principal, agency_id: int) -> Agency:
    agency = await db.get(Agency, agency_id)
    if agency is None or not principal.can_see_agency_path(agency.path):
        raise NotFound("单位不存在或不在您的管理范围内", field="agency_id")
    return agency


def agency_subtree_ids(path: str) -> Select[int]:
    """The ids of the agencies in the subtree at ``path`` (its root included), for an ``IN``."""
    return select(Agency.id).where(Agency.path.startswith(path))


def agency_in_line(path: str) -> ColumnElement[bool]:
    """``Agency`` (in the query) lies in the subtree at ``path`` or above it, on its way to the root."""
    return or_(Agency.path.startswith(path), Agency.id.in_(rules.path_ids(path) or [-1]))


async def agency_tree(db: AsyncSession, principal: Principal) -> list[Agency]:
    stmt = select(Agency).where(Agency.path.startswith(principal.agency_path)).order_by(Agency.path)
    return list((await db.scalars(stmt)).all())


async def agency_policies(db: AsyncSession, paths: dict[int, str]) -> dict[int, Policy]:
    """Effective policy of each agency (id → path given): its nearest issuing authority's.

    One query per thousand distinct ancestors, whatever the number of agencies asked about.
    """
    wanted = sorted({i for path in paths.values() for i in rules.path_ids(path)})
    authorities: dict[int, str | None] = {}
    for chunk in chunks(wanted):
        rows = await db.execute(
            select(Agency.id, Agency.policy_json).where(
                Agency.id.in_(chunk), Agency.is_issuing_authority.is_(True)
            )
        )
        authorities.update({row.id: row.policy_json for row in rows})
    parsed: dict[int, Policy] = {}
    out: dict[int, Policy] = {}
    for agency_id, path in paths.items():
        # The path runs root first, so the last authority on it is the nearest.
        nearest = next((i for i in reversed(rules.path_ids(path)) if i in authorities), None)
        if nearest is None:
            out[agency_id] = DEFAULT_POLICY
        else:
            if nearest not in parsed:
                parsed[nearest] = policy_from_json(authorities[nearest])
            out[agency_id] = parsed[nearest]
    return out


async def agency_policy(db: AsyncSession, agency: Agency) -> Policy:
    """The policy of the nearest issuing authority at or above ``agency``."""
    return (await agency_policies(db, {agency.id: agency.path})).get(agency.id, DEFAULT_POLICY)


def officer_out(o: Officer, agency_name: str, principal: Principal | None, policy: Policy) -> OfficerOut:
    return project(
        OfficerOut,
        o,
        id_number=_visible_id_number(o, principal),
        agency_name=agency_name,
        has_photo=o.photo_path is not None,
        may_hold_certificate=policy.staff_type_allowed(StaffType(o.staff_type)),
    )


def _visible_id_number(o: Officer, principal: Principal | None) -> str:
    """Full ID number only to the officer's own agency (its administrators) and the officer themself."""
    if principal is not None and (
        principal.officer_id == o.id or (principal.is_admin and principal.agency_id == o.agency_id)
    ):
        return o.id_number
    return rules.mask_id_number(o.id_number)


@dataclass(frozen=True)
class OfficerFilter:
    q: str = ""
    agency_id: int | None = None
    staff_type: StaffType | None = None
    post: Post | None = None
    employment_status: EmploymentStatus | None = None
    field: str = ""


def _officer_query(principal: Principal, f: OfficerFilter, scope_path: str) -> Select[Officer, str, str]:
    stmt = (
        select(Officer, Agency.name.label("agency_name"), Agency.path.label("agency_path"))
        .join(Agency, Agency.id == Officer.agency_id)
        .where(Agency.path.startswith(scope_path))
    )
    if f.q.strip():
        q = f.q.strip()
        if q.isdigit() or (len(q) == 18 and q[:17].isdigit()):
            stmt = stmt.where(Officer.id_number == rules.normalize_id_number(q))
        else:
            stmt = stmt.where(or_(Officer.name.startswith(q), Officer.name == q))
    if f.staff_type:
        stmt = stmt.where(Officer.staff_type == f.staff_type.value)
    if f.post:
        stmt = stmt.where(Officer.post == f.post.value)
    if f.employment_status:
        stmt = stmt.where(Officer.employment_status == f.employment_status.value)
    if f.field:
        stmt = stmt.where(Officer.field == f.field)
    return stmt


async def officer_list(
    db: AsyncSession, principal: Principal, f: OfficerFilter, *, page: int = 1, per_page: int = 50
) -> tuple[list[OfficerOut], int]:
    scope_path = principal.agency_path
    if f.agency_id is not None:
        scope_path = (await agency_get(db, principal, f.agency_id)).path
    stmt = _officer_query(principal, f, scope_path)
    total = await count_rows(db, stmt)
    rows = (
        await db.execute(
            page_of(stmt.order_by(Agency.path, Officer.name, Officer.id), page=page, per_page=per_page)
        )
    ).all()
    policies = await agency_policies(db, {o.agency_id: path for o, _, path in rows})
    out = [officer_out(o, name, principal, policies.get(o.agency_id, DEFAULT_POLICY)) for o, name, _ in rows]
    return out, total


async def _with_agency(db: AsyncSession, model: type[_InAgency], id_: int) -> tuple[_InAgency, Agency] | None:
    """The officer or account ``id_`` and the agency it sits in; None: no such row."""
    stmt = select(model, Agency).join(Agency, Agency.id == model.agency_id).where(model.id == id_)
    row = (await db.execute(stmt)).one_or_none()
    return None if row is None else (row[0], row[1])


async def officer_get(db: AsyncSession, principal: Principal, officer_id: int) -> tuple[Officer, Agency]:
    row = await _with_agency(db, Officer, officer_id)
    if row is None:
        raise NotFound("执法人员不存在或不在您的管理范围内")
    officer, agency = row
    if principal.officer_id == officer.id:
        return officer, agency
    # An officer's account sits in an agency too, but it manages nobody: it sees only itself.
    if not principal.is_admin or not principal.can_see_agency_path(agency.path):
        raise NotFound("执法人员不存在或不在您的管理范围内")
    return officer, agency


async def officer_detail(db: AsyncSession, principal: Principal, officer_id: int) -> OfficerDetail:
    officer, agency = await officer_get(db, principal, officer_id)
    policy = await agency_policy(db, agency)
    rows = (
        await db.execute(
            select(PostingHistory, Agency.name)
            .join(Agency, Agency.id == PostingHistory.agency_id)
            .where(PostingHistory.officer_id == officer.id)
            .order_by(PostingHistory.started_on.desc(), PostingHistory.id.desc())
        )
    ).all()
    base = officer_out(officer, agency.name, principal, policy)
    postings = [project(PostingOut, p, agency_name=name) for p, name in rows]
    return project(OfficerDetail, base, postings=postings)


def account_out(a: Account, agency_name: str) -> AccountOut:
    now = utcnow()
    locked = a.locked_until is not None and a.locked_until > now
    return project(AccountOut, a, agency_name=agency_name, locked=locked)


async def account_list(
    db: AsyncSession, principal: Principal, *, page: int = 1, per_page: int = 50
) -> tuple[list[AccountOut], int]:
    stmt = (
        select(Account, Agency.name)
        .join(Agency, Agency.id == Account.agency_id)
        .where(Agency.path.startswith(principal.agency_path))
    )
    total = await count_rows(db, stmt)
    rows = (
        await db.execute(page_of(stmt.order_by(Agency.path, Account.username), page=page, per_page=per_page))
    ).all()
    return [account_out(a, n) for a, n in rows], total


async def account_get(db: AsyncSession, principal: Principal, account_id: int) -> tuple[Account, Agency]:
    row = await _with_agency(db, Account, account_id)
    if row is None or not principal.can_see_agency_path(row[1].path):
        raise NotFound("账号不存在或不在您的管理范围内")
    return row
