"""assessments: yearly ratings, exit cases and their timeline, training-shortfall flags, year-end closings

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 18:17:28.165906+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

import app.db
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assessment_flags",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("officer_id", sa.BigInteger(), nullable=False),
        sa.Column("agency_id", sa.BigInteger(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("consequence", sa.String(length=12), nullable=False),
        sa.Column("needed_tenths", sa.Integer(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "consequence IN ('none', 'warning', 'suspension')", name=op.f("ck_assessment_flags_consequence")
        ),
        sa.CheckConstraint("kind IN ('training_shortfall')", name=op.f("ck_assessment_flags_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessment_flags")),
        sa.UniqueConstraint(
            "year", "kind", "officer_id", name=op.f("uq_assessment_flags_year_kind_officer_id")
        ),
    )
    with op.batch_alter_table("assessment_flags", schema=None) as batch_op:
        batch_op.create_index("ix_assessment_flags_agency_year", ["agency_id", "year"], unique=False)
        batch_op.create_index("ix_assessment_flags_officer", ["officer_id"], unique=False)

    op.create_table(
        "assessment_year_closings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("scope_agency_id", sa.BigInteger(), nullable=True),
        sa.Column("scope_path", sa.String(length=255), nullable=False),
        sa.Column("run_by_name", sa.String(length=64), nullable=False),
        sa.Column("run_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("cases_opened", sa.Integer(), nullable=False),
        sa.Column("flags_added", sa.Integer(), nullable=False),
        sa.Column("summary_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessment_year_closings")),
    )
    with op.batch_alter_table("assessment_year_closings", schema=None) as batch_op:
        batch_op.create_index("ix_assessment_year_closings_year", ["year", "id"], unique=False)

    op.create_table(
        "assessment_ratings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("officer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("agency_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("grade", sa.String(length=8), nullable=False),
        sa.Column("daily_score", sa.Integer(), nullable=True),
        sa.Column("legal_test_score", sa.Integer(), nullable=True),
        sa.Column("standard_test_score", sa.Integer(), nullable=True),
        sa.Column("case_review_score", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("excellent_barred", sa.Boolean(), nullable=False),
        sa.Column("remedy", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("corrects_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("entered_by_id", sa.BigInteger(), nullable=True),
        sa.Column("entered_by_name", sa.String(length=64), nullable=False),
        sa.Column("entered_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_by_name", sa.String(length=64), nullable=False),
        sa.Column("confirmed_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(status = 'draft') = (confirmed_at IS NULL)",
            name=op.f("ck_assessment_ratings_confirmed_iff_not_draft"),
        ),
        sa.CheckConstraint(
            "remedy IS NULL OR remedy IN ('criticism', 'off_post_training')",
            name=op.f("ck_assessment_ratings_remedy"),
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'confirmed', 'superseded')", name=op.f("ck_assessment_ratings_status")
        ),
        sa.CheckConstraint(
            "case_review_score IS NULL OR (case_review_score >= 0 AND case_review_score <= 100)",
            name=op.f("ck_assessment_ratings_case_review_score"),
        ),
        sa.CheckConstraint(
            "corrects_id IS NULL OR length(reason) > 0", name=op.f("ck_assessment_ratings_correction_reason")
        ),
        sa.CheckConstraint(
            "daily_score IS NULL OR (daily_score >= 0 AND daily_score <= 100)",
            name=op.f("ck_assessment_ratings_daily_score"),
        ),
        sa.CheckConstraint(
            "legal_test_score IS NULL OR (legal_test_score >= 0 AND legal_test_score <= 100)",
            name=op.f("ck_assessment_ratings_legal_test_score"),
        ),
        sa.CheckConstraint(
            "standard_test_score IS NULL OR (standard_test_score >= 0 AND standard_test_score <= 100)",
            name=op.f("ck_assessment_ratings_standard_test_score"),
        ),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_assessment_ratings_agency_id_agencies"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["corrects_id"],
            ["assessment_ratings.id"],
            name=op.f("fk_assessment_ratings_corrects_id_assessment_ratings"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["officer_id"],
            ["officers.id"],
            name=op.f("fk_assessment_ratings_officer_id_officers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessment_ratings")),
    )
    with op.batch_alter_table("assessment_ratings", schema=None) as batch_op:
        batch_op.create_index("ix_assessment_ratings_agency_year", ["agency_id", "year"], unique=False)
        batch_op.create_index(
            "ix_assessment_ratings_close",
            ["year", "grade", "officer_id"],
            unique=False,
            postgresql_where=sa.text("status = 'confirmed'"),
            sqlite_where=sa.text("status = 'confirmed'"),
        )
        batch_op.create_index(
            "uq_assessment_ratings_live",
            ["officer_id", "year"],
            unique=True,
            postgresql_where=sa.text("status <> 'superseded'"),
            sqlite_where=sa.text("status <> 'superseded'"),
        )

    op.create_table(
        "exit_cases",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("officer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("agency_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("authority_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("first_rating_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("second_rating_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("proposed_outcome", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("notified_on", sa.Date(), nullable=False),
        sa.Column("statement_deadline", sa.Date(), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("statement_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decision", sa.String(length=12), nullable=True),
        sa.Column("decided_outcome", sa.String(length=24), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=False),
        sa.Column("decided_by_name", sa.String(length=64), nullable=False),
        sa.Column("decided_on", sa.Date(), nullable=True),
        sa.Column("review_deadline", sa.Date(), nullable=True),
        sa.Column("review_request", sa.Text(), nullable=False),
        sa.Column("review_requested_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("review_result", sa.String(length=12), nullable=True),
        sa.Column("review_reason", sa.Text(), nullable=False),
        sa.Column("opened_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "(status = 'open') = (decision IS NULL)", name=op.f("ck_exit_cases_decided_iff_not_open")
        ),
        sa.CheckConstraint(
            "decided_outcome IS NULL OR decided_outcome IN ('remove_qualification', 'move_off_post')",
            name=op.f("ck_exit_cases_decided_outcome"),
        ),
        sa.CheckConstraint(
            "decision IS NULL OR decision IN ('confirm', 'change', 'drop')",
            name=op.f("ck_exit_cases_decision"),
        ),
        sa.CheckConstraint(
            "proposed_outcome IN ('remove_qualification', 'move_off_post')",
            name=op.f("ck_exit_cases_proposed_outcome"),
        ),
        sa.CheckConstraint(
            "review_result IS NULL OR review_result IN ('upheld', 'overturned')",
            name=op.f("ck_exit_cases_review_result"),
        ),
        sa.CheckConstraint(
            "status IN ('open', 'decided', 'review_requested', 'closed')", name=op.f("ck_exit_cases_status")
        ),
        sa.CheckConstraint("statement_deadline >= notified_on", name=op.f("ck_exit_cases_deadline")),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_exit_cases_agency_id_agencies"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["authority_id"],
            ["agencies.id"],
            name=op.f("fk_exit_cases_authority_id_agencies"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["first_rating_id"],
            ["assessment_ratings.id"],
            name=op.f("fk_exit_cases_first_rating_id_assessment_ratings"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["officer_id"],
            ["officers.id"],
            name=op.f("fk_exit_cases_officer_id_officers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["second_rating_id"],
            ["assessment_ratings.id"],
            name=op.f("fk_exit_cases_second_rating_id_assessment_ratings"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exit_cases")),
        sa.UniqueConstraint("officer_id", "year", name=op.f("uq_exit_cases_officer_id_year")),
    )
    with op.batch_alter_table("exit_cases", schema=None) as batch_op:
        batch_op.create_index("ix_exit_cases_agency_status", ["agency_id", "status"], unique=False)

    op.create_table(
        "exit_case_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor_name", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("occurred_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["exit_cases.id"],
            name=op.f("fk_exit_case_events_case_id_exit_cases"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exit_case_events")),
    )
    with op.batch_alter_table("exit_case_events", schema=None) as batch_op:
        batch_op.create_index("ix_exit_case_events_case", ["case_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("exit_case_events", schema=None) as batch_op:
        batch_op.drop_index("ix_exit_case_events_case")

    op.drop_table("exit_case_events")
    with op.batch_alter_table("exit_cases", schema=None) as batch_op:
        batch_op.drop_index("ix_exit_cases_agency_status")

    op.drop_table("exit_cases")
    with op.batch_alter_table("assessment_ratings", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_assessment_ratings_live",
            postgresql_where=sa.text("status <> 'superseded'"),
            sqlite_where=sa.text("status <> 'superseded'"),
        )
        batch_op.drop_index(
            "ix_assessment_ratings_close",
            postgresql_where=sa.text("status = 'confirmed'"),
            sqlite_where=sa.text("status = 'confirmed'"),
        )
        batch_op.drop_index("ix_assessment_ratings_agency_year")

    op.drop_table("assessment_ratings")
    with op.batch_alter_table("assessment_year_closings", schema=None) as batch_op:
        batch_op.drop_index("ix_assessment_year_closings_year")

    op.drop_table("assessment_year_closings")
    with op.batch_alter_table("assessment_flags", schema=None) as batch_op:
        batch_op.drop_index("ix_assessment_flags_officer")
        batch_op.drop_index("ix_assessment_flags_agency_year")

    op.drop_table("assessment_flags")
