"""Selectors of the read side: the qualification roster (filters, keyset pages, full streams),
the ready-made lists and the indicators of an agency tree.

Every query is scoped to the principal's agency subtree (or a chosen agency inside it). Nothing
here writes: the roster reads the officers, the exam qualifications and the yearly training totals
kept by their own domains.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, exists, false, func, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from app.accounts import rules as account_rules
from app.accounts.models import Agency, Officer
from app.accounts.services import agency_get, agency_policies
from app.assessments.models import AssessmentRating, ExitCase
from app.certificates.models import Certificate
from app.certificates.rules import CertificateKind, CertificateStatus
from app.exams.models import ExamAttempt, ExamPartRow, ExamQualification, ExamSession
from app.lib.audit import AuditEvent
from app.lib.clock import today
from app.lib.enums import EmploymentStatus, Post, StaffType
from app.lib.errors import Forbidden
from app.lib.policy import DEFAULT_POLICY, Policy
from app.lib.security import Principal
from app.rosters import rules
from app.rosters.rules import (
    CertFilter,
    EligibleFilter,
    ExamFilter,
    ExitFilter,
    RosterFilter,
    RosterSort,
    StatusFilter,
    TrainingFilter,
)
from app.rosters.schemas import RosterRow
from app.training.models import TrainingYearTotal
from app.training.rules import TrainingCategory, TrainingRule
from app.training.services import value_by_agency

# ---------------------------------------------------------------- scope


@dataclass(frozen=True)
class Requirement:
    """The yearly training requirement of a group of agencies, in tenths."""

    total: int
    general_law: int = 0
    special_law: int = 0
    new_law: int = 0

    def met(self, g: int, s: int, n: int) -> bool:
        return (
            g + s + n >= self.total and g >= self.general_law and s >= self.special_law and n >= self.new_law
        )


def requirement_of(policy: Policy) -> Requirement:
    rule = TrainingRule.from_policy(policy)
    m = rule.category_minimums
    return Requirement(
        total=rule.hours_required,
        general_law=m.get(TrainingCategory.GENERAL_LAW, 0),
        special_law=m.get(TrainingCategory.SPECIAL_LAW, 0),
        new_law=m.get(TrainingCategory.NEW_LAW, 0),
    )


DEFAULT_REQUIREMENT = requirement_of(DEFAULT_POLICY)


@dataclass(frozen=True)
class Scope:
    """Where a roster looks: one agency and its subtree, with what the rows need from it."""

    agency_id: int
    agency_name: str
    path: str
    agencies: dict[int, tuple[str, str, int]]
    """id → (name, path, depth) of every agency in the subtree."""
    policies: dict[int, Policy]
    requirements: dict[int, Requirement]
    year: int
    as_of: dt.date

    @property
    def policy(self) -> Policy:
        return self.policies.get(self.agency_id, DEFAULT_POLICY)


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
        requirements={i: requirement_of(p) for i, p in policies.items()},
        year=year,
        as_of=as_of or today(),
    )


# ---------------------------------------------------------------- the roster statement

_T = TrainingYearTotal
HOURS = (
    func.coalesce(_T.general_law, 0).label("general_law"),
    func.coalesce(_T.special_law, 0).label("special_law"),
    func.coalesce(_T.new_law, 0).label("new_law"),
)


def in_scope(scope: Scope) -> ColumnElement[bool]:
    return Officer.agency_id.in_(select(Agency.id).where(Agency.path.startswith(scope.path)))


def exam_valid(as_of: dt.date) -> ColumnElement[bool]:
    """An exam qualification in force on ``as_of`` (passed, not removed, not past its validity).

    Read from what the officer's row keeps of its longest-running valid qualification (see
    ``exam_until_kept``): no look at the qualifications at all unless that one was passed after
    ``as_of``. Never NULL (an officer without any reads false), so its negation is exact too.
    """
    q = ExamQualification
    o = Officer
    looked_up = exists().where(
        q.officer_id == o.id, q.status == "valid", q.passed_on <= as_of, q.valid_until >= as_of
    )
    return or_(
        and_(o.exam_passed_on.is_not(None), o.exam_passed_on <= as_of, o.exam_valid_until >= as_of),
        and_(o.exam_passed_on.is_not(None), o.exam_passed_on > as_of, looked_up),
    )


def exam_valid_until(as_of: dt.date) -> Any:
    q = ExamQualification
    return (
        select(func.max(q.valid_until))
        .where(q.officer_id == Officer.id, q.status == "valid", q.passed_on <= as_of, q.valid_until >= as_of)
        .correlate(Officer)
        .scalar_subquery()
    )


def exam_until_kept(as_of: dt.date) -> Any:
    """``exam_valid_until(as_of)`` read from the officer's own row, for whole-roster reads.

    The row keeps the officer's longest-running valid qualification (migration 0012's triggers):
    when it was passed on or before ``as_of``, it alone answers (in force unless it ended before);
    no qualification at all answers NULL; only when it was passed after ``as_of`` — a date in the
    past, or a grant dated in China's day ahead of the server's — is the officer looked up the
    long way, as a page does.
    """
    o = Officer
    return case(
        (o.exam_passed_on <= as_of, case((o.exam_valid_until >= as_of, o.exam_valid_until))),
        (o.exam_passed_on.is_(None), None),
        else_=exam_valid_until(as_of),
    )


def whole_roster_joins(stmt: Any, f: RosterFilter) -> Any:
    """The card and the rating each row shows, joined for a whole-roster read (an export).

    Each officer's newest card and latest confirmed rating year are on its row (kept by migration
    0012's triggers): one join each by key. A filter on one kind of card finds the newest card of
    that kind by grouping the cards, as before.
    """
    if f.cert_kind is None:
        stmt = stmt.outerjoin(Certificate, Certificate.id == Officer.latest_certificate_id)
    else:
        latest = latest_cert_grouped(f.cert_kind)
        stmt = stmt.outerjoin(latest, latest.c.officer_id == Officer.id).outerjoin(
            Certificate, Certificate.id == latest.c.cid
        )
    return stmt.outerjoin(
        _R, and_(_R.officer_id == Officer.id, _R.year == Officer.latest_rating_year, _R.status == CONFIRMED)
    )


def requirement_total(scope: Scope) -> Any:
    """The officer's required hours (tenths) as SQL: the most common value, others by agency."""
    if not scope.requirements:
        return literal(DEFAULT_REQUIREMENT.total)
    return value_by_agency({agency_id: req.total for agency_id, req in scope.requirements.items()})


def training_met(scope: Scope) -> ColumnElement[bool]:
    """Net hours of the year at least the requirement of the officer's authority (one OR per policy).

    The agencies sharing the most common requirement need no agency condition; the others are
    named. Joiners are not prorated here (the training pages show that detail).
    """
    groups: dict[Requirement, list[int]] = {}
    for agency_id, req in scope.requirements.items():
        groups.setdefault(req, []).append(agency_id)
    if not groups:
        return false()
    g, s, n = (func.coalesce(c, 0) for c in (_T.general_law, _T.special_law, _T.new_law))

    def meets(req: Requirement) -> ColumnElement[bool]:
        conds = [g + s + n >= req.total]
        conds += [c >= v for c, v in ((g, req.general_law), (s, req.special_law), (n, req.new_law)) if v]
        return and_(*conds)

    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    common, _ = ordered[0]
    others = ordered[1:]
    if not others:
        return meets(common)
    named = [i for _, ids in others for i in ids]
    return or_(
        and_(Officer.agency_id.not_in(named), meets(common)),
        *(and_(Officer.agency_id.in_(ids), meets(req)) for req, ids in others),
    )


def roster_where(scope: Scope, f: RosterFilter) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [in_scope(scope)]
    q = f.q.strip()
    if q:
        if len(q) == 18 and q[:17].isdigit():
            conds.append(Officer.id_number == account_rules.normalize_id_number(q))
        else:
            conds.append(Officer.name.startswith(q, autoescape=True))
    if f.field:
        conds.append(Officer.field == f.field)
    if f.staff_type:
        conds.append(Officer.staff_type == f.staff_type.value)
    if f.post:
        conds.append(Officer.post == f.post.value)
    if f.status is StatusFilter.INACTIVE:
        conds.append(Officer.employment_status != EmploymentStatus.ACTIVE.value)
    elif f.status:
        conds.append(Officer.employment_status == f.status.value)
    if f.eligible is not None:
        excluded = [t.value for t in scope.policy.excluded_staff_types]
        if f.eligible is EligibleFilter.YES:
            conds.append(Officer.staff_type.not_in(excluded) if excluded else literal(True))
        else:
            conds.append(Officer.staff_type.in_(excluded) if excluded else false())
    if f.exam is ExamFilter.VALID:
        conds.append(exam_valid(scope.as_of))
    elif f.exam is ExamFilter.NONE:
        conds.append(~exam_valid(scope.as_of))
    if f.training is TrainingFilter.MET:
        conds.append(training_met(scope))
    elif f.training is TrainingFilter.SHORT:
        conds.append(~training_met(scope))
    if f.cert is not None or f.cert_kind is not None:
        conds.append(cert_condition(scope, f.cert, f.cert_kind))
    if f.rating:
        conds.append(rating_condition(f.rating, f.rating_year))
    if f.exit is ExitFilter.OPEN:
        conds.append(exit_open())
    elif f.exit is ExitFilter.NONE:
        conds.append(~exit_open())
    return conds


# ---------------------------------------------------------------- ratings and exit cases (their tables)

_R = AssessmentRating
CONFIRMED = "confirmed"


def rating_condition(grade: str, year: int | None) -> ColumnElement[bool]:
    """Rated ``grade`` in ``year`` (confirmed), or in the latest confirmed rating when no year."""
    r = aliased(AssessmentRating, name="rating_of_officer")
    if year is not None:
        when = r.year == year
    else:
        r2 = aliased(AssessmentRating, name="rating_latest")
        when = r.year == (
            select(func.max(r2.year))
            .where(r2.officer_id == Officer.id, r2.status == CONFIRMED)
            .correlate(Officer)
            .scalar_subquery()
        )
    return (
        select(r.id)
        .where(r.officer_id == Officer.id, r.status == CONFIRMED, r.grade == grade, when)
        .correlate(Officer)
        .exists()
    )


def exit_open() -> ColumnElement[bool]:
    """An exit case (two unqualified years running) that is not closed: 退出程序未办结."""
    e = aliased(ExitCase, name="exit_of_officer")
    return select(e.id).where(e.officer_id == Officer.id, e.status != "closed").correlate(Officer).exists()


def latest_rating_columns() -> tuple[Any, ...]:
    """(year, grade) of the officer's latest confirmed rating, one lookup each (for a page)."""
    r = aliased(AssessmentRating, name="rating_shown")

    def latest(col: Any) -> Any:
        return (
            select(col)
            .where(r.officer_id == Officer.id, r.status == CONFIRMED)
            .order_by(r.year.desc())
            .limit(1)
            .correlate(Officer)
            .scalar_subquery()
        )

    return latest(r.year).label("rating_year"), latest(r.grade).label("rating_grade")


# ---------------------------------------------------------------- certificates (read from their table)


def cert_status(today: dt.date, c: Any = Certificate) -> Any:
    """``certificates.rules.effective_status`` in SQL: valid or suspended past the last day reads 过期."""
    live = [CertificateStatus.VALID.value, CertificateStatus.SUSPENDED.value]
    return case(
        (and_(c.status.in_(live), c.valid_until < today), CertificateStatus.EXPIRED.value), else_=c.status
    )


def cert_condition(
    scope: Scope, cert: CertFilter | None, kind: CertificateKind | None
) -> ColumnElement[bool]:
    """The officer's cards (of ``kind``) meet ``cert`` (any card at all when None).

    The cards are an alias, correlated to the officer only: the row's own card (joined for the
    columns) must not stand in for them.
    """
    c = aliased(Certificate, name="cert_of_officer")
    of_kind = [c.kind == kind.value] if kind else []
    status = cert_status(scope.as_of, c)
    valid = status == CertificateStatus.VALID.value

    def having(*conds: Any) -> ColumnElement[bool]:
        return select(c.id).where(c.officer_id == Officer.id, *of_kind, *conds).correlate(Officer).exists()

    if cert is None:
        return having()
    if cert is CertFilter.VALID:
        return having(valid)
    if cert is CertFilter.NONE:
        return ~having(valid)
    if cert is CertFilter.EXPIRING:
        # Within the renewal window (6 months by default) before the last valid day.
        until = rules.add_months(scope.as_of, scope.policy.certificate_renewal_window_months)
        return having(valid, c.valid_until <= until)
    if cert is CertFilter.DUPLICATE:
        twice = (
            select(c.officer_id)
            .where(valid, *of_kind)
            .group_by(c.officer_id, c.kind)
            .having(func.count() > 1)
        )
        return Officer.id.in_(twice)
    return having(status == cert.value)


def latest_cert_columns(scope: Scope, kind: CertificateKind | None) -> tuple[Any, ...]:
    """The officer's most recent card (of ``kind``), one index probe per column: for a page.

    (A join ON the card id chosen by a correlated subquery would be re-evaluated per pair of rows.)
    """
    c = aliased(Certificate, name="cert_latest")

    def latest(col: Any) -> Any:
        return (
            select(col)
            .where(c.officer_id == Officer.id, *([c.kind == kind.value] if kind else []))
            .order_by(c.id.desc())
            .limit(1)
            .correlate(Officer)
            .scalar_subquery()
        )

    return (
        latest(c.number).label("number"),
        latest(c.kind).label("kind"),
        latest(cert_status(scope.as_of, c)).label("cert_status"),
        latest(c.valid_until).label("cert_valid_until"),
    )


def latest_cert_grouped(kind: CertificateKind | None) -> Any:
    c = aliased(Certificate, name="cert_latest")
    return (
        select(c.officer_id, func.max(c.id).label("cid"))
        .where(*([c.kind == kind.value] if kind else []))
        .group_by(c.officer_id)
        .subquery("latest_cert")
    )


def cert_columns(scope: Scope) -> tuple[Any, ...]:
    c = Certificate
    return (
        c.number,
        c.kind,
        cert_status(scope.as_of).label("cert_status"),
        c.valid_until.label("cert_valid_until"),
    )


ROW_COLUMNS = (
    Officer.id,
    Officer.name,
    Officer.id_number,
    Officer.gender,
    Officer.birth_date,
    Officer.agency_id,
    Officer.staff_type,
    Officer.post,
    Officer.field,
    Officer.area,
    Officer.employment_status,
)


def order_by(sort: RosterSort) -> list[Any]:
    if sort is RosterSort.AGENCY:
        return [Officer.agency_id, Officer.name, Officer.id]
    if sort is RosterSort.NAME:
        return [Officer.name, Officer.id]
    return [Officer.id.desc()]


def after_clause(sort: RosterSort, key: list[Any]) -> ColumnElement[bool]:
    if sort is RosterSort.AGENCY:
        return tuple_(Officer.agency_id, Officer.name, Officer.id) > tuple_(*(literal(v) for v in key))
    if sort is RosterSort.NAME:
        return tuple_(Officer.name, Officer.id) > tuple_(literal(key[0]), literal(key[1]))
    return Officer.id < key[0]


def roster_statement(scope: Scope, f: RosterFilter, *, every_row: bool = False) -> Select[Any]:
    """Every column a roster row shows, for the rows the filter keeps, in the filter's order.

    A page reads each row's exam validity, card and rating by lookups per row (a few index probes
    for each of 50 rows); ``every_row`` (an export) reads what the officer's row keeps of them and
    joins the card and rating by key instead of 200,000 × 3 probes.
    """
    if every_row:
        stmt: Any = whole_roster_joins(
            select(
                *ROW_COLUMNS,
                exam_until_kept(scope.as_of).label("exam_valid_until"),
                *HOURS,
                *cert_columns(scope),
                _R.year.label("rating_year"),
                _R.grade.label("rating_grade"),
                exit_open().label("exit_open"),
            ).select_from(Officer),
            f,
        )
    else:
        stmt = select(
            *ROW_COLUMNS,
            exam_valid_until(scope.as_of).label("exam_valid_until"),
            *HOURS,
            *latest_cert_columns(scope, f.cert_kind),
            *latest_rating_columns(),
            exit_open().label("exit_open"),
        )
        stmt = stmt.select_from(Officer)
    return (
        stmt.outerjoin(_T, and_(_T.year == scope.year, _T.officer_id == Officer.id))
        .where(*roster_where(scope, f))
        .order_by(*order_by(f.sort))
    )


def count_statement(scope: Scope, f: RosterFilter) -> Select[Any]:
    stmt = select(func.count()).select_from(Officer)
    if f.training is not None:
        stmt = stmt.outerjoin(_T, and_(_T.year == scope.year, _T.officer_id == Officer.id))
    return stmt.where(*roster_where(scope, f))


# ---------------------------------------------------------------- rows


class RowMaker:
    """Turns result tuples into roster values; one per request (it caches per agency)."""

    def __init__(self, scope: Scope, principal: Principal) -> None:
        self.scope = scope
        self.own_agency = principal.agency_id

    def id_number(self, agency_id: int, value: str) -> str:
        # Full ID numbers only to the officer's own agency (DOMAIN.md); masked for everyone above.
        return value if agency_id == self.own_agency else account_rules.mask_id_number(value)

    def row(self, r: Sequence[Any]) -> RosterRow:
        (oid, name, idn, gender, birth, agency_id, staff, post, field, area, status, exam_until, g, s, n) = r[
            :15
        ]
        number, kind, cert_status, cert_until, rating_year, rating_grade, exit_case = r[15:22]
        req = self.scope.requirements.get(agency_id) or DEFAULT_REQUIREMENT
        return RosterRow(
            officer_id=oid,
            name=name,
            id_number=self.id_number(agency_id, idn),
            gender=gender,
            birth_date=birth,
            agency_id=agency_id,
            agency_name=self.scope.agencies.get(agency_id, ("", "", 0))[0],
            staff_type=StaffType(staff),
            post=Post(post),
            field=field,
            area=area,
            employment_status=EmploymentStatus(status),
            exam_valid=exam_until is not None,
            exam_valid_until=exam_until,
            training_year=self.scope.year,
            training_hours=(g + s + n) / 10,
            training_required=req.total / 10,
            training_met=req.met(g, s, n),
            cert_number=number,
            cert_kind=CertificateKind(kind) if kind else None,
            cert_status=CertificateStatus(cert_status) if cert_status else None,
            cert_valid_until=cert_until,
            rating_year=rating_year,
            rating_grade=rating_grade,
            exit_open=bool(exit_case),
        )


@dataclass(frozen=True)
class RosterPage:
    rows: list[RosterRow]
    total: int | None
    """None: not counted (the caller asked for the rows only and no count was at hand)."""
    next_cursor: str | None


class CountCache:
    """Exact roster counts, remembered per process for the views users page through.

    An exact count of a province-wide view with exam or training filters joins 200,000 officers,
    their qualifications and their hours (0.1–0.4 s); paging through the view, or the next user of
    the same view, should not pay it again. An entry is keyed by the view (scope, filter, year,
    date) and by the newest audit event: every change that moves an officer in or out of a view
    (officer records, exam results, cards, training imports, ratings) is audited in its own
    transaction, so any such change makes a new key. The time limit covers what is not audited
    (bulk loads by the operator's console); entries are few and small (an LRU of 1,024).
    """

    TTL = 120.0
    SIZE = 1024

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[Any, ...], tuple[float, int]] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> int | None:
        hit = self._entries.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        self._entries.move_to_end(key)
        return hit[1]

    def put(self, key: tuple[Any, ...], total: int) -> None:
        self._entries[key] = (time.monotonic() + self.TTL, total)
        self._entries.move_to_end(key)
        while len(self._entries) > self.SIZE:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


COUNTS = CountCache()


async def _count_key(db: AsyncSession, scope: Scope, f: RosterFilter) -> tuple[Any, ...]:
    stamp = await db.scalar(select(func.max(AuditEvent.id)))
    return (scope.path, scope.agency_id, scope.year, scope.as_of, tuple(sorted(f.query().items())), stamp)


async def roster_count(
    db: AsyncSession, scope: Scope, f: RosterFilter, *, key: tuple[Any, ...] | None = None
) -> int:
    """The exact number of officers the view keeps (remembered: see ``CountCache``); ``key``: the
    view's ``_count_key`` when the caller has it already."""
    key = key or await _count_key(db, scope, f)
    total = COUNTS.get(key)
    if total is None:
        await no_jit(db)
        total = int(await db.scalar(count_statement(scope, f)) or 0)
        COUNTS.put(key, total)
    return total


async def roster_page(
    db: AsyncSession,
    principal: Principal,
    scope: Scope,
    f: RosterFilter,
    *,
    after: str | None = None,
    per_page: int = rules.PER_PAGE_DEFAULT,
    with_total: bool = True,
    count_maker: async_sessionmaker[AsyncSession] | None = None,
) -> RosterPage:
    """One page after the keyset cursor ``after`` (the first page without one), and the total.

    The total is exact. Known already (``CountCache``), it costs one index probe; otherwise, with
    ``with_total``, it is counted — with ``count_maker`` (PostgreSQL) on a second connection at the
    same time as the page, so a request takes the longer of the two, not their sum. Without
    ``with_total`` an unknown total is left as None (the roster page then asks ``roster_count``
    from the browser, after the rows are shown).
    """
    per_page = max(1, min(per_page, rules.PER_PAGE_MAX))
    stmt = roster_statement(scope, f)
    if after:
        stmt = stmt.where(after_clause(f.sort, rules.decode_cursor(f.sort, after)))
    key = await _count_key(db, scope, f)
    known = COUNTS.get(key)

    async def count_apart() -> int:
        assert count_maker is not None
        async with count_maker() as session:
            return await roster_count(session, scope, f, key=key)

    counting = None
    if (
        known is None
        and with_total
        and count_maker is not None
        and count_maker.kw["bind"].dialect.name == "postgresql"
    ):
        counting = asyncio.create_task(count_apart())
    try:
        await no_jit(db)
        result = (await db.execute(stmt.limit(per_page + 1))).all()
    except BaseException:
        if counting is not None:
            counting.cancel()
        raise
    maker = RowMaker(scope, principal)
    rows = [maker.row(r) for r in result[:per_page]]
    nxt = None
    if len(result) > per_page:
        last = rows[-1]
        nxt = rules.encode_cursor(
            f.sort,
            rules.sort_key(
                f.sort, {"agency_id": last.agency_id, "name": last.name, "officer_id": last.officer_id}
            ),
        )
    total: int | None = known
    if counting is not None:
        total = await counting
    elif total is None and with_total:
        total = await roster_count(db, scope, f, key=key)
    return RosterPage(rows=rows, total=total, next_cursor=nxt)


async def no_jit(db: AsyncSession | AsyncConnection) -> None:
    """PostgreSQL's JIT compiles a roster's plan for seconds (its cost passes jit_above_cost) to
    save milliseconds: off for this transaction."""
    conn = db if isinstance(db, AsyncConnection) else await db.connection()
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql("SET LOCAL jit = off")


async def roster_stream(
    maker: async_sessionmaker[AsyncSession], scope: Scope, f: RosterFilter, *, batch: int = 5000
) -> AsyncIterator[Sequence[Sequence[Any]]]:
    """Every filtered row in order, ``batch`` at a time, through a server-side cursor.

    It opens its own session: a streamed response outlives the request's. On PostgreSQL the
    rows come straight from an asyncpg cursor (SQLAlchemy's result rows would triple the time of
    a 200,000-row export); elsewhere from SQLAlchemy's streamed result.
    """
    stmt = roster_statement(scope, f, every_row=True)
    async with maker() as session:
        conn = await session.connection()
        if conn.dialect.name != "postgresql":
            result = await conn.stream(stmt.execution_options(yield_per=batch))
            async for part in result.partitions(batch):
                yield part
            return
        await no_jit(conn)
        await conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")  # sort in memory, not on disk
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        params = [compiled.params[k] for k in compiled.positiontup or ()]
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        cursor = await raw.cursor(str(compiled), *params)
        while True:
            part = await cursor.fetch(batch)
            if not part:
                break
            yield part


# ---------------------------------------------------------------- indicators


@dataclass(frozen=True)
class Figures:
    """Counts of one agency (or a subtree summed up)."""

    active: int = 0
    eligible: int = 0
    """In post and of a staff type that may hold a certificate: the base of 持证率."""
    exam_valid: int = 0
    certified: int = 0
    """Eligible, exam passed and in force, and a valid enforcement certificate: 持证 (seed 003 indicator 68)."""
    training_met: int = 0
    enforcement: int = 0
    legal_review: int = 0
    unqualified: int = 0
    """Rated 不合格 for the year (confirmed)."""
    exit_open: int = 0
    exam_sat: int = 0
    """Candidates (officer and exam session) with a result in the year: the base of the pass rate."""
    exam_passed: int = 0
    """Of those, candidates who passed every part of the exam in that session."""

    def __add__(self, other: Figures) -> Figures:
        return Figures(*(getattr(self, k) + getattr(other, k) for k in self.__dataclass_fields__))


async def indicator_figures(db: AsyncSession, scope: Scope) -> dict[int, Figures]:
    """Per agency of the subtree, the counts the dashboard divides (one grouped query)."""
    active = Officer.employment_status == EmploymentStatus.ACTIVE.value
    excluded = {t.value for t in scope.policy.excluded_staff_types}
    eligible = and_(active, Officer.staff_type.not_in(excluded)) if excluded else active

    def n(cond: ColumnElement[bool]) -> Any:
        return func.sum(case((cond, 1), else_=0))

    stmt = (
        select(
            Officer.agency_id,
            n(active),
            n(eligible),
            n(and_(eligible, exam_valid(scope.as_of))),
            n(
                and_(
                    eligible,
                    exam_valid(scope.as_of),
                    cert_condition(scope, CertFilter.VALID, CertificateKind.ENFORCEMENT),
                )
            ),
            n(and_(active, training_met(scope))),
            n(and_(active, Officer.post == Post.ENFORCEMENT.value)),
            n(and_(active, Officer.post == Post.LEGAL_REVIEW.value)),
            n(rating_condition(rules.UNQUALIFIED, scope.year)),
            n(exit_open()),
        )
        .outerjoin(_T, and_(_T.year == scope.year, _T.officer_id == Officer.id))
        .where(in_scope(scope))
        .group_by(Officer.agency_id)
    )
    await no_jit(db)
    out = {r[0]: Figures(*(int(v or 0) for v in r[1:])) for r in (await db.execute(stmt)).all()}
    for agency_id, sat, passed in (await db.execute(exam_pass_statement(scope))).all():
        fig = out.get(agency_id, Figures())
        out[agency_id] = replace(fig, exam_sat=int(sat or 0), exam_passed=int(passed or 0))
    return out


def exam_pass_statement(scope: Scope) -> Select[Any]:
    """考试通过率 of the year, per agency (the officer's agency when the attempt started): the
    candidates — an officer in an exam session — with a result closed in the year, and those of
    them who passed every part of the exam in that session (a passed retake counts)."""
    a = ExamAttempt
    start = dt.datetime(scope.year, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(scope.year + 1, 1, 1, tzinfo=dt.UTC)
    per_part = (
        select(
            a.session_id,
            a.officer_id,
            a.part_id,
            func.min(a.agency_id).label("agency_id"),
            func.max(case((a.passed.is_(True), 1), else_=0)).label("ok"),
        )
        .where(
            a.status == "closed",
            a.closed_at >= start,
            a.closed_at < end,
            a.agency_id.in_(select(Agency.id).where(Agency.path.startswith(scope.path))),
        )
        .group_by(a.session_id, a.officer_id, a.part_id)
        .subquery("per_part")
    )
    parts = (
        select(ExamPartRow.exam_id, func.count().label("n")).group_by(ExamPartRow.exam_id).subquery("parts")
    )
    candidate = (
        select(
            per_part.c.session_id,
            func.min(per_part.c.agency_id).label("agency_id"),
            func.sum(per_part.c.ok).label("passed_parts"),
        )
        .group_by(per_part.c.session_id, per_part.c.officer_id)
        .subquery("candidate")
    )
    return (
        select(
            candidate.c.agency_id,
            func.count(),
            func.sum(case((candidate.c.passed_parts >= parts.c.n, 1), else_=0)),
        )
        .join(ExamSession, ExamSession.id == candidate.c.session_id)
        .join(parts, parts.c.exam_id == ExamSession.exam_id)
        .group_by(candidate.c.agency_id)
    )


def roll_up(scope: Scope, per_agency: dict[int, Figures]) -> tuple[Figures, list[tuple[int, Figures]]]:
    """The subtree's total, and one total per direct child of the scope agency (own rows apart)."""
    depth = scope.agencies.get(scope.agency_id, ("", scope.path, 0))[2]
    child_of: dict[int, int] = {}
    for agency_id, (_name, path, _d) in scope.agencies.items():
        ids = [int(x) for x in path.strip("/").split("/") if x]
        # The id one level below the scope agency on this agency's path (itself for the scope agency).
        child_of[agency_id] = ids[depth + 1] if len(ids) > depth + 1 else scope.agency_id
    total = Figures()
    children: dict[int, Figures] = {}
    for agency_id, figures in per_agency.items():
        total = total + figures
        c = child_of.get(agency_id, scope.agency_id)
        children[c] = children.get(c, Figures()) + figures
    order = {aid: i for i, aid in enumerate(scope.agencies)}
    return total, sorted(children.items(), key=lambda kv: order.get(kv[0], 0))
