"""What the officer's row keeps of the other domains (migration 0012's triggers), on both engines.

``officers.exam_valid_until`` / ``exam_passed_on``, ``latest_certificate_id`` and
``latest_rating_year`` must always equal what grouping their source tables gives, after any insert,
update (also moving a row to another officer) and delete, one row or many at once; and the exam
validity read from the row must equal the per-officer lookup on every date.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts.models import Officer
from app.exams.models import ExamQualification
from app.rosters.services import statements
from tests.factories import add_certificate, add_officer, build_world, make_id_number

D = dt.date

EXPECTED = text(
    """
    SELECT o.id,
      (SELECT max(q.valid_until) FROM exam_qualifications q WHERE q.officer_id = o.id AND q.status = 'valid'),
      (SELECT q.passed_on FROM exam_qualifications q WHERE q.officer_id = o.id AND q.status = 'valid'
       ORDER BY q.valid_until DESC, q.passed_on LIMIT 1),
      (SELECT max(c.id) FROM certificates c WHERE c.officer_id = o.id),
      (SELECT max(r.year) FROM assessment_ratings r WHERE r.officer_id = o.id AND r.status = 'confirmed')
    FROM officers o ORDER BY o.id
    """
)
KEPT = text(
    "SELECT id, exam_valid_until, exam_passed_on, latest_certificate_id, latest_rating_year "
    "FROM officers ORDER BY id"
)


def _day(v: Any) -> Any:
    return D.fromisoformat(v) if isinstance(v, str) else v


async def assert_kept(db: AsyncSession, when: str) -> list[tuple[Any, ...]]:
    expected = [tuple(map(_day, r)) for r in (await db.execute(EXPECTED)).all()]
    kept = [tuple(map(_day, r)) for r in (await db.execute(KEPT)).all()]
    assert kept == expected, when
    return kept


async def _qualification(
    db: AsyncSession, officer: Officer, passed: D, until: D, **kw: Any
) -> ExamQualification:
    q = ExamQualification(officer_id=officer.id, passed_on=passed, valid_until=until, source="legacy", **kw)
    db.add(q)
    await db.flush()
    return q


async def _rating(db: AsyncSession, officer: Officer, year: int, status: str) -> int:
    result = await db.execute(
        text(
            "INSERT INTO assessment_ratings (officer_id, agency_id, year, grade, comment, excellent_barred, "
            "status, reason, entered_by_name, entered_at, confirmed_by_name, confirmed_at) VALUES (:o, :a, :y, "
            "'合格', '', :f, :s, '', '测试', :at, '', :cat) RETURNING id"
        ),
        {
            "o": officer.id,
            "a": officer.agency_id,
            "y": year,
            "s": status,
            "f": False,
            "at": dt.datetime(2026, 1, 5, tzinfo=dt.UTC),
            "cat": None if status == "draft" else dt.datetime(2026, 1, 6, tzinfo=dt.UTC),
        },
    )
    return int(result.scalar_one())


async def test_every_change_to_the_sources_keeps_the_officer_row_in_step(db: AsyncSession) -> None:
    w = await build_world(db)
    a, b, c = (
        w.officer_a,
        w.officer_b,
        await add_officer(db, w.dept_a, "王五", id_number=make_id_number(seq=77)),
    )
    await db.commit()
    await assert_kept(db, "start")

    # Exam qualifications: the longest-running valid one, its pass date; removed ones do not count.
    q1 = await _qualification(db, a, D(2022, 3, 1), D(2025, 3, 1))
    await assert_kept(db, "first qualification")
    q2 = await _qualification(db, a, D(2024, 6, 1), D(2027, 6, 1))
    rows = await assert_kept(db, "a longer one")
    assert rows[[r[0] for r in rows].index(a.id)][1:3] == (D(2027, 6, 1), D(2024, 6, 1))
    await _qualification(db, a, D(2023, 6, 1), D(2027, 6, 1))
    rows = await assert_kept(db, "two ending the same day: the earlier pass is kept")
    assert rows[[r[0] for r in rows].index(a.id)][2] == D(2023, 6, 1)
    await db.execute(
        text("UPDATE exam_qualifications SET status = 'removed', removed_on = :d WHERE officer_id = :o"),
        {"d": D(2026, 5, 1), "o": a.id},
    )
    rows = await assert_kept(db, "all removed (the exit procedure)")
    assert rows[[r[0] for r in rows].index(a.id)][1:3] == (None, None)
    await db.execute(
        text("UPDATE exam_qualifications SET status = 'valid', removed_on = NULL WHERE id = :q"), {"q": q1.id}
    )
    await assert_kept(db, "one restored")
    await db.execute(
        text("UPDATE exam_qualifications SET officer_id = :b WHERE id = :q"), {"b": b.id, "q": q1.id}
    )
    await assert_kept(db, "moved to another officer: both recomputed")
    await db.execute(text("DELETE FROM exam_qualifications WHERE id = :q"), {"q": q2.id})
    await assert_kept(db, "deleted")
    # Many officers in one statement (a bulk load): each recomputed once, all right.
    await db.execute(
        text(
            "INSERT INTO exam_qualifications (officer_id, field, passed_on, valid_until, source, status, "
            "removed_reason, created_at) "
            "SELECT id, '', :p, :u, 'legacy', 'valid', '', :at FROM officers"
        ),
        {"p": D(2025, 1, 1), "u": D(2028, 1, 1), "at": dt.datetime(2026, 1, 5, tzinfo=dt.UTC)},
    )
    await assert_kept(db, "bulk insert")

    # Certificates: the newest by id, of any kind and status.
    c1 = await add_certificate(db, a, w.dept_a, w.province, "CERT-1")
    await assert_kept(db, "first card")
    c2 = await add_certificate(db, a, w.dept_a, w.province, "CERT-2", status="revoked")
    rows = await assert_kept(db, "a newer card")
    assert rows[[r[0] for r in rows].index(a.id)][3] == c2.id
    await db.execute(text("UPDATE certificates SET status = 'suspended' WHERE id = :c"), {"c": c1.id})
    await assert_kept(db, "a status change moves nothing")
    await db.execute(text("DELETE FROM certificates WHERE id = :c"), {"c": c2.id})
    rows = await assert_kept(db, "newest deleted")
    assert rows[[r[0] for r in rows].index(a.id)][3] == c1.id

    # Ratings: the latest confirmed year; drafts and superseded ones do not count.
    r1 = await _rating(db, c, 2024, "draft")
    await assert_kept(db, "a draft")
    await db.execute(
        text("UPDATE assessment_ratings SET status = 'confirmed', confirmed_at = entered_at WHERE id = :r"),
        {"r": r1},
    )
    await assert_kept(db, "confirmed")
    r2 = await _rating(db, c, 2025, "confirmed")
    rows = await assert_kept(db, "a later year")
    assert rows[[r[0] for r in rows].index(c.id)][4] == 2025
    await db.execute(text("UPDATE assessment_ratings SET status = 'superseded' WHERE id = :r"), {"r": r2})
    rows = await assert_kept(db, "superseded by a correction")
    assert rows[[r[0] for r in rows].index(c.id)][4] == 2024
    await db.execute(text("DELETE FROM assessment_ratings WHERE officer_id = :o"), {"o": c.id})
    await assert_kept(db, "ratings deleted")
    await db.commit()
    await assert_kept(db, "after commit")


@pytest.mark.parametrize(
    "as_of",
    [
        D(2021, 1, 1),
        D(2022, 3, 1),
        D(2023, 12, 31),
        D(2024, 6, 1),
        D(2025, 3, 2),
        D(2027, 6, 1),
        D(2030, 1, 1),
    ],
)
async def test_exam_validity_from_the_row_equals_the_lookup_on_every_date(db: AsyncSession, as_of: D) -> None:
    """Including officers whose longest qualification was passed after the date (then an older one
    may be the one in force): the row's answer falls back to the lookup for exactly those."""
    w = await build_world(db)
    a, b = w.officer_a, w.officer_b
    c = await add_officer(db, w.dept_a, "王五", id_number=make_id_number(seq=78))
    await _qualification(db, a, D(2022, 3, 1), D(2025, 3, 1))
    await _qualification(db, a, D(2024, 6, 1), D(2027, 6, 1))  # passed after some of the dates
    await _qualification(db, b, D(2023, 12, 31), D(2026, 12, 31))
    await _qualification(db, b, D(2020, 1, 1), D(2029, 1, 1), status="removed", removed_on=D(2021, 6, 1))
    del c  # no qualification at all
    await db.commit()
    kept = statements.exam_until_kept(as_of)
    looked_up = statements.exam_valid_until(as_of)
    valid = statements.exam_valid(as_of)  # the filter (and the dashboard's count): kept, with its fallback
    rows = (await db.execute(select(Officer.id, kept, looked_up, valid, ~valid).order_by(Officer.id))).all()
    assert len(rows) >= 3, "no officers"
    for officer_id, from_row, from_lookup, is_valid, is_not_valid in rows:
        assert _day(from_row) == _day(from_lookup), (as_of, officer_id)
        assert bool(is_valid) is (from_lookup is not None), (as_of, officer_id)
        assert bool(is_not_valid) is (from_lookup is None), (as_of, officer_id)  # never NULL


async def test_two_transactions_granting_to_one_officer_at_once_leave_the_longest(
    sessionmaker: async_sessionmaker[AsyncSession], db: AsyncSession
) -> None:
    """PostgreSQL: each trigger locks the officer, then recomputes in a fresh snapshot, so the one
    that commits second sees the first one's qualification. (SQLite has one writer at a time.)"""
    if db.bind.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: no two transactions write at once")
    w = await build_world(db)
    officer_id = w.officer_a.id
    await db.commit()
    started = asyncio.Event()

    async def grant(until: D, hold: bool) -> None:
        async with sessionmaker() as s:
            s.add(
                ExamQualification(
                    officer_id=officer_id, passed_on=D(2025, 1, 1), valid_until=until, source="legacy"
                )
            )
            await s.flush()
            if hold:
                started.set()
                await asyncio.sleep(0.3)  # the other transaction writes meanwhile, then waits for us
            await s.commit()

    # The longer one commits first; the shorter one's trigger, computed in its own old snapshot,
    # would overwrite it with its own date — unless it waits for the officer and looks again.
    first = asyncio.create_task(grant(D(2027, 1, 1), hold=True))
    await started.wait()
    await grant(D(2026, 1, 1), hold=False)
    await first
    rows = await assert_kept(db, "after both commits")
    assert dict((r[0], r[1]) for r in rows)[officer_id] == D(2027, 1, 1)


async def test_the_demo_load_holds_the_triggers_and_rebuilds_the_same_values(
    db: AsyncSession, database_url: str
) -> None:
    """`app demo-data` turns the insert triggers off for its load and rebuilds every officer's
    columns in one statement: the same values the triggers keep, and the triggers are back after."""
    from app.demo.province import generate_demo

    await generate_demo(officers=400, seed=5, if_empty=False, progress=False, database_url=database_url)
    kept = await assert_kept(db, "after the demo load")
    assert sum(1 for r in kept if r[1] is not None) > 200 and sum(1 for r in kept if r[3] is not None) > 100
    assert any(r[4] is not None for r in kept)
    # The triggers fire again: a new pass for an officer without one shows on the row.
    officer = await db.scalar(select(Officer).where(Officer.exam_valid_until.is_(None)).limit(1))
    assert officer is not None
    await _qualification(db, officer, D(2026, 1, 5), D(2031, 1, 5))
    await assert_kept(db, "a pass added after the load")
    await db.rollback()
