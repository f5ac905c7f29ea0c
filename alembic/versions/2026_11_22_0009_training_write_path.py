"""training write path: no per-line foreign-key checks on the ledger, HOT updates of the totals

A 100,000-line attendance import spent 1.4 s in the foreign-key triggers of training_records
(officer, course) and 0.8 s updating training_year_totals, whose key index carried the hours
(INCLUDE), so every update wrote a new index entry. Officers and courses are never deleted and
every line is written from rows read in the same transaction; the totals' pages are left 30 % free
so an update stays on its page and touches no index (PostgreSQL's HOT update).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 21:35:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("training_records", schema=None) as batch_op:
        batch_op.drop_constraint("fk_training_records_officer_id_officers", type_="foreignkey")
        batch_op.drop_constraint("fk_training_records_course_id_training_courses", type_="foreignkey")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("pk_training_year_totals", "training_year_totals", type_="primary")
        op.create_primary_key("pk_training_year_totals", "training_year_totals", ["year", "officer_id"])
        op.execute("ALTER TABLE training_year_totals SET (fillfactor = 70)")
        op.execute("CLUSTER training_year_totals USING pk_training_year_totals")  # rewrite 70 % full


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE training_year_totals RESET (fillfactor)")
        op.drop_constraint("pk_training_year_totals", "training_year_totals", type_="primary")
        op.execute(
            "ALTER TABLE training_year_totals ADD CONSTRAINT pk_training_year_totals "
            "PRIMARY KEY (year, officer_id) INCLUDE (general_law, special_law, new_law)"
        )
    with op.batch_alter_table("training_records", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_training_records_course_id_training_courses",
            "training_courses",
            ["course_id"],
            ["id"],
            ondelete="RESTRICT",
        )
        batch_op.create_foreign_key(
            "fk_training_records_officer_id_officers", "officers", ["officer_id"], ["id"], ondelete="RESTRICT"
        )
