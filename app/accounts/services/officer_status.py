"""The officer's kept status columns (migration 0012) for bulk loads that hold their triggers off.

``officers.exam_valid_until`` / ``exam_passed_on``, ``latest_certificate_id`` and
``latest_rating_year`` are kept by the database's own triggers on every write of their sources. A
bulk load of a whole province (``app demo-data``) paid for them once per statement on PostgreSQL
(each COPY of 20,000 cards locked and rewrote 20,000 officers: the officers were rewritten three
times over) and once per row on SQLite. ``officer_status_triggers_held`` turns the insert triggers
off for the caller's transaction — a rollback turns them back on with everything else — and
``officer_status_rebuild`` then sets every officer's columns in one statement, with exactly the
values the triggers keep (tests/integration/rosters/test_officer_status.py's oracle checks it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

SOURCES = ("exam_qualifications", "certificates", "assessment_ratings")
"""The tables whose rows the officer's status columns summarise."""

_VALID = "FROM exam_qualifications x WHERE x.officer_id = officers.id AND x.status = 'valid'"
# Each value as the triggers compute it. SQLite: correlated to ``officers``, each an index seek (the
# ratings' condition names the live-ratings index's own, see migration 0014).
SQLITE_REBUILD = f"""
UPDATE officers SET
  exam_valid_until = (SELECT max(x.valid_until) {_VALID}),
  exam_passed_on = (SELECT x.passed_on {_VALID} ORDER BY x.valid_until DESC, x.passed_on LIMIT 1),
  latest_certificate_id = (SELECT max(x.id) FROM certificates x WHERE x.officer_id = officers.id),
  latest_rating_year = (SELECT max(x.year) FROM assessment_ratings x
                        WHERE x.officer_id = officers.id AND x.status <> 'superseded' AND x.status = 'confirmed')
"""
# PostgreSQL: grouped once per source and hash-joined (right after a load the planner has no
# statistics, and a correlated form can become a scan per officer); only changed rows rewritten.
PG_REBUILD = """
UPDATE officers o SET exam_valid_until = s.exam_valid_until, exam_passed_on = s.exam_passed_on,
  latest_certificate_id = s.latest_certificate_id, latest_rating_year = s.latest_rating_year
FROM (
  SELECT b.id, q.exam_valid_until, q.exam_passed_on, c.latest_certificate_id, r.latest_rating_year
  FROM officers b
  LEFT JOIN (SELECT officer_id, max(valid_until) AS exam_valid_until,
                    (array_agg(passed_on ORDER BY valid_until DESC, passed_on))[1] AS exam_passed_on
             FROM exam_qualifications WHERE status = 'valid' GROUP BY officer_id) q ON q.officer_id = b.id
  LEFT JOIN (SELECT officer_id, max(id) AS latest_certificate_id
             FROM certificates GROUP BY officer_id) c ON c.officer_id = b.id
  LEFT JOIN (SELECT officer_id, max(year) AS latest_rating_year
             FROM assessment_ratings WHERE status = 'confirmed' GROUP BY officer_id) r ON r.officer_id = b.id
) s
WHERE o.id = s.id AND (o.exam_valid_until IS DISTINCT FROM s.exam_valid_until
  OR o.exam_passed_on IS DISTINCT FROM s.exam_passed_on
  OR o.latest_certificate_id IS DISTINCT FROM s.latest_certificate_id
  OR o.latest_rating_year IS DISTINCT FROM s.latest_rating_year)
"""


async def _insert_triggers(conn: AsyncConnection) -> list[tuple[str, str, str]]:
    """(table, trigger, its SQL on SQLite) of the status triggers that fire on inserts."""
    names = [f"officer_status_{t}_insert" for t in SOURCES]
    if conn.dialect.name == "sqlite":
        found = await conn.execute(
            text("SELECT tbl_name, name, sql FROM sqlite_master WHERE type = 'trigger'"),
        )
        return [(t, n, s) for t, n, s in found if n in names]
    found = await conn.execute(
        text(
            "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE NOT t.tgisinternal AND t.tgenabled <> 'D'"
        )
    )
    return [(t, n, "") for t, n in found if n in names]


@asynccontextmanager
async def officer_status_triggers_held(conn: AsyncConnection) -> AsyncIterator[None]:
    """Inserts into the source tables leave the officers alone inside this block; on a normal exit
    the triggers are back and every officer's columns are rebuilt. Only inserts: an update or a
    delete meanwhile would go unaccounted until the rebuild, which covers them too."""
    held = await _insert_triggers(conn)
    for table, name, _sql in held:
        if conn.dialect.name == "sqlite":  # no DISABLE TRIGGER: drop it, create it again from its SQL
            await conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
        else:  # locks the table until the transaction ends: for loads into a database nobody uses yet
            await conn.exec_driver_sql(f'ALTER TABLE "{table}" DISABLE TRIGGER "{name}"')
    yield
    for table, name, sql in held:
        if conn.dialect.name == "sqlite":
            await conn.exec_driver_sql(sql)
        else:
            await conn.exec_driver_sql(f'ALTER TABLE "{table}" ENABLE TRIGGER "{name}"')
    await officer_status_rebuild(conn)


async def officer_status_rebuild(conn: AsyncConnection) -> None:
    """Set every officer's status columns from their sources, in one statement."""
    await conn.exec_driver_sql(SQLITE_REBUILD if conn.dialect.name == "sqlite" else PG_REBUILD)
