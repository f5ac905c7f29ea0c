"""training: courses, the append-only hours ledger, its yearly totals, attendance import batches

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 16:38:37.428277+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

import app.db
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "training_year_totals",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("officer_id", sa.BigInteger(), nullable=False),
        sa.Column("general_law", sa.BigInteger(), nullable=False),
        sa.Column("special_law", sa.BigInteger(), nullable=False),
        sa.Column("new_law", sa.BigInteger(), nullable=False),
        # The covering index of the compliance query (autogenerate does not render INCLUDE).
        sa.PrimaryKeyConstraint(
            "year",
            "officer_id",
            name=op.f("pk_training_year_totals"),
            postgresql_include=["general_law", "special_law", "new_law"],
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "training_courses",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("agency_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("hours_tenths", sa.Integer(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("provider", sa.String(length=100), nullable=False),
        sa.Column("verification", sa.String(length=24), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_by_name", sa.String(length=64), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "category IN ('general_law', 'special_law', 'new_law')", name=op.f("ck_training_courses_category")
        ),
        sa.CheckConstraint(
            "verification IN ('sign_in_sheet', 'online_completion', 'certificate')",
            name=op.f("ck_training_courses_verification"),
        ),
        sa.CheckConstraint("ends_on >= starts_on", name=op.f("ck_training_courses_dates")),
        sa.CheckConstraint("hours_tenths > 0", name=op.f("ck_training_courses_hours_positive")),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_training_courses_agency_id_agencies"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["accounts.id"],
            name=op.f("fk_training_courses_created_by_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_courses")),
    )
    with op.batch_alter_table("training_courses", schema=None) as batch_op:
        batch_op.create_index("ix_training_courses_agency_year", ["agency_id", "year"], unique=False)
        batch_op.create_index("ix_training_courses_year_title", ["year", "title"], unique=False)

    op.create_table(
        "training_import_batches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("agency_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("committed_sha256", sa.String(length=64), nullable=True),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("file_type", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("rows_imported", sa.Integer(), nullable=False),
        sa.Column("rows_rejected", sa.Integer(), nullable=False),
        sa.Column("hours_tenths", sa.BigInteger(), nullable=False),
        sa.Column("errors_json", sa.Text(), nullable=False),
        sa.Column("created_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_by_name", sa.String(length=64), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(outcome = 'committed' AND committed_sha256 IS NOT NULL AND committed_sha256 = sha256) OR (outcome = 'rejected' AND committed_sha256 IS NULL)",
            name=op.f("ck_training_import_batches_committed_hash"),
        ),
        sa.CheckConstraint(
            "outcome IN ('committed', 'rejected')", name=op.f("ck_training_import_batches_outcome")
        ),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_training_import_batches_agency_id_agencies"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["accounts.id"],
            name=op.f("fk_training_import_batches_created_by_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_import_batches")),
        sa.UniqueConstraint("committed_sha256", name=op.f("uq_training_import_batches_committed_sha256")),
    )
    with op.batch_alter_table("training_import_batches", schema=None) as batch_op:
        batch_op.create_index("ix_training_import_batches_agency", ["agency_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_training_import_batches_sha256"), ["sha256"], unique=False)

    op.create_table(
        "training_records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("officer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("course_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("attended_on", sa.Date(), nullable=False),
        sa.Column("hours_tenths", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("corrects_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=True),
        sa.Column("entered_by_id", sa.BigInteger(), nullable=True),
        sa.Column("entered_by_name", sa.String(length=64), nullable=False),
        sa.Column("entered_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(kind = 'record' AND corrects_id IS NULL AND hours_tenths > 0 AND generation >= 0) OR (kind = 'amendment' AND corrects_id IS NOT NULL AND hours_tenths > 0 AND generation >= 0) OR (kind = 'reversal' AND corrects_id IS NOT NULL AND hours_tenths < 0 AND generation < 0)",
            name=op.f("ck_training_records_shape"),
        ),
        sa.CheckConstraint(
            "category IN ('general_law', 'special_law', 'new_law')", name=op.f("ck_training_records_category")
        ),
        sa.CheckConstraint("kind = 'record' OR length(reason) > 0", name=op.f("ck_training_records_reason")),
        sa.CheckConstraint(
            "kind IN ('record', 'reversal', 'amendment')", name=op.f("ck_training_records_kind")
        ),
        sa.ForeignKeyConstraint(
            ["corrects_id"],
            ["training_records.id"],
            name=op.f("fk_training_records_corrects_id_training_records"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["training_courses.id"],
            name=op.f("fk_training_records_course_id_training_courses"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["officer_id"],
            ["officers.id"],
            name=op.f("fk_training_records_officer_id_officers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_records")),
        sa.UniqueConstraint(
            "course_id",
            "officer_id",
            "attended_on",
            "generation",
            name=op.f("uq_training_records_course_id_officer_id_attended_on_generation"),
        ),
    )
    with op.batch_alter_table("training_records", schema=None) as batch_op:
        batch_op.create_index("ix_training_records_officer", ["officer_id", "attended_on"], unique=False)
        batch_op.create_index(
            "uq_training_records_correction",
            ["corrects_id", "kind"],
            unique=True,
            postgresql_where=sa.text("corrects_id IS NOT NULL"),
            sqlite_where=sa.text("corrects_id IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("training_records", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_training_records_correction",
            postgresql_where=sa.text("corrects_id IS NOT NULL"),
            sqlite_where=sa.text("corrects_id IS NOT NULL"),
        )
        batch_op.drop_index("ix_training_records_officer")

    op.drop_table("training_records")
    with op.batch_alter_table("training_import_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_training_import_batches_sha256"))
        batch_op.drop_index("ix_training_import_batches_agency")

    op.drop_table("training_import_batches")
    with op.batch_alter_table("training_courses", schema=None) as batch_op:
        batch_op.drop_index("ix_training_courses_year_title")
        batch_op.drop_index("ix_training_courses_agency_year")

    op.drop_table("training_courses")
    op.drop_table("training_year_totals")
