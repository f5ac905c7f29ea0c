"""The year-end close (年度考核结转), set-based: one query finds every officer of a province with
two consecutive confirmed failing ratings (the grades each authority's policy names as failing),
one more the officers back in post who carry two earlier failing years with no case, one insert
opens their cases (the unique key (officer, year) makes a second run open nothing), one query over
the yearly training totals finds the closed year's shortfalls, one insert flags them.

Nothing here commits: the whole close is one transaction, ended by its caller (the request, or
``app assessments close-year`` through the console's session). On PostgreSQL that transaction holds
the close's advisory lock, so two closes at once run one after the other.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import and_, func, literal, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.accounts.models import Agency, Officer
from app.accounts.rules import path_ids
from app.accounts.selectors import agency_in_line, agency_policies
from app.assessments import rules
from app.assessments.models import AssessmentFlag, AssessmentRating, ExitCase, ExitCaseEvent, YearClosing
from app.assessments.rules import CaseStatus, ExitOutcome, RatingRow, RatingStatus
from app.assessments.schemas import AgencyClose, CloseYearOut
from app.assessments.selectors import authority_only
from app.audit.services import audit_change
from app.db import insert_many
from app.lib.clock import today, utcnow
from app.lib.enums import EmploymentStatus
from app.lib.errors import DomainError
from app.lib.policy import Policy
from app.lib.security import Principal
from app.training import rules as training_rules
from app.training.access import entered_by
from app.training.models import TrainingYearTotal
from app.training.selectors.compliance import compliance_statement, gc_paused, key_order_scan, value_by_agency

Progress = Callable[[str, int, int], None]
"""(step description, done, total): the console command draws a progress bar from it."""


def _insert(db: AsyncSession, model: Any) -> Any:
    """INSERT … ON CONFLICT DO NOTHING is dialect-specific in SQLAlchemy: both engines have it."""
    dialect = db.bind.dialect.name if db.bind is not None else "sqlite"
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(model)


async def _authorities(db: AsyncSession, scope_path: str) -> set[int]:
    """Issuing authorities in the tree and above it."""
    rows = await db.scalars(
        select(Agency.id).where(
            Agency.is_issuing_authority.is_(True),
            agency_in_line(scope_path),
        )
    )
    return set(rows)


def _nearest(path: str, authorities: set[int]) -> int | None:
    return next((i for i in reversed(path_ids(path)) if i in authorities), None)


def close_candidates(year: int, failing: Collection[str]) -> Any:
    """THE query: officers with confirmed ratings of a ``failing`` grade in ``year - 1`` and ``year``
    (both read from the partial index over confirmed ratings), their grades, and whether a case exists.

    It is driven by the index (a few officers in a hundred at most), never by the officers: the
    caller keeps those in post in its tree, whose agencies it has loaded anyway, and checks the two
    grades against their own authority's failing grades (``failing`` is those of the whole tree).
    A scope subquery or a filter on the officers here leads SQLite to walk every officer instead
    (25x slower)."""
    first, second = aliased(AssessmentRating), aliased(AssessmentRating)
    return (
        select(
            second.officer_id,
            Officer.agency_id,
            first.id,
            second.id,
            ExitCase.id,
            Officer.employment_status,
            first.grade,
            second.grade,
        )
        .join(
            first,
            and_(
                first.officer_id == second.officer_id,
                first.year == year - 1,
                first.grade.in_(sorted(failing)),
                first.status == RatingStatus.CONFIRMED.value,
            ),
        )
        .join(Officer, Officer.id == second.officer_id)
        .outerjoin(ExitCase, and_(ExitCase.officer_id == second.officer_id, ExitCase.year == year))
        .where(
            second.year == year,
            second.grade.in_(sorted(failing)),
            second.status == RatingStatus.CONFIRMED.value,
        )
    )


async def _returned(
    db: AsyncSession, year: int, tree: dict[int, Agency], policies: dict[int, Policy]
) -> list[tuple[int, int, int, int, int]]:
    """(officer, agency, second year, first rating, second rating) of every officer in post in the
    tree who carries two consecutive failing years before ``year`` on which no case was opened
    (they were out of post at that close): the record stays with the person (``rules.returned_trigger``).
    """
    failing = sorted({g for p in policies.values() for g in p.failing_grades})
    first, second = aliased(AssessmentRating), aliased(AssessmentRating)
    found = await db.execute(
        select(second.officer_id, Officer.agency_id)
        .join(
            first,
            and_(
                first.officer_id == second.officer_id,
                first.year == second.year - 1,
                first.grade.in_(failing),
                first.status == RatingStatus.CONFIRMED.value,
                # Implied by 'confirmed', but SQLite seeks the live-ratings index (officer, year) only
                # when the query names that index's own condition (see migration 0014).
                first.status != RatingStatus.SUPERSEDED.value,
            ),
        )
        .join(Officer, Officer.id == second.officer_id)
        .outerjoin(ExitCase, and_(ExitCase.officer_id == second.officer_id, ExitCase.year == second.year))
        .where(
            second.year < year,
            second.grade.in_(failing),
            second.status == RatingStatus.CONFIRMED.value,
            ExitCase.id.is_(None),
            Officer.employment_status == EmploymentStatus.ACTIVE.value,
        )
        .distinct()
    )
    agency_of = {o: a for o, a in found.all() if a in tree}
    if not agency_of:
        return []
    ids = sorted(agency_of)
    rows = (
        await db.scalars(
            select(AssessmentRating).where(
                AssessmentRating.officer_id.in_(ids), AssessmentRating.year <= year
            )
        )
    ).all()
    cased: dict[int, set[int]] = {}
    for o, y in await db.execute(
        select(ExitCase.officer_id, ExitCase.year).where(ExitCase.officer_id.in_(ids))
    ):
        cased.setdefault(o, set()).add(y)
    by_officer: dict[int, list[RatingRow]] = {}
    for r in rows:
        by_officer.setdefault(r.officer_id, []).append(
            RatingRow(r.id, r.officer_id, r.agency_id, r.year, r.grade, RatingStatus(r.status), r.corrects_id)
        )
    out = []
    for officer_id in ids:
        agency_id = agency_of[officer_id]
        trigger = rules.returned_trigger(
            by_officer.get(officer_id, []),
            officer_id,
            year + 1,  # a passing grade of the closed year counts too
            failing=policies[agency_id].failing_grades,
            cased_years=cased.get(officer_id, set()),
        )
        if trigger is not None and trigger.year < year:
            out.append((officer_id, agency_id, trigger.year, trigger.first.id, trigger.second.id))
    return out


async def _shortfalls(
    db: AsyncSession, scope_path: str, year: int, policies: dict[int, Policy]
) -> list[tuple[int, int, int, str]]:
    """(officer, agency, tenths needed, consequence) of every officer in post short of the closed
    year's hours and not flagged for it yet.

    The training compliance query, narrowed in SQL: officers already flagged are left out through
    the flags' unique key (so a second run reads next to nothing), and, unless some policy sets a
    minimum per category (then anyone may be short), so are those with at least the largest yearly
    requirement of the tree. The training rules then decide each remaining officer exactly.
    """
    rule_of = {aid: training_rules.TrainingRule.from_policy(p) for aid, p in policies.items()}
    with_joined = any(r.prorate_joiners for r in rule_of.values())
    conn = await db.connection()
    scan = await key_order_scan(db, len(policies))
    t, f = TrainingYearTotal, AssessmentFlag
    stmt = (
        compliance_statement(scope_path, year, with_joined=with_joined, scan=scan)
        .outerjoin(f, and_(f.year == year, f.kind == "training_shortfall", f.officer_id == Officer.id))
        .where(f.officer_id.is_(None))
    )
    if rule_of and not any(r.category_minimums for r in rule_of.values()):
        most = max(r.hours_required for r in rule_of.values())
        stmt = stmt.where(t.net_hours() < most)
    result = await conn.execute(stmt)
    as_of = dt.date(year + 1, 1, 1)
    requirements: dict[tuple[int, int], tuple[training_rules.Requirement | None, int]] = {}
    out: list[tuple[int, int, int, str]] = []
    evaluate = training_rules.evaluate
    for row in result.all():
        officer_id, agency_of, g, s, n = row[0], row[1], row[2] or 0, row[3] or 0, row[4] or 0
        joined: dt.date | None = row[5] if with_joined else None
        month = 0 if joined is None or joined.year < year else (13 if joined.year > year else joined.month)
        cached = requirements.get((agency_of, month))
        if cached is None:
            req = training_rules.requirement_for(rule_of[agency_of], year, joined)
            cached = (req, req.total if req is not None else 0)
            requirements[(agency_of, month)] = cached
        requirement, expected = cached
        if requirement is None:
            continue
        needed, _by, _state = evaluate(requirement, expected, (g, s, n), as_of=as_of)
        if needed:
            out.append((officer_id, agency_of, needed, policies[agency_of].training_shortfall_consequence))
    return out


def _flat_requirements(policies: dict[int, Policy]) -> bool:
    """Whether every policy of the tree asks a plain yearly total (no minimum per category, no
    prorating of joiners): then an officer is short exactly when the net hours are below it, and
    the database can judge and flag the whole tree in one statement (``_flag_in_sql``)."""
    return not any(p.training_prorate_joiners for p in policies.values()) and not any(
        training_rules.TrainingRule.from_policy(p).category_minimums for p in policies.values()
    )


async def _flag_in_sql(
    db: AsyncSession, scope_path: str, year: int, policies: dict[int, Policy]
) -> Counter[int]:
    """The training shortfall of a closed year, judged and flagged by ONE INSERT … SELECT over the
    compliance query (plain yearly totals only, see ``_flat_requirements``): the 100,000 short
    officers of a province never travel to Python and back. Returns the flags added per agency.

    Same outcome as ``_shortfalls`` + ``_insert_flags`` (``rules.evaluate`` with no minimums:
    needed = requirement − net hours when below it); a test runs both on one tree."""
    t, f = TrainingYearTotal, AssessmentFlag
    required = value_by_agency(
        {a: training_rules.TrainingRule.from_policy(p).hours_required for a, p in policies.items()}
    )
    consequence = value_by_agency({a: p.training_shortfall_consequence for a, p in policies.items()})
    hours = t.net_hours()
    chosen = (
        compliance_statement(
            scope_path, year, with_joined=False, scan=await key_order_scan(db, len(policies))
        )
        .with_only_columns(
            Officer.id,
            Officer.agency_id,
            literal(year),
            literal("training_shortfall"),
            consequence,
            required - hours,
            literal(utcnow(), type_=f.__table__.c.created_at.type),
            maintain_column_froms=True,
        )
        .outerjoin(f, and_(f.officer_id == Officer.id, f.year == year, f.kind == "training_shortfall"))
        .where(f.officer_id.is_(None), hours < required)
        .order_by(Officer.id)
    )
    columns = ["officer_id", "agency_id", "year", "kind", "consequence", "needed_tenths", "created_at"]
    stmt = _insert(db, AssessmentFlag).from_select(columns, chosen)
    if (await db.connection()).dialect.name == "sqlite":  # one writer, but an earlier reader may race it
        # (and SQLite has no INSERT in a WITH)
        stmt = stmt.on_conflict_do_nothing(index_elements=["officer_id", "year", "kind"])
        result = await db.execute(stmt.returning(AssessmentFlag.agency_id))
        return Counter(int(a) for (a,) in result.all())
    # PostgreSQL counts them per agency itself: 100 rows come back instead of 100,000.
    added = stmt.returning(AssessmentFlag.agency_id).cte("added")
    per_agency = select(added.c.agency_id, func.count()).group_by(added.c.agency_id)
    return Counter({int(a): int(n) for a, n in (await db.execute(per_agency)).all()})


_CLOSE_LOCK = 7_270_006  # pg_advisory_xact_lock key of the year-end close


async def _insert_flags(db: AsyncSession, year: int, short: list[tuple[int, int, int, str]]) -> None:
    """Tens of thousands of flags by one COPY on PostgreSQL, one executemany of plain tuples on
    SQLite: the ORM's per-row work would cost more than the whole close."""
    conn = await db.connection()
    created = AssessmentFlag.__table__.c.created_at.type
    now = utcnow()
    if conn.dialect.name == "postgresql":
        # COPY, twice as fast as INSERT … SELECT FROM unnest(arrays) ON CONFLICT here (0.4 s against
        # 0.8 s for 94k flags). It cannot skip duplicates: the close's advisory lock makes the
        # anti-join that chose these officers exact.
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.copy_records_to_table(
            "assessment_flags",
            columns=("officer_id", "agency_id", "year", "kind", "consequence", "needed_tenths", "created_at"),
            records=[(o, a, year, "training_shortfall", c, n, now) for o, a, n, c in short],
        )
        return
    bind = created.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    stamp = bind(now) if bind else now
    await conn.exec_driver_sql(
        "INSERT INTO assessment_flags (officer_id, agency_id, year, kind, consequence, needed_tenths, created_at) "
        "VALUES (?, ?, ?, 'training_shortfall', ?, ?, ?) "
        "ON CONFLICT (officer_id, year, kind) DO NOTHING",
        [(o, a, year, c, n, stamp) for o, a, n, c in short],
    )


async def close_year(
    db: AsyncSession, *, principal: Principal, year: int, progress: Progress | None = None
) -> CloseYearOut:
    """年度考核结转: open an exit case for every officer of the tree unqualified in ``year - 1`` and
    ``year``, flag the closed year's training shortfalls, and record the run with a summary per
    agency. Idempotent: what a previous run opened or flagged is neither opened nor flagged again.
    """
    authority_only(principal, "进行年度结转")
    if year > today().year:
        raise DomainError(f"{year} 年度尚未开始，不能结转", field="year")
    if (await db.connection()).dialect.name == "postgresql":
        # One close at a time: a second run waits and then finds what the first opened and flagged
        # (SQLite has one writer anyway, and its flags skip duplicates on the unique key).
        await db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CLOSE_LOCK})
        # The flags' sort of 100 000 officers then stays in memory: for this transaction only.
        await db.execute(text("SET LOCAL work_mem = '64MB'"))
    started = time.perf_counter()
    step = progress or (lambda _s, _d, _t: None)
    scope_path = principal.agency_path
    scope_agency = await db.get(Agency, principal.agency_id) if principal.agency_id else None
    tree = {
        a.id: a for a in (await db.scalars(select(Agency).where(Agency.path.startswith(scope_path)))).all()
    }
    policies = await agency_policies(db, {a.id: a.path for a in tree.values()})
    authorities = await _authorities(db, scope_path)
    on = today()
    actor_name = entered_by(principal)[1]

    step("查找连续两年考核不合格的人员", 0, 4)
    failing = {g for p in policies.values() for g in p.failing_grades}
    with gc_paused():
        active = EmploymentStatus.ACTIVE.value
        # Not in post (调离, 退休, 离职): skipped; back in post, ``_returned`` finds them at a later close.
        rows = [
            r
            for r in (await db.execute(close_candidates(year, failing))).all()
            if r[1] in tree
            and r[5] == active
            and rules.evidence_holds(r[6], r[7], failing=policies[r[1]].failing_grades)
        ]
    existing = sum(1 for r in rows if r[4] is not None)
    pairs = [(o, a, year, f, s) for o, a, f, s, case_id, *_rest in rows if case_id is None]
    pairs += await _returned(db, year, tree, policies)
    new_cases = [
        {
            "officer_id": officer_id,
            "agency_id": agency_id,
            "authority_id": _nearest(tree[agency_id].path, authorities),
            "year": second_year,
            "first_rating_id": first_id,
            "second_rating_id": second_id,
            "proposed_outcome": policies[agency_id].two_year_unqualified_outcome,
            "status": CaseStatus.OPEN.value,
            "notified_on": on,
            "statement_deadline": rules.statement_deadline(on, policies[agency_id].statement_days),
            "statement": "",
            "decision_reason": "",
            "decided_by_name": "",
            "review_request": "",
            "review_reason": "",
            "opened_at": utcnow(),
            "returned": second_year < year,
            "version": 1,
        }
        for officer_id, agency_id, second_year, first_id, second_id in pairs
    ]
    step("开立退出案件", 1, 4)
    opened: list[tuple[int, int, int, dt.date, str]] = []
    if new_cases:
        new_cases.sort(key=lambda c: c["officer_id"])  # the unique key (officer, year) is appended to
        found = await insert_many(
            db,
            ExitCase.__table__,
            new_cases,
            skip_conflicts_on=("officer_id", "year"),
            returning=("id", "officer_id", "agency_id", "statement_deadline", "proposed_outcome", "year"),
        )
        opened = [tuple(r[:5]) for r in found]
        events: list[dict[str, Any]] = []
        now = utcnow()
        for case_id, _officer_id, _agency_id, deadline, outcome, second_year in found:
            if second_year < year:
                events.append(
                    {
                        "case_id": case_id,
                        "kind": "returned",
                        "actor_name": actor_name,
                        "note": f"{second_year} 年度结转时当事人不在执法岗位，现已返回执法岗位：按其考核记录立案",
                        "occurred_at": now,
                    }
                )
            events.append(
                {
                    "case_id": case_id,
                    "kind": "opened",
                    "actor_name": actor_name,
                    "note": f"{second_year - 1}、{second_year} 连续两个年度考核不合格；"
                    f"拟处理意见：{ExitOutcome(outcome).label}",
                    "occurred_at": now,
                }
            )
            events.append(
                {
                    "case_id": case_id,
                    "kind": "notified",
                    "actor_name": actor_name,
                    "note": f"已告知当事人拟处理意见及其陈述申辩的权利；陈述申辩期限至 {deadline.isoformat()}",
                    "occurred_at": now,
                }
            )
        await insert_many(db, ExitCaseEvent.__table__, events)

    step("核查年度培训学时", 2, 4)
    flags_by_agency: Counter[int] = Counter()
    if _flat_requirements(policies):
        step("标记培训学时不足", 3, 4)
        flags_by_agency = await _flag_in_sql(db, scope_path, year, policies)
    else:
        with gc_paused():
            short = await _shortfalls(db, scope_path, year, policies)
        step("标记培训学时不足", 3, 4)
        if short:
            short.sort()  # officer order: the flags' only index is appended to, not split all over
            await _insert_flags(db, year, short)
            flags_by_agency = Counter(agency_id for _o, agency_id, _n, _c in short)

    cases_by_agency = Counter(r[2] for r in opened)
    agencies = [
        AgencyClose(
            agency_id=aid,
            agency_name=tree[aid].name if aid in tree else str(aid),
            cases_opened=cases_by_agency.get(aid, 0),
            shortfall_flags=flags_by_agency.get(aid, 0),
        )
        for aid in sorted(
            set(cases_by_agency) | set(flags_by_agency), key=lambda i: tree[i].path if i in tree else ""
        )
    ]
    case_ids = sorted(r[0] for r in opened)
    closing = YearClosing(
        year=year,
        scope_agency_id=scope_agency.id if scope_agency else None,
        scope_path=scope_path,
        run_by_name=actor_name,
        cases_opened=len(opened),
        flags_added=sum(flags_by_agency.values()),
        summary_json=json.dumps(
            [
                {
                    "agency_id": a.agency_id,
                    "agency_name": a.agency_name,
                    "cases": a.cases_opened,
                    "flags": a.shortfall_flags,
                }
                for a in agencies
            ],
            ensure_ascii=False,
        ),
    )
    db.add(closing)
    await db.flush()
    closed = {
        "year": year,
        "cases_opened": len(opened),
        "case_ids": case_ids,
        "cases_existing": existing,
        "flags_added": sum(flags_by_agency.values()),
    }
    await audit_change(db, principal, "assessment.year_closed", closing, closed)
    step("完成", 4, 4)
    return CloseYearOut(
        closing_id=closing.id,
        year=year,
        scope=scope_agency.name if scope_agency else "全部单位",
        officers_checked=len(rows),
        cases_opened=len(opened),
        cases_existing=existing,
        flags_added=sum(flags_by_agency.values()),
        case_ids=case_ids,
        agencies=agencies,
        seconds=round(time.perf_counter() - started, 3),
    )
