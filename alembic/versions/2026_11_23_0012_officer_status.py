"""officer status columns: exam validity, newest card and latest rating kept on the officer by triggers

A whole-roster read (the CSV and XLSX exports of 200,000 officers) grouped three tables per request
to find, for each officer, the latest valid exam qualification, the newest certificate and the latest
confirmed rating: on the bench province that grouping and its hash joins were half of the export's
1.5–2.0 s. The three answers now live on the officer row, kept by the database itself on every insert,
update and delete of the rows they summarise — whatever writes them (the application, a bulk load, a
console session) — so they cannot drift from their sources:

* ``officers.exam_valid_until`` and ``exam_passed_on``: the officer's qualification in status
  ``valid`` that runs longest (max valid_until; its passed_on). On a date d the officer holds a
  qualification in force exactly when passed_on <= d <= valid_until of that one — or, only when its
  passed_on is after d, maybe of an older one: reads look those few officers up the long way;
* ``officers.latest_certificate_id``: max(id) of the officer's certificates;
* ``officers.latest_rating_year``: max(year) of the officer's confirmed ratings.

PostgreSQL: one statement-level trigger per table and event, over the statement's transition tables
(a bulk load of 300,000 qualifications recomputes each officer once, not once per row). It first
locks the affected officers (``FOR NO KEY UPDATE``, which foreign-key checks do not wait for), so the
recomputation that follows — a new statement, a new snapshot — sees every committed change: two
transactions writing rows of one officer at once cannot leave a stale value. SQLite (one writer):
row-level triggers.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23 00:40:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (source table, {officer column: its value for officer ``officers.id`` in SQL})
_VALID = "FROM exam_qualifications x WHERE x.officer_id = officers.id AND x.status = 'valid'"
STATUS: tuple[tuple[str, dict[str, str]], ...] = (
    (
        "exam_qualifications",
        {
            "exam_valid_until": f"(SELECT max(x.valid_until) {_VALID})",
            "exam_passed_on": f"(SELECT x.passed_on {_VALID} ORDER BY x.valid_until DESC, x.passed_on LIMIT 1)",
        },
    ),
    (
        "certificates",
        {"latest_certificate_id": "(SELECT max(x.id) FROM certificates x WHERE x.officer_id = officers.id)"},
    ),
    (
        "assessment_ratings",
        {
            "latest_rating_year": "(SELECT max(x.year) FROM assessment_ratings x "
            "WHERE x.officer_id = officers.id AND x.status = 'confirmed')"
        },
    ),
)
COLUMNS = (
    ("exam_valid_until", sa.Date),
    ("exam_passed_on", sa.Date),
    ("latest_certificate_id", sa.BigInteger),
    ("latest_rating_year", sa.Integer),
)
EVENTS = (
    ("insert", "INSERT", "REFERENCING NEW TABLE AS new_rows"),
    ("update", "UPDATE", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    ("delete", "DELETE", "REFERENCING OLD TABLE AS old_rows"),
)


def _sets(values: dict[str, str]) -> str:
    return ", ".join(f"{column} = {value}" for column, value in values.items())


def _changed(values: dict[str, str]) -> str:
    """Some column's value differs (PostgreSQL skips the officers whose values stand)."""
    return " OR ".join(f"{column} IS DISTINCT FROM {value}" for column, value in values.items())


def _pg_function(table: str, values: dict[str, str]) -> str:
    return f"""
CREATE FUNCTION officer_status_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(DISTINCT officer_id) INTO ids FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(DISTINCT officer_id) INTO ids FROM old_rows;
    ELSE
        SELECT array_agg(DISTINCT officer_id) INTO ids
        FROM (SELECT officer_id FROM new_rows UNION SELECT officer_id FROM old_rows) changed;
    END IF;
    IF ids IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM officers WHERE id = ANY (ids) ORDER BY id FOR NO KEY UPDATE;
    UPDATE officers SET {_sets(values)}
    WHERE id = ANY (ids) AND ({_changed(values)});
    RETURN NULL;
END
$$"""


def _sqlite_trigger(table: str, values: dict[str, str], event: str, keyword: str) -> str:
    officers = {
        "insert": "NEW.officer_id",
        "update": "NEW.officer_id, OLD.officer_id",
        "delete": "OLD.officer_id",
    }
    return (
        f"CREATE TRIGGER officer_status_{table}_{event} AFTER {keyword} ON {table} "
        f"BEGIN UPDATE officers SET {_sets(values)} WHERE id IN ({officers[event]}); END"
    )


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("officers", sa.Column(name, type_(), nullable=True))
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, values in STATUS:
        # The values of the rows already there, in one pass per table.
        op.execute(f"UPDATE officers SET {_sets(values)} WHERE id IN (SELECT officer_id FROM {table})")
        if postgres:
            op.execute(_pg_function(table, values))
            for event, keyword, referencing in EVENTS:
                op.execute(
                    f"CREATE TRIGGER officer_status_{table}_{event} AFTER {keyword} ON {table} "
                    f"{referencing} FOR EACH STATEMENT EXECUTE FUNCTION officer_status_{table}()"
                )
        else:
            for event, keyword, _referencing in EVENTS:
                op.execute(_sqlite_trigger(table, values, event, keyword))


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, _values in STATUS:
        for event, _keyword, _referencing in EVENTS:
            on = f" ON {table}" if postgres else ""
            op.execute(f"DROP TRIGGER IF EXISTS officer_status_{table}_{event}{on}")
        if postgres:
            op.execute(f"DROP FUNCTION IF EXISTS officer_status_{table}()")
    for name, _type in COLUMNS:
        op.execute(f"ALTER TABLE officers DROP COLUMN {name}")
