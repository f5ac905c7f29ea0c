"""The roster's statements: the conditions of its filters, the columns of its rows, its order and
keyset, over the officers and what their own domains keep of them (exam qualifications, yearly
training totals, cards, ratings and exit cases). Pure SQL construction, plus ``no_jit``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, exists, false, func, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import aliased

from app.accounts import rules as account_rules
from app.accounts.models import Officer
from app.accounts.selectors import agency_subtree_ids
from app.assessments.models import AssessmentRating, ExitCase
from app.assessments.rules import FINISHED_STATUSES
from app.certificates.models import Certificate
from app.certificates.rules import CertificateKind, CertificateStatus
from app.exams.models import ExamQualification
from app.lib.enums import EmploymentStatus
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
from app.rosters.services.scope import Scope
from app.training.models import TrainingYearTotal
from app.training.rules import DEFAULT_RULE
from app.training.selectors.compliance import value_by_agency

_T = TrainingYearTotal
_G, _S, _N = _T.category_hours()
HOURS = (_G.label("general_law"), _S.label("special_law"), _N.label("new_law"))


def in_scope(scope: Scope) -> ColumnElement[bool]:
    return Officer.agency_id.in_(agency_subtree_ids(scope.path))


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
        return literal(DEFAULT_RULE.hours_required)
    return value_by_agency({agency_id: rule.hours_required for agency_id, rule in scope.requirements.items()})


def training_met(scope: Scope) -> ColumnElement[bool]:
    """Net hours of the year at least the requirement of the officer's authority (one OR per policy).

    The agencies sharing the most common requirement need no agency condition; the others are
    named. Joiners are not prorated here (the training pages show that detail).
    """
    groups: dict[tuple[int, tuple[int, ...]], list[int]] = {}
    for agency_id, rule in scope.requirements.items():
        groups.setdefault((rule.hours_required, rule.minima), []).append(agency_id)
    if not groups:
        return false()
    hours = _T.category_hours()

    def meets(req: tuple[int, tuple[int, ...]]) -> ColumnElement[bool]:
        total, minima = req
        conds = [_T.net_hours() >= total]
        conds += [c >= v for c, v in zip(hours, minima, strict=True) if v]
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
        grades = scope.failing_grades if f.rating == rules.FAILING else (f.rating,)
        conds.append(rating_condition(grades, f.rating_year))
    if f.exit is ExitFilter.OPEN:
        conds.append(exit_open())
    elif f.exit is ExitFilter.NONE:
        conds.append(~exit_open())
    return conds


# ---------------------------------------------------------------- ratings and exit cases (their tables)

_R = AssessmentRating
CONFIRMED = "confirmed"


def rating_condition(grades: Sequence[str], year: int | None) -> ColumnElement[bool]:
    """Rated one of ``grades`` in ``year`` (confirmed), or in the latest confirmed rating when no year."""
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
        .where(r.officer_id == Officer.id, r.status == CONFIRMED, r.grade.in_(grades), when)
        .correlate(Officer)
        .exists()
    )


def exit_open() -> ColumnElement[bool]:
    """An exit case (two unqualified years running) whose procedure is not over: 退出程序未办结
    (neither closed nor ended on withdrawn evidence)."""
    e = aliased(ExitCase, name="exit_of_officer")
    finished = [s.value for s in FINISHED_STATUSES]
    return (
        select(e.id).where(e.officer_id == Officer.id, e.status.not_in(finished)).correlate(Officer).exists()
    )


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


async def no_jit(db: AsyncSession | AsyncConnection) -> None:
    """PostgreSQL's JIT compiles a roster's plan for seconds (its cost passes jit_above_cost) to
    save milliseconds: off for this transaction."""
    conn = db if isinstance(db, AsyncConnection) else await db.connection()
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql("SET LOCAL jit = off")
