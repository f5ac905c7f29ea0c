"""flag index: one officer-first unique key on assessment_flags instead of three indexes

The year-end close writes a flag per officer short of training hours (tens of thousands in a
province's first close). The (agency, year) index was read by nothing, and the officer index is
covered by an officer-first unique key; each index cost ~0.3 s per 100k flags on PostgreSQL.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 21:25:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("assessment_flags", schema=None) as batch_op:
        batch_op.drop_index("ix_assessment_flags_agency_year")
        batch_op.drop_index("ix_assessment_flags_officer")
        batch_op.drop_constraint("uq_assessment_flags_year_kind_officer_id", type_="unique")
        batch_op.create_unique_constraint(
            "uq_assessment_flags_officer_id_year_kind", ["officer_id", "year", "kind"]
        )


def downgrade() -> None:
    with op.batch_alter_table("assessment_flags", schema=None) as batch_op:
        batch_op.drop_constraint("uq_assessment_flags_officer_id_year_kind", type_="unique")
        batch_op.create_unique_constraint(
            "uq_assessment_flags_year_kind_officer_id", ["year", "kind", "officer_id"]
        )
        batch_op.create_index("ix_assessment_flags_officer", ["officer_id"], unique=False)
        batch_op.create_index("ix_assessment_flags_agency_year", ["agency_id", "year"], unique=False)
