"""The Alembic migrations: they run both ways, and they build exactly what the models describe.

Each test migrates a fresh database of its own, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pprint import pformat
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from app.db import make_engine
from app.lib import migrate
from app.models import metadata

VERSION_TABLE = "alembic_version"

CreateDatabase = Callable[[], Awaitable[str]]  # the conftest fixture


async def _upgrade(url: str, revision: str = "head") -> None:
    await asyncio.to_thread(migrate.upgrade, url, revision)


async def _downgrade(url: str, revision: str) -> None:
    await asyncio.to_thread(migrate.downgrade, url, revision)


async def _inspect(url: str, fn: Any) -> Any:
    """Run ``fn(sync_connection)`` on a short-lived engine for ``url``."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


def _table_names(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _leftover_types(conn: Connection) -> list[str]:
    """PostgreSQL enum and composite types, and sequences, left in ``public`` (none on SQLite)."""
    if conn.dialect.name != "postgresql":
        return []
    rows = conn.execute(
        text(
            "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            "WHERE n.nspname = 'public' AND t.typtype = 'e' "
            "UNION ALL "
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'S'"
        )
    )
    return sorted(rows.scalars())


def test_single_head() -> None:
    heads = ScriptDirectory.from_config(migrate.alembic_config()).get_heads()
    assert len(heads) == 1, f"the migrations have {len(heads)} heads {heads}: merge them"


async def test_upgrade_downgrade_upgrade(create_database: CreateDatabase) -> None:
    url = await create_database()
    head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
    model_tables = set(metadata.tables)

    await _upgrade(url)
    assert await _inspect(url, _current_revision) == head
    missing = model_tables - await _inspect(url, _table_names)
    assert not missing, f"tables in the models but not after upgrade: {sorted(missing)}"

    await _downgrade(url, "base")
    left = await _inspect(url, _table_names) - {VERSION_TABLE}
    assert not left, f"tables left after downgrade to base: {sorted(left)}"
    assert await _inspect(url, _current_revision) is None
    leftovers = await _inspect(url, _leftover_types)
    assert not leftovers, f"types/sequences left after downgrade to base: {leftovers}"

    await _upgrade(url)
    assert await _inspect(url, _current_revision) == head
    missing = model_tables - await _inspect(url, _table_names)
    assert not missing, f"tables missing after the second upgrade: {sorted(missing)}"


async def test_models_match_migrations(create_database: CreateDatabase) -> None:
    url = await create_database()
    await _upgrade(url)

    def diff(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    differences = await _inspect(url, diff)
    assert differences == [], (
        "the models and the migrations disagree; generate a migration "
        "(alembic revision --autogenerate) and review it:\n" + pformat(differences)
    )


def _officer_status_triggers(conn: Connection) -> list[tuple[str, str]]:
    """(name, what to check): SQLite: each trigger's UPDATE with the row's officer as 1, and its
    query plan; PostgreSQL: whether each trigger fires once per statement (not once per row)."""
    if conn.dialect.name == "sqlite":
        out = []
        for name, sql in conn.execute(
            text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'officer_status_%'"
            )
        ):
            update = sql.split(" BEGIN ", 1)[1].rsplit("; END", 1)[0]
            update = update.replace("NEW.officer_id", "1").replace("OLD.officer_id", "1")
            plan = [str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + update))]
            out.append((name, " | ".join(plan)))
        return sorted(out)
    rows = conn.execute(
        text(
            "SELECT tgname, CASE WHEN tgtype & 1 = 1 THEN 'row' ELSE 'statement' END FROM pg_trigger "
            "WHERE NOT tgisinternal AND tgname LIKE 'officer_status_%'"
        )
    )
    return sorted((str(n), str(level)) for n, level in rows)


async def test_officer_status_triggers_touch_only_the_officers_rows(create_database: CreateDatabase) -> None:
    """The triggers that keep the officer's status columns (migrations 0012, 0014) must not grow with
    the table they watch: SQLite's row triggers seek the officer's rows by an index (a subquery that
    walked a whole index per row made a 400,000-rating load quadratic); PostgreSQL's fire once per
    statement over its transition tables."""
    url = await create_database()
    await _upgrade(url)
    triggers = await _inspect(url, _officer_status_triggers)
    assert len(triggers) == 9, triggers  # 3 tables x insert, update, delete
    for name, found in triggers:
        if found in ("row", "statement"):
            assert found == "statement", name
            continue
        searches = [step for step in found.split(" | ") if step.startswith(("SEARCH", "SCAN"))]
        assert searches and all("=?" in step for step in searches), (name, found)


_ROWS_0014 = [
    "INSERT INTO agencies (id, parent_id, name, short_name, region_code, level, kind, path, depth,"
    " is_enforcement_subject, enforcement_basis, is_issuing_authority, authority_name, is_active,"
    " created_at, updated_at, policy_json) VALUES (1, NULL, '省', '', '320000', 'province', 'government',"
    " '/1/', 0, false, '', true, '省司法厅', true, '2026-01-01', '2026-01-01',"
    ' \'{"grades": ["优秀", "称职", "基本称职", "不称职"], "statement_days": 10}\')',
    "INSERT INTO officers (id, agency_id, name, id_number, gender, birth_date, staff_type, post, field,"
    " area, employment_status, phone, version, created_at, updated_at) VALUES (1, 1, '张三',"
    " '110101199003070000', '男', '1990-03-07', 'civil_servant', 'enforcement', '市场监管', '', 'active',"
    " '', 1, '2026-01-01', '2026-01-01')",
    "INSERT INTO assessment_ratings (id, officer_id, agency_id, year, grade, comment, excellent_barred,"
    " status, reason, entered_by_name, entered_at, confirmed_by_name, confirmed_at) VALUES"
    " (1, 1, 1, 2025, '不称职', '', true, 'confirmed', '', 't', '2026-01-01', 't', '2026-01-01'),"
    " (2, 1, 1, 2026, '不称职', '', true, 'confirmed', '', 't', '2026-01-01', 't', '2026-01-01')",
    "INSERT INTO exit_cases (id, officer_id, agency_id, authority_id, year, first_rating_id,"
    " second_rating_id, proposed_outcome, status, notified_on, statement_deadline, statement,"
    " decision_reason, decided_by_name, review_request, review_reason, opened_at, version) VALUES"
    " (1, 1, 1, 1, 2026, 1, 2, 'remove_qualification', 'open', '2027-01-01', '2027-01-08', '', '', '',"
    " '', '', '2027-01-01', 1)",
    "INSERT INTO exit_case_events (id, case_id, kind, actor_name, note, occurred_at)"
    " VALUES (1, 1, 'opened', 't', '', '2027-01-01')",
]


async def _write(url: str, *statements: str) -> Any:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            out = None
            for sql in statements:
                result = await conn.execute(text(sql))
                out = result.all() if result.returns_rows else None
            return out
    finally:
        await engine.dispose()


async def test_exit_revision_keeps_cases_events_and_policies(create_database: CreateDatabase) -> None:
    """Revision 0017 (exit) on a database that holds a case with its timeline and a stored policy of
    its own grade list: SQLite rebuilds exit_cases under the events' foreign key, and the policy gets
    the failing grades of its own list (then drops them again on the way down)."""
    url = await create_database()
    await _upgrade(url, "0016")
    await _write(url, *_ROWS_0014)
    await _upgrade(url)
    rows = await _write(
        url,
        "UPDATE exit_cases SET status = 'evidence_withdrawn' WHERE id = 1",
        "SELECT c.status, c.returned, count(e.id), a.is_legal_affairs_office, a.policy_json FROM exit_cases c"
        " JOIN exit_case_events e ON e.case_id = c.id JOIN agencies a ON a.id = c.agency_id"
        " GROUP BY c.status, c.returned, a.is_legal_affairs_office, a.policy_json",
    )
    ((status, returned, events, office, policy),) = rows
    assert (status, bool(returned), events, bool(office)) == ("evidence_withdrawn", False, 1, False)
    assert '"failing_grades":["不称职"]' in policy
    try:  # the events' foreign key is back in force
        await _write(url, "INSERT INTO exit_case_events (id, case_id, kind, actor_name, note, occurred_at)"
                     " VALUES (2, 99, 'x', 't', '', '2027-01-01')")  # fmt: skip
        raise AssertionError("an event of no case was accepted")
    except Exception as exc:
        assert "foreign key" in str(exc).lower(), exc
    await _downgrade(url, "0016")
    ((status, decision, policy),) = await _write(
        url,
        "SELECT c.status, c.decision, a.policy_json FROM exit_cases c JOIN agencies a ON a.id = c.agency_id",
    )
    assert (status, decision) == ("closed", "drop") and "failing_grades" not in policy
