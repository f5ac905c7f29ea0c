"""exam parts source: an exam records whether its parts follow the authority's policy or its own

The parts of an exam and their order are the authority's policy (``Policy.exam_parts``) unless the
exam sets its own. ``exams.parts_source`` says which: 'policy' or 'exam'. Every exam defined before
this revision named its parts itself, so existing rows are 'exam'.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 09:40:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("exams") as batch:
        batch.add_column(
            sa.Column("parts_source", sa.String(length=8), nullable=False, server_default="exam")
        )
        batch.create_check_constraint("parts_source", "parts_source IN ('policy', 'exam')")


def downgrade() -> None:
    with op.batch_alter_table("exams") as batch:
        batch.drop_constraint("parts_source", type_="check")
        batch.drop_column("parts_source")
