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

# Per source table: the join condition of its rows that count ("x" joined to the officers "c"), and
# each officer column with its aggregate over them.
STATUS: tuple[tuple[str, str, dict[str, str]], ...] = (
    (
        "exam_qualifications",
        "x.officer_id = c.officer_id AND x.status = 'valid'",
        {
            "exam_valid_until": "max(x.valid_until)",
            "exam_passed_on": "(array_agg(x.passed_on ORDER BY x.valid_until DESC, x.passed_on))[1]",
        },
    ),
    ("certificates", "x.officer_id = c.officer_id", {"latest_certificate_id": "max(x.id)"}),
    (
        "assessment_ratings",
        "x.officer_id = c.officer_id AND x.status = 'confirmed'",
        {"latest_rating_year": "max(x.year)"},
    ),
)
# SQLite (no array_agg): the same values as subqueries correlated to ``officers``.
_VALID = "FROM exam_qualifications x WHERE x.officer_id = officers.id AND x.status = 'valid'"
SQLITE: dict[str, dict[str, str]] = {
    "exam_qualifications": {
        "exam_valid_until": f"(SELECT max(x.valid_until) {_VALID})",
        "exam_passed_on": f"(SELECT x.passed_on {_VALID} ORDER BY x.valid_until DESC, x.passed_on LIMIT 1)",
    },
    "certificates": {
        "latest_certificate_id": "(SELECT max(x.id) FROM certificates x WHERE x.officer_id = officers.id)"
    },
    "assessment_ratings": {
        "latest_rating_year": "(SELECT max(x.year) FROM assessment_ratings x "
        "WHERE x.officer_id = officers.id AND x.status = 'confirmed')"
    },
}
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


def _pg_update(table: str, joined: str, values: dict[str, str], officers: str) -> str:
    """UPDATE of the officers listed by the query ``officers`` from their rows of ``table``, grouped
    (a hash join for a bulk statement, index probes for a few rows: never one scan per officer),
    skipping the officers whose values stand."""
    columns = ", ".join(f"{expr} AS {column}" for column, expr in values.items())
    return (
        "UPDATE officers o SET "
        + ", ".join(f"{column} = a.{column}" for column in values)
        + f" FROM (SELECT c.officer_id, {columns} FROM ({officers}) c LEFT JOIN {table} x ON {joined} "
        "GROUP BY c.officer_id) a WHERE o.id = a.officer_id AND ("
        + " OR ".join(f"o.{column} IS DISTINCT FROM a.{column}" for column in values)
        + ")"
    )


def _pg_function(table: str, joined: str, values: dict[str, str]) -> str:
    changed = {
        "INSERT": "SELECT DISTINCT officer_id FROM new_rows",
        "DELETE": "SELECT DISTINCT officer_id FROM old_rows",
        "UPDATE": "SELECT officer_id FROM new_rows UNION SELECT officer_id FROM old_rows",
    }

    def quoted(sql: str) -> str:
        return "'" + sql.replace("'", "''") + "'"

    branches = "\n    ".join(
        f"{'IF' if n == 0 else 'ELSIF'} TG_OP = '{op_}' THEN\n"
        f"        EXECUTE {quoted(f'SELECT 1 FROM officers WHERE id IN ({sql}) ORDER BY id FOR NO KEY UPDATE')};\n"
        f"        EXECUTE {quoted(_pg_update(table, joined, values, sql))};"
        for n, (op_, sql) in enumerate(changed.items())
    )
    return f"""
CREATE FUNCTION officer_status_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Lock the officers first; the UPDATE after it is a new statement with a new snapshot, so it
    -- sees what a concurrent writer of the same officer committed meanwhile.
    -- EXECUTE: planned afresh for each statement, for its own number of rows and the tables' sizes
    -- now, not those of the session's first statement (made, perhaps, when a table was empty).
    {branches}
    END IF;
    RETURN NULL;
END
$$"""


def _sqlite_trigger(table: str, event: str, keyword: str) -> str:
    officers = {
        "insert": "NEW.officer_id",
        "update": "NEW.officer_id, OLD.officer_id",
        "delete": "OLD.officer_id",
    }
    sets = ", ".join(f"{column} = {value}" for column, value in SQLITE[table].items())
    return (
        f"CREATE TRIGGER officer_status_{table}_{event} AFTER {keyword} ON {table} "
        f"BEGIN UPDATE officers SET {sets} WHERE id IN ({officers[event]}); END"
    )


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("officers", sa.Column(name, type_(), nullable=True))
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, joined, values in STATUS:
        # The values of the rows already there.
        if postgres:
            op.execute(_pg_update(table, joined, values, f"SELECT DISTINCT officer_id FROM {table}"))
            op.execute(_pg_function(table, joined, values))
            for event, keyword, referencing in EVENTS:
                op.execute(
                    f"CREATE TRIGGER officer_status_{table}_{event} AFTER {keyword} ON {table} "
                    f"{referencing} FOR EACH STATEMENT EXECUTE FUNCTION officer_status_{table}()"
                )
        else:
            sets = ", ".join(f"{column} = {value}" for column, value in SQLITE[table].items())
            op.execute(f"UPDATE officers SET {sets} WHERE id IN (SELECT officer_id FROM {table})")
            for event, keyword, _referencing in EVENTS:
                op.execute(_sqlite_trigger(table, event, keyword))


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, _joined, _values in STATUS:
        for event, _keyword, _referencing in EVENTS:
            on = f" ON {table}" if postgres else ""
            op.execute(f"DROP TRIGGER IF EXISTS officer_status_{table}_{event}{on}")
        if postgres:
            op.execute(f"DROP FUNCTION IF EXISTS officer_status_{table}()")
    for name, _type in COLUMNS:
        op.execute(f"ALTER TABLE officers DROP COLUMN {name}")
