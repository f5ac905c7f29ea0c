"""The import's SQL: its scratch tables and the set-based statements that judge and write staged rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, bindparam, text

from app.training import rules

INSERT_COLUMNS = (
    "officer_id",
    "course_id",
    "year",
    "category",
    "attended_on",
    "hours_tenths",
    "kind",
    "corrects_id",
    "reason",
    "generation",
    "batch_id",
    "entered_by_id",
    "entered_by_name",
    "entered_at",
)

STAGE = "training_import_stage"
ROWS = "training_import_rows"
GENERATIONS = "training_import_generations"
STAGE_COLUMNS = ("row", "id_number", "name", "course_id", "year", "category", "attended_on", "tenths", "ok")


def stage_ddl(dialect: str) -> list[str]:
    """The import's scratch tables: temporary, so private to the connection and never logged.

    ``training_import_stage`` takes the sheet's rows as parsed (COPY on PostgreSQL, executemany on
    SQLite); ``training_import_rows`` is the same joined to the officers (by ID number, in scope);
    ``training_import_generations`` holds the few rows that follow an earlier, reversed line.
    """
    on_commit = " ON COMMIT DROP" if dialect == "postgresql" else ""
    boolean = "boolean" if dialect == "postgresql" else "integer"
    day = "date" if dialect == "postgresql" else "text"
    return [
        f"DROP TABLE IF EXISTS {STAGE}",
        f"DROP TABLE IF EXISTS {ROWS}",
        f"DROP TABLE IF EXISTS {GENERATIONS}",
        f"CREATE TEMPORARY TABLE {STAGE} (row integer, id_number varchar(18), name text, course_id bigint, "
        f"year integer, category varchar(16), attended_on {day}, tenths integer, ok {boolean}){on_commit}",
        f"CREATE TEMPORARY TABLE {ROWS} (row integer, id_number varchar(18), name text, course_id bigint, "
        f"year integer, category varchar(16), attended_on {day}, tenths integer, ok {boolean}, "
        f"officer_id bigint, officer_name text, officer_agency_id bigint){on_commit}",
        f"CREATE TEMPORARY TABLE {GENERATIONS} (row integer PRIMARY KEY, generation integer){on_commit}",
    ]


# Officers by ID number, kept only inside the importer's agency tree (a path prefix). An officer
# outside it is left unmatched: to the importer, unknown.
RESOLVE = text(
    f"INSERT INTO {ROWS} SELECT s.row, s.id_number, s.name, s.course_id, s.year, s.category, "
    "s.attended_on, s.tenths, s.ok, "
    "CASE WHEN a.path LIKE :scope THEN o.id END, CASE WHEN a.path LIKE :scope THEN o.name END, "
    "CASE WHEN a.path LIKE :scope THEN o.agency_id END "
    f"FROM {STAGE} s LEFT JOIN officers o ON o.id_number = s.id_number "
    "LEFT JOIN agencies a ON a.id = o.agency_id"
)
UNKNOWN = text(f"SELECT row, id_number FROM {ROWS} WHERE officer_id IS NULL")
NAME_DIFFERS = text(
    f"SELECT row, name, officer_name, tenths, ok FROM {ROWS} "
    "WHERE officer_id IS NOT NULL AND name <> '' AND name <> officer_name"
)
# Rows sharing (officer, course, day) with another row that passed every other check.
TWINS = text(
    f"SELECT r.row, r.officer_id, r.course_id, r.attended_on, r.tenths FROM {ROWS} r JOIN "
    f"(SELECT officer_id, course_id, attended_on FROM {ROWS} WHERE ok AND officer_id IS NOT NULL "
    " GROUP BY officer_id, course_id, attended_on HAVING count(*) > 1) d "
    "ON d.officer_id = r.officer_id AND d.course_id = r.course_id AND d.attended_on = r.attended_on "
    "WHERE r.ok"
)
# The staged rows' hours per (year, officer) and category, and the upsert that adds them up.
_SUMMED = ", ".join(
    f"SUM(CASE WHEN category = '{c.value}' THEN tenths ELSE 0 END) AS {c.value}" for c in rules.CATEGORIES
)
_ADD_ON_CONFLICT = "ON CONFLICT (year, officer_id) DO UPDATE SET " + ", ".join(
    f"{c.value} = training_year_totals.{c.value} + excluded.{c.value}" for c in rules.CATEGORIES
)


def _totals_insert(extra: str = "") -> Any:
    return text(
        "INSERT INTO training_year_totals (year, officer_id, general_law, special_law, new_law) "
        f"SELECT year, officer_id, {_SUMMED} FROM {ROWS} r WHERE officer_id IS NOT NULL{extra} "
        f"GROUP BY year, officer_id ORDER BY year, officer_id {_ADD_ON_CONFLICT}"
    )


TOTALS = _totals_insert()
# PostgreSQL: the officers who already have a total for the year (most of them, after the first
# import of a year) get theirs by one joined UPDATE, which stays on the row's page and touches no
# index (the table is 70 % full, its key holds no hours); then the upsert only meets the rest (or a
# row a line added by hand, not under the import lock, created meanwhile).
# Half the time of the upsert alone for 100,000 officers (measured: 0.4 s against 0.8 s).
TOTALS_UPDATE = text(
    "UPDATE training_year_totals t SET "
    + ", ".join(f"{c.value} = t.{c.value} + d.{c.value}" for c in rules.CATEGORIES)
    + f" FROM (SELECT year, officer_id, {_SUMMED} FROM {ROWS} WHERE officer_id IS NOT NULL "
    "GROUP BY year, officer_id) d WHERE t.year = d.year AND t.officer_id = d.officer_id"
)
TOTALS_NEW = _totals_insert(
    " AND NOT EXISTS (SELECT 1 FROM training_year_totals t WHERE t.year = r.year AND t.officer_id = r.officer_id)"
)
SUMS = text(f"SELECT count(*), COALESCE(SUM(tenths), 0) FROM {ROWS} WHERE ok AND officer_id IS NOT NULL")


def earlier_lines(course_ids: list[int]) -> Any:
    """The ledger's live or reversed positive lines for the staged rows' (officer, course, day), among
    the courses that had lines before the import: (row, tenths, generation, reversed)."""
    courses = ",".join(str(int(c)) for c in sorted(course_ids))
    return text(
        f"SELECT s.row, s.tenths, r.generation, EXISTS (SELECT 1 FROM training_records v "
        "WHERE v.corrects_id = r.id AND v.kind = 'reversal') "
        f"FROM {ROWS} s JOIN training_records r ON r.course_id = s.course_id "
        "AND r.officer_id = s.officer_id AND r.attended_on = s.attended_on AND r.hours_tenths > 0 "
        f"WHERE s.ok AND s.officer_id IS NOT NULL AND s.course_id IN ({courses})"
    )


def first_good_rows(limit: int) -> Any:
    """The first staged rows that passed so far, in row order: the preview's sample."""
    return text(
        "SELECT row, officer_name, id_number, officer_agency_id, course_id, attended_on, tenths "
        f"FROM {ROWS} WHERE ok AND officer_id IS NOT NULL ORDER BY row LIMIT {int(limit)}"
    )


def ledger_insert(kind: str, *, returning: bool, at_type: Any) -> Any:
    """Every staged row of a matched officer into the ledger, in key order, with its generation."""
    return text(
        f"INSERT INTO training_records ({', '.join(INSERT_COLUMNS)}) "
        "SELECT s.officer_id, s.course_id, s.year, s.category, s.attended_on, s.tenths, "
        f"'{kind}', NULL, '', COALESCE(g.generation, 0), "
        "CAST(:batch_id AS BIGINT), CAST(:by_id AS BIGINT), :by_name, :at "
        f"FROM {ROWS} s LEFT JOIN {GENERATIONS} g ON g.row = s.row "
        "WHERE s.officer_id IS NOT NULL ORDER BY s.course_id, s.officer_id"
        + (" RETURNING id" if returning else "")
    ).bindparams(
        bindparam("by_name", type_=String()),
        bindparam("at", type_=at_type),
    )


GENERATIONS_INSERT = text(f"INSERT INTO {GENERATIONS} (row, generation) VALUES (:row, :generation)")
