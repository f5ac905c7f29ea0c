"""sqlite rating status: the officer-status triggers on ratings look the officer's ratings up by index

Migration 0012's SQLite row triggers recompute ``officers.latest_rating_year`` as
``max(year) … WHERE officer_id = ? AND status = 'confirmed'``. SQLite uses a partial index only for
a query that names the index's own condition, so that subquery could not use the live-ratings index
(officer, year) WHERE status <> 'superseded' and walked the whole confirmed-ratings index instead,
once per rating written: quadratic, a bulk load of 400,000 ratings ran for more than ten minutes.
Naming the condition (implied by ``status = 'confirmed'`` anyway) lets it seek the officer's few
ratings. PostgreSQL's statement-level triggers plan their grouped update afresh: unchanged.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-23 03:20:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENTS = {
    "insert": ("INSERT", "NEW.officer_id"),
    "update": ("UPDATE", "NEW.officer_id, OLD.officer_id"),
    "delete": ("DELETE", "OLD.officer_id"),
}
BEFORE = "x.status = 'confirmed'"
AFTER = "x.status <> 'superseded' AND x.status = 'confirmed'"


def _recreate(condition: str) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for event, (keyword, officers) in EVENTS.items():
        name = f"officer_status_assessment_ratings_{event}"
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute(
            f"CREATE TRIGGER {name} AFTER {keyword} ON assessment_ratings BEGIN UPDATE officers SET "
            "latest_rating_year = (SELECT max(x.year) FROM assessment_ratings x "
            f"WHERE x.officer_id = officers.id AND {condition}) WHERE id IN ({officers}); END"
        )


def upgrade() -> None:
    _recreate(AFTER)


def downgrade() -> None:
    _recreate(BEFORE)
