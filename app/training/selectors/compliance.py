"""Yearly compliance of an agency tree: who is short, by how much, per category, and who is behind pace.

The yearly compliance of a whole agency tree is one set-based query over the yearly totals
(``training_year_totals``, kept by every write to the ledger); the per-officer standing is then
applied in memory by ``rules``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency, Officer, PostingHistory
from app.accounts.selectors import agency_get, agency_policies, agency_subtree_ids
from app.lib.clock import today
from app.lib.enums import EmploymentStatus
from app.lib.errors import DomainError
from app.lib.policy import Policy
from app.lib.security import Principal
from app.training import rules
from app.training.access import require_admin
from app.training.models import TrainingYearTotal
from app.training.rules import DEFAULT_RULE, Requirement, TrainingCategory, TrainingRule
from app.training.schemas import ComplianceRow, ComplianceSummary


async def policies_by_agency(db: AsyncSession, agencies: list[Agency]) -> dict[int, Policy]:
    """Each agency's policy: that of its nearest issuing authority at or above it (batch form)."""
    return await agency_policies(db, {a.id: a.path for a in agencies})


@dataclass(frozen=True)
class Compliance:
    summary: ComplianceSummary
    rows: list[ComplianceRow]
    """The requested page (everything when no limit was given): most hours missing first, then by
    agency (in tree order) and by officer (in order of registration)."""
    total: int
    """Officers matching the status filter."""


_STATUS_FILTERS = {"all", "short", "behind", "met"}
_NO_SHORT: dict[TrainingCategory, int] = {}


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a use case makes and drops masses of small tuples."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def key_order_scan(db: AsyncSession, agencies: int) -> bool:
    """Whether to read the officers in key order rather than through their agency index: on SQLite,
    when the tree holds most agencies (then twice as fast, the yearly totals being read in order
    too); PostgreSQL's planner makes this choice itself."""
    if (await db.connection()).dialect.name != "sqlite":
        return False
    everything = int(await db.scalar(select(func.count()).select_from(Agency)) or 0)
    return agencies * 2 >= everything


def value_by_agency(values: dict[int, Any]) -> Any:
    """``values[Officer.agency_id]`` as SQL: the most common value, the others named by agency
    (a tree's agencies share a handful of policies, so the CASE stays short)."""
    groups: dict[Any, list[int]] = {}
    for agency_id, value in values.items():
        groups.setdefault(value, []).append(agency_id)
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    if len(ordered) == 1:
        return literal(ordered[0][0])
    return case(*((Officer.agency_id.in_(ids), value) for value, ids in ordered[1:]), else_=ordered[0][0])


def compliance_statement(scope_path: str, year: int, *, with_joined: bool, scan: bool = False) -> Select[Any]:
    """ONE set-based query: every officer in post in the subtree with their net hours per category.

    Officers are joined to their row of the yearly totals through its key (year, officer), which
    covers the hours; an officer without hours that year comes back with nulls. ``scan`` reads
    the officers in key order instead of through the agency index (``agency_id + 0`` keeps SQLite
    off it): for most of a province that is twice as fast, as the totals are then read in order too.
    """
    t = TrainingYearTotal
    agency_of: Any = Officer.agency_id + 0 if scan else Officer.agency_id
    stmt: Any = (
        select(Officer.id, Officer.agency_id, t.general_law, t.special_law, t.new_law)
        .outerjoin(t, and_(t.year == year, t.officer_id == Officer.id))
        .where(
            agency_of.in_(agency_subtree_ids(scope_path)),
            Officer.employment_status == EmploymentStatus.ACTIVE.value,
        )
    )
    if with_joined:
        joined = (
            select(PostingHistory.officer_id, func.min(PostingHistory.started_on).label("joined_on"))
            .group_by(PostingHistory.officer_id)
            .subquery("joined")
        )
        stmt = stmt.add_columns(joined.c.joined_on).outerjoin(joined, joined.c.officer_id == Officer.id)
    return stmt


async def training_compliance(
    db: AsyncSession,
    principal: Principal,
    year: int,
    *,
    agency_id: int | None = None,
    status: str = "all",
    as_of: dt.date | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> Compliance:
    """Who is short, by how much, per category, and who is behind pace, in an agency tree.

    One query brings every officer's hours; the rules are applied to each in a tight loop, and
    result rows are built only for the page asked for (``offset``/``limit``; all without a limit).
    """
    require_admin(principal, "查看培训学时达标情况")
    if status not in _STATUS_FILTERS:
        raise DomainError("状态筛选无效", field="status")
    as_of = as_of or today()
    if agency_id is not None:
        agency = await agency_get(db, principal, agency_id)
    elif principal.agency_id:
        agency = await agency_get(db, principal, principal.agency_id)
    else:
        agency = Agency(id=0, name="全部单位", path="/", depth=0)
    tree = list((await db.scalars(select(Agency).where(Agency.path.startswith(agency.path)))).all())
    policies = await policies_by_agency(db, tree)
    names = {a.id: a.name for a in tree}
    paths = {a.id: a.path for a in tree}
    rules_by_agency = {aid: TrainingRule.from_policy(p) for aid, p in policies.items()}
    with_joined = any(r.prorate_joiners for r in rules_by_agency.values())
    conn = await db.connection()
    scan = await key_order_scan(db, len(tree))

    # Hundreds of thousands of small tuples would set the cyclic garbage collector scanning them
    # again and again (half of the loop's time); they hold no cycles, so it pauses meanwhile.
    with gc_paused():
        result = await conn.execute(
            compliance_statement(agency.path, year, with_joined=with_joined, scan=scan)
        )
        # The hot loop: 200 000 officers must cost well under a second, so it uses plain tuples and
        # caches one requirement per (agency, month joined); ``rules.evaluate`` decides each officer.
        evaluate = rules.evaluate
        standings: dict[tuple[int, int], tuple[Requirement | None, int]] = {}
        met = short = behind_count = officers = 0
        want_short, want_met, want_behind = status == "short", status == "met", status == "behind"
        picked: list[tuple[Any, ...]] = []
        for row in result.all():  # fetched at once: row by row would cost a round of the driver each
            officer_id, agency_of, g, s, n = row[0], row[1], row[2] or 0, row[3] or 0, row[4] or 0
            joined: dt.date | None = row[5] if with_joined else None
            # The requirement depends on the month of joining only when it falls in (or after) the year.
            month = (
                0 if joined is None or joined.year < year else (13 if joined.year > year else joined.month)
            )
            cached = standings.get((agency_of, month))
            if cached is None:
                req = rules.requirement_for(rules_by_agency[agency_of], year, joined)
                cached = (req, rules.expected_by(req, as_of) if req is not None else 0)
                standings[(agency_of, month)] = cached
            requirement, expected = cached
            if requirement is None:
                continue  # joined after the year: nothing was owed
            needed, short_by, state = evaluate(requirement, expected, (g, s, n), as_of=as_of)
            total = g + s + n
            officers += 1
            is_behind = total < expected
            if needed:
                short += 1
            else:
                met += 1
            if is_behind:
                behind_count += 1
            if (want_short and not needed) or (want_met and needed) or (want_behind and not is_behind):
                continue
            picked.append(
                (
                    -needed,
                    paths.get(agency_of, ""),
                    officer_id,
                    agency_of,
                    g,
                    s,
                    n,
                    requirement,
                    expected,
                    short_by or _NO_SHORT,
                    state,
                )
            )

        ordered = (sorted(picked) if limit is None else heapq.nsmallest(offset + limit, picked))[offset:]
        # Names only for the rows shown (for an export, every officer of the tree: one more scan).
        names_of = select(Officer.id, Officer.name)
        if limit is not None:
            names_of = names_of.where(Officer.id.in_([r[2] for r in ordered]))
        else:
            names_of = names_of.where(Officer.agency_id.in_(list(paths)))
        officer_names = {i: nm for i, nm in await conn.execute(names_of)} if ordered else {}
        hv = rules.hours_value
        page = [
            ComplianceRow(
                officer_id=officer_id,
                name=officer_names.get(officer_id, ""),
                agency_id=agency_of,
                agency_name=names.get(agency_of, ""),
                required=hv(requirement.total),
                total=hv(g + s + n),
                general_law=hv(g),
                special_law=hv(s),
                new_law=hv(n),
                needed=hv(-neg_needed),
                short_categories={c.value: hv(v) for c, v in short_by.items() if v},
                expected=hv(expected),
                behind_pace=g + s + n < expected,
                status=state,
                status_label=state.label,
            )
            for neg_needed, _path, officer_id, agency_of, g, s, n, requirement, expected, short_by, state in ordered
        ]

    own_rule = rules_by_agency.get(agency.id, DEFAULT_RULE)
    summary = ComplianceSummary(
        year=year,
        as_of=as_of,
        agency_id=agency.id,
        agency_name=agency.name,
        officers=officers,
        met=met,
        short=short,
        behind=behind_count,
        met_percent=round(met * 100 / officers, 1) if officers else 0.0,
        required=hv(own_rule.hours_required),
    )
    return Compliance(summary=summary, rows=page, total=len(picked))


__all__ = [
    "Compliance",
    "compliance_statement",
    "gc_paused",
    "key_order_scan",
    "policies_by_agency",
    "training_compliance",
    "value_by_agency",
]
