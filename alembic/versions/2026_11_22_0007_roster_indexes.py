"""roster indexes: keyset orders of the qualification roster

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 18:18:37.237078+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_officers_roster_agency", "officers", ["agency_id", "name", "id"], unique=False)
    op.create_index("ix_officers_roster_name", "officers", ["name", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_officers_roster_name", table_name="officers")
    op.drop_index("ix_officers_roster_agency", table_name="officers")
