"""Where a roster looks: the principal's agency subtree (or a chosen agency inside it), with the
policies and the yearly training requirements of its agencies."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency
from app.accounts.selectors import agency_get, agency_policies
from app.lib.clock import today
from app.lib.errors import Forbidden
from app.lib.policy import DEFAULT_POLICY, Policy
from app.lib.security import Principal
from app.training.rules import TrainingRule


@dataclass(frozen=True)
class Scope:
    """Where a roster looks: one agency and its subtree, with what the rows need from it."""

    agency_id: int
    agency_name: str
    path: str
    agencies: dict[int, tuple[str, str, int]]
    """id → (name, path, depth) of every agency in the subtree."""
    policies: dict[int, Policy]
    requirements: dict[int, TrainingRule]
    """id → the training rule of the agency's policy (the requirement of a full year)."""
    year: int
    as_of: dt.date

    @property
    def policy(self) -> Policy:
        return self.policies.get(self.agency_id, DEFAULT_POLICY)

    @property
    def failing_grades(self) -> tuple[str, ...]:
        """The grades that count as failing under the policies of the subtree (不合格, 不称职, ...):
        one authority's scale as a rule; the union where a subtree spans authorities of two scales
        (no preset's failing grade is a passing grade of another)."""
        policies = [self.policy, *self.policies.values()]
        return tuple(dict.fromkeys(g for p in policies for g in p.failing_grades))


async def roster_scope(
    db: AsyncSession, principal: Principal, *, agency_id: int | None, year: int, as_of: dt.date | None = None
) -> Scope:
    """The principal's subtree, or the chosen agency's when it lies inside it (else 404)."""
    if not principal.is_admin:
        raise Forbidden("只有管理员可以查看名册")
    if agency_id is not None:
        agency = await agency_get(db, principal, agency_id)
        agency_id, name, path = agency.id, agency.name, agency.path
    else:
        agency_id, name, path = principal.agency_id, principal.agency_name, principal.agency_path
    rows = (
        await db.execute(
            select(Agency.id, Agency.name, Agency.path, Agency.depth)
            .where(Agency.path.startswith(path))
            .order_by(Agency.path)
        )
    ).all()
    agencies = {r.id: (r.name, r.path, r.depth) for r in rows}
    policies = await agency_policies(db, {i: a[1] for i, a in agencies.items()})
    return Scope(
        agency_id=agency_id,
        agency_name=name,
        path=path,
        agencies=agencies,
        policies=policies,
        requirements={i: TrainingRule.from_policy(p) for i, p in policies.items()},
        year=year,
        as_of=as_of or today(),
    )
