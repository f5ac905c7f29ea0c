"""exit: who decides, a case closed on withdrawn evidence, returned cases, the bar after an exit

- ``agencies.is_legal_affairs_office``: the legal-affairs office (法制机构) of a level decides the
  exit cases of its tree, as an issuing authority does.
- ``exit_cases``: the status 'evidence_withdrawn' (a correction broke the two failing years before
  the decision; such a case has no decision) and ``returned`` (opened on two years the officer
  carried back to an enforcement post).
- ``certificate_exit_bars``: what an exit decision requires before the officer holds a card again.
- stored policies (``agencies.policy_json``) get ``failing_grades`` and ``excellent_barring_grades``
  from their own grade list (不合格 or 不称职, else the last grade), so that a policy with its own
  grade list still loads once the failing grades must come from it; the downgrade removes the keys
  this revision's policy added (the older code refuses unknown keys).

On SQLite a CHECK constraint changes only by rebuilding its table, and the rebuild drops the old
table, which the foreign key of ``exit_case_events`` refuses while events point at it. So the
events lose that key for the rebuild of ``exit_cases`` and get it back afterwards.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 09:45:00+00:00
"""

import json
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

import app.db
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS_BEFORE = "status IN ('open', 'decided', 'review_requested', 'closed')"
STATUS_AFTER = "status IN ('open', 'decided', 'review_requested', 'closed', 'evidence_withdrawn')"
DECIDED_BEFORE = "(status = 'open') = (decision IS NULL)"
DECIDED_AFTER = "(status IN ('open', 'evidence_withdrawn')) = (decision IS NULL)"
EVENTS_FK = "fk_exit_case_events_case_id_exit_cases"


def _exit_cases(status: str, decided: str, *, add_returned: bool) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        with op.batch_alter_table("exit_case_events", recreate="always") as events:
            events.drop_constraint(op.f(EVENTS_FK), type_="foreignkey")
    with op.batch_alter_table("exit_cases", recreate="always" if sqlite else "auto") as cases:
        cases.drop_constraint(op.f("ck_exit_cases_status"), type_="check")
        cases.drop_constraint(op.f("ck_exit_cases_decided_iff_not_open"), type_="check")
        cases.create_check_constraint(op.f("ck_exit_cases_status"), status)
        cases.create_check_constraint(op.f("ck_exit_cases_decided_iff_not_open"), decided)
        if add_returned:
            cases.add_column(
                sa.Column("returned", sa.Boolean(), server_default=sa.text("false"), nullable=False)
            )
        else:
            cases.drop_column("returned")
    if sqlite:
        with op.batch_alter_table("exit_case_events", recreate="always") as events:
            events.create_foreign_key(op.f(EVENTS_FK), "exit_cases", ["case_id"], ["id"], ondelete="RESTRICT")


NEW_POLICY_KEYS = (
    "failing_grades",
    "excellent_barring_grades",
    "exit_certificate_kinds",
    "move_off_post_bar_years",
)
KNOWN_FAILING = ("不合格", "不称职")


def _rewrite_policies(change: Callable[[dict[str, Any]], None]) -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, policy_json FROM agencies WHERE policy_json IS NOT NULL")).all()
    for agency_id, raw in rows:
        if not raw:
            continue
        policy = json.loads(raw)
        change(policy)
        conn.execute(
            sa.text("UPDATE agencies SET policy_json = :p WHERE id = :i"),
            {"p": json.dumps(policy, ensure_ascii=False, separators=(",", ":")), "i": agency_id},
        )


def _add_failing(policy: dict[str, Any]) -> None:
    if "grades" in policy and "failing_grades" not in policy:
        grades = policy["grades"]
        failing = [g for g in grades if g in KNOWN_FAILING] or grades[-1:]
        policy["failing_grades"] = failing
        policy["excellent_barring_grades"] = failing


def _drop_new_keys(policy: dict[str, Any]) -> None:
    for key in NEW_POLICY_KEYS:
        policy.pop(key, None)


def upgrade() -> None:
    # Not in a batch: SQLite adds a column in place, a rebuild of agencies would drop what points at it.
    op.add_column(
        "agencies",
        sa.Column("is_legal_affairs_office", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    _exit_cases(STATUS_AFTER, DECIDED_AFTER, add_returned=True)
    op.create_table(
        "certificate_exit_bars",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("officer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("barred_from", sa.Date(), nullable=False),
        sa.Column("barred_until", sa.Date(), nullable=True),
        sa.Column("conditions", sa.Text(), nullable=False),
        sa.Column("lifted_on", sa.Date(), nullable=True),
        sa.Column("lifted_reason", sa.Text(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('remove_qualification', 'move_off_post')", name=op.f("ck_certificate_exit_bars_outcome")
        ),
        sa.ForeignKeyConstraint(
            ["officer_id"], ["officers.id"], name=op.f("fk_certificate_exit_bars_officer_id_officers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificate_exit_bars")),
        sa.UniqueConstraint("case_id", name=op.f("uq_certificate_exit_bars_case_id")),
    )  # fmt: skip
    op.create_index("ix_certificate_exit_bars_officer", "certificate_exit_bars", ["officer_id"])
    _rewrite_policies(_add_failing)


def downgrade() -> None:
    _rewrite_policies(_drop_new_keys)
    op.drop_index("ix_certificate_exit_bars_officer", table_name="certificate_exit_bars")
    op.drop_table("certificate_exit_bars")
    # Cases closed on withdrawn evidence read 'closed' with the decision 'drop' before this revision.
    op.execute(
        "UPDATE exit_cases SET status = 'closed', decision = 'drop' WHERE status = 'evidence_withdrawn'"
    )
    _exit_cases(STATUS_BEFORE, DECIDED_BEFORE, add_returned=False)
    op.drop_column("agencies", "is_legal_affairs_office")
