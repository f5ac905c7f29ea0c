"""The roster's rows: one keyset page (with its exact total, counted beside it when unknown), or
every row of a filter streamed in batches for an export."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts import rules as account_rules
from app.certificates.rules import CertificateKind, CertificateStatus
from app.lib.enums import EmploymentStatus, Post, StaffType
from app.lib.security import Principal
from app.rosters import rules
from app.rosters.rules import RosterFilter
from app.rosters.schemas import RosterRow
from app.rosters.services.counts import CountCache, count_key, roster_count
from app.rosters.services.scope import Scope
from app.rosters.services.statements import after_clause, no_jit, roster_statement
from app.training.rules import DEFAULT_RULE


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
        req = self.scope.requirements.get(agency_id) or DEFAULT_RULE
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
            training_required=req.hours_required / 10,
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


async def roster_page(
    db: AsyncSession,
    principal: Principal,
    scope: Scope,
    f: RosterFilter,
    *,
    after: str | None = None,
    per_page: int = rules.PER_PAGE_DEFAULT,
    counts: CountCache,
    with_total: bool = True,
    count_maker: async_sessionmaker[AsyncSession] | None = None,
) -> RosterPage:
    """One page after the keyset cursor ``after`` (the first page without one), and the total.

    The total is exact. Known already (in ``counts``), it costs one index probe; otherwise, with
    ``with_total``, it is counted — with ``count_maker`` (PostgreSQL) on a second connection at the
    same time as the page, so a request takes the longer of the two, not their sum. Without
    ``with_total`` an unknown total is left as None (the roster page then asks ``roster_count``
    from the browser, after the rows are shown).
    """
    per_page = max(1, min(per_page, rules.PER_PAGE_MAX))
    stmt = roster_statement(scope, f)
    if after:
        stmt = stmt.where(after_clause(f.sort, rules.decode_cursor(f.sort, after)))
    key = await count_key(db, scope, f)
    known = counts.get(key)

    async def count_apart() -> int:
        assert count_maker is not None
        async with count_maker() as session:
            return await roster_count(session, scope, f, counts=counts, key=key)

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
        total = await roster_count(db, scope, f, counts=counts, key=key)
    return RosterPage(rows=rows, total=total, next_cursor=nxt)


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
