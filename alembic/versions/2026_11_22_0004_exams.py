"""exams: banks and question versions, exams and parts, sessions, enrolments, attempts, answers

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 18:17:52.804982+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

import app.db
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exam_answers",
        sa.Column("attempt_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("choice", sa.String(length=16), nullable=False),
        sa.Column("saved_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("attempt_id", "position", "seq", name=op.f("pk_exam_answers")),
    )
    op.create_table(
        "exam_banks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("part", sa.String(length=16), nullable=False),
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("imported_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("part IN ('public', 'specialised')", name=op.f("ck_exam_banks_part")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exam_banks")),
        sa.UniqueConstraint("code", name=op.f("uq_exam_banks_code")),
    )
    op.create_table(
        "exam_questions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bank_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("qid", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("difficulty", sa.Integer(), nullable=False),
        sa.Column("stem", sa.Text(), nullable=False),
        sa.Column("options_json", sa.Text(), nullable=False),
        sa.Column("answer_json", sa.Text(), nullable=False),
        sa.Column("weights_json", sa.Text(), nullable=True),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "category IN ('public_law', 'specialised_law', 'new_law')",
            name=op.f("ck_exam_questions_category"),
        ),
        sa.CheckConstraint("type IN ('single', 'multiple', 'judge')", name=op.f("ck_exam_questions_type")),
        sa.ForeignKeyConstraint(
            ["bank_id"],
            ["exam_banks.id"],
            name=op.f("fk_exam_questions_bank_id_exam_banks"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exam_questions")),
        sa.UniqueConstraint("bank_id", "qid", "version", name=op.f("uq_exam_questions_bank_id_qid_version")),
    )
    with op.batch_alter_table("exam_questions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_exam_questions_draw", ["bank_id", "is_current", "category", "type"], unique=False
        )
        batch_op.create_index(
            "uq_exam_questions_current",
            ["bank_id", "qid"],
            unique=True,
            postgresql_where=sa.text("is_current"),
            sqlite_where=sa.text("is_current"),
        )

    op.create_table(
        "exams",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("agency_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("pass_mark", sa.Integer(), nullable=False),
        sa.Column("retakes", sa.Integer(), nullable=False),
        sa.Column("multiple_scoring", sa.String(length=16), nullable=False),
        sa.Column("created_by_name", sa.String(length=64), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "multiple_scoring IN ('all_or_nothing', 'partial')", name=op.f("ck_exams_multiple_scoring")
        ),
        sa.CheckConstraint("pass_mark > 0 AND pass_mark <= 100", name=op.f("ck_exams_pass_mark")),
        sa.CheckConstraint("retakes >= 0 AND retakes <= 5", name=op.f("ck_exams_retakes")),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_exams_agency_id_agencies"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exams")),
    )
    with op.batch_alter_table("exams", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exams_agency_id"), ["agency_id"], unique=False)

    op.create_table(
        "exam_parts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("exam_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("part", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("blueprint_json", sa.Text(), nullable=False),
        sa.CheckConstraint("part IN ('public', 'specialised')", name=op.f("ck_exam_parts_part")),
        sa.CheckConstraint(
            "duration_minutes > 0 AND duration_minutes <= 600", name=op.f("ck_exam_parts_duration")
        ),
        sa.ForeignKeyConstraint(
            ["exam_id"], ["exams.id"], name=op.f("fk_exam_parts_exam_id_exams"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exam_parts")),
        sa.UniqueConstraint("exam_id", "part", name=op.f("uq_exam_parts_exam_id_part")),
        sa.UniqueConstraint("exam_id", "position", name=op.f("uq_exam_parts_exam_id_position")),
    )
    op.create_table(
        "exam_sessions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("exam_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("agency_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("opens_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closes_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("review_policy", sa.String(length=16), nullable=False),
        sa.Column("submit_on_leave", sa.Boolean(), nullable=False),
        sa.Column("created_by_name", sa.String(length=64), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "review_policy IN ('never', 'after_submit', 'after_close')",
            name=op.f("ck_exam_sessions_review_policy"),
        ),
        sa.CheckConstraint("closes_at > opens_at", name=op.f("ck_exam_sessions_window")),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_exam_sessions_agency_id_agencies"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["exam_id"], ["exams.id"], name=op.f("fk_exam_sessions_exam_id_exams"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exam_sessions")),
    )
    with op.batch_alter_table("exam_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exam_sessions_exam_id"), ["exam_id"], unique=False)

    op.create_table(
        "exam_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("session_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("part_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("officer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("agency_id", sa.BigInteger(), nullable=False),
        sa.Column("field", sa.String(length=50), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("paper_json", sa.Text(), nullable=False),
        sa.Column("question_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("started_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("result_json", sa.Text(), nullable=False),
        sa.Column("leave_count", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "(status = 'open' AND closed_at IS NULL AND score IS NULL) OR (status = 'closed' AND closed_at IS NOT NULL AND score IS NOT NULL)",
            name=op.f("ck_exam_attempts_closed_shape"),
        ),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_exam_attempts_status")),
        sa.ForeignKeyConstraint(
            ["officer_id"],
            ["officers.id"],
            name=op.f("fk_exam_attempts_officer_id_officers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["part_id"],
            ["exam_parts.id"],
            name=op.f("fk_exam_attempts_part_id_exam_parts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["exam_sessions.id"],
            name=op.f("fk_exam_attempts_session_id_exam_sessions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exam_attempts")),
        sa.UniqueConstraint(
            "session_id",
            "part_id",
            "officer_id",
            "number",
            name=op.f("uq_exam_attempts_session_id_part_id_officer_id_number"),
        ),
    )
    with op.batch_alter_table("exam_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_exam_attempts_session", ["session_id", "agency_id"], unique=False)
        batch_op.create_index("ix_exam_attempts_sweep", ["status", "deadline_at"], unique=False)
        batch_op.create_index(
            "uq_exam_attempts_open",
            ["officer_id", "part_id"],
            unique=True,
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        )

    op.create_table(
        "exam_enrolments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("session_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("officer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("via_agency_id", sa.BigInteger(), nullable=True),
        sa.Column("created_by_name", sa.String(length=64), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["officer_id"],
            ["officers.id"],
            name=op.f("fk_exam_enrolments_officer_id_officers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["exam_sessions.id"],
            name=op.f("fk_exam_enrolments_session_id_exam_sessions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exam_enrolments")),
        sa.UniqueConstraint(
            "session_id", "officer_id", name=op.f("uq_exam_enrolments_session_id_officer_id")
        ),
    )
    with op.batch_alter_table("exam_enrolments", schema=None) as batch_op:
        batch_op.create_index("ix_exam_enrolments_officer", ["officer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("exam_enrolments", schema=None) as batch_op:
        batch_op.drop_index("ix_exam_enrolments_officer")

    op.drop_table("exam_enrolments")
    with op.batch_alter_table("exam_attempts", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_exam_attempts_open",
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        )
        batch_op.drop_index("ix_exam_attempts_sweep")
        batch_op.drop_index("ix_exam_attempts_session")

    op.drop_table("exam_attempts")
    with op.batch_alter_table("exam_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exam_sessions_exam_id"))

    op.drop_table("exam_sessions")
    op.drop_table("exam_parts")
    with op.batch_alter_table("exams", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exams_agency_id"))

    op.drop_table("exams")
    with op.batch_alter_table("exam_questions", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_exam_questions_current",
            postgresql_where=sa.text("is_current"),
            sqlite_where=sa.text("is_current"),
        )
        batch_op.drop_index("ix_exam_questions_draw")

    op.drop_table("exam_questions")
    op.drop_table("exam_banks")
    op.drop_table("exam_answers")
