"""exam qualifications

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 18:13:19.358287+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

import app.db
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "exam_qualifications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("officer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("passed_on", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("attempt_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("removed_on", sa.Date(), nullable=True),
        sa.Column("removed_reason", sa.Text(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(status = 'removed') = (removed_on IS NOT NULL)",
            name=op.f("ck_exam_qualifications_removed_on_iff_removed"),
        ),
        sa.CheckConstraint("source IN ('exam', 'legacy')", name=op.f("ck_exam_qualifications_source")),
        sa.CheckConstraint("status IN ('valid', 'removed')", name=op.f("ck_exam_qualifications_status")),
        sa.CheckConstraint("valid_until >= passed_on", name=op.f("ck_exam_qualifications_dates")),
        sa.ForeignKeyConstraint(
            ["officer_id"],
            ["officers.id"],
            name=op.f("fk_exam_qualifications_officer_id_officers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exam_qualifications")),
    )
    with op.batch_alter_table("exam_qualifications", schema=None) as batch_op:
        batch_op.create_index("ix_exam_qualifications_officer", ["officer_id", "valid_until"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("exam_qualifications", schema=None) as batch_op:
        batch_op.drop_index("ix_exam_qualifications_officer")

    op.drop_table("exam_qualifications")
