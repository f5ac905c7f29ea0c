"""gift question title draft: exam questions keep their GIFT title and a draft (草稿) mark

A GIFT question arrives with a ``::title::`` (kept for reviewers) and, by the convention of
exam_banks/README.md, its legal basis in a ``// 依据：…`` line; one without a basis is stored as a
draft that no paper draws until its basis is filled in. The rule holds for rows already stored:
a question imported from GIFT or XLSX before this revision without a basis becomes a draft too
(TOML questions always have one). Papers already drawn keep their questions.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 09:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("exam_questions") as batch_op:
        batch_op.add_column(sa.Column("title", sa.String(length=200), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("is_draft", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE exam_questions SET is_draft = (trim(basis) = '')")


def downgrade() -> None:
    with op.batch_alter_table("exam_questions") as batch_op:
        batch_op.drop_column("is_draft")
        batch_op.drop_column("title")
