"""flag key: assessment_flags keyed by (officer, year, kind), without a surrogate id

The year-end close writes a flag per officer short of training hours: 94,000 in the bench
province's first close. Its surrogate id was read by nothing (the officer's page and the close's
anti-join go through the officer-first unique key) but cost a sequence value and a second index
entry per flag: 0.08-0.10 s of the 0.5 s the close spent writing them on PostgreSQL (measured).
The unique key becomes the primary key.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-23 03:05:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = ["officer_id", "year", "kind"]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("uq_assessment_flags_officer_id_year_kind", "assessment_flags", type_="unique")
        op.drop_constraint("pk_assessment_flags", "assessment_flags", type_="primary")
        op.drop_column("assessment_flags", "id")  # its sequence goes with it
        op.create_primary_key("pk_assessment_flags", "assessment_flags", KEY)
        return
    with op.batch_alter_table("assessment_flags", recreate="always") as batch_op:
        batch_op.drop_constraint("uq_assessment_flags_officer_id_year_kind", type_="unique")
        batch_op.drop_column("id")
        batch_op.create_primary_key("pk_assessment_flags", KEY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("pk_assessment_flags", "assessment_flags", type_="primary")
        op.execute("ALTER TABLE assessment_flags ADD COLUMN id BIGSERIAL NOT NULL")  # numbers the rows
        op.create_primary_key("pk_assessment_flags", "assessment_flags", ["id"])
        op.create_unique_constraint("uq_assessment_flags_officer_id_year_kind", "assessment_flags", KEY)
        return
    with op.batch_alter_table("assessment_flags", recreate="always") as batch_op:
        batch_op.drop_constraint("pk_assessment_flags", type_="primary")
        batch_op.add_column(sa.Column("id", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint("uq_assessment_flags_officer_id_year_kind", KEY)
    # SQLite: number the rows, then make the id the primary key (the rowid alias) again.
    op.execute("UPDATE assessment_flags SET id = rowid")
    with op.batch_alter_table("assessment_flags", recreate="always") as batch_op:
        batch_op.alter_column("id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_primary_key("pk_assessment_flags", ["id"])
