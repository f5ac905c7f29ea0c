"""`app audit verify`: the hash-chained audit trail."""

from __future__ import annotations

import sys
from typing import Any

import click

from app.cli.base import cli, echo_json, run, session


@cli.group()
def audit() -> None:
    """The hash-chained audit trail."""


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--anchor",
    default=None,
    metavar="ID:HASH",
    help="A head printed by an earlier run and kept outside the database: fail if it is gone or changed.",
)
def audit_verify_cmd(as_json: bool, anchor: str | None) -> None:
    """Recompute the whole chain; exit 1 at the first changed, inserted or deleted row."""
    from app.audit.services import audit_verify
    from app.audit.tasks import audit_drain_all

    async def go() -> Any:
        async with session() as db:
            await audit_drain_all(db)  # events still in the outbox join the chain first
            return await audit_verify(db, anchor=pin)

    pin: tuple[int, str] | None = None
    if anchor:
        anchor_id, _, anchor_hash = anchor.partition(":")
        if not anchor_id.isdigit() or len(anchor_hash) != 64:
            raise click.BadParameter(
                "expected ID:HASH as printed by `app audit verify`", param_hint="--anchor"
            )
        pin = (int(anchor_id), anchor_hash.lower())
    report = run(go)
    if as_json:
        echo_json(
            {
                "ok": report.ok,
                "checked": report.checked,
                "first_bad_id": report.first_bad_id,
                "reason": report.reason,
                "head": f"{report.head_id}:{report.head_hash}" if report.head_id else None,
            },
        )
    elif report.ok:
        click.echo(f"audit chain intact: {report.checked} events verified")
        if report.head_id is not None:
            click.echo(
                f"head (keep it outside the database, check later with --anchor): {report.head_id}:{report.head_hash}"
            )
    else:
        click.echo(
            f"AUDIT CHAIN BROKEN at event {report.first_bad_id}: {report.reason} ({report.checked} verified before it)",
            err=True,
        )
    sys.exit(0 if report.ok else 1)
