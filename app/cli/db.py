"""`app db upgrade|downgrade`: Alembic migrations."""

from __future__ import annotations

import click

from app.cli.base import cli


@cli.group()
def db() -> None:
    """Database schema migrations (Alembic)."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Upgrade the schema (default: to the newest revision)."""
    from app.lib import migrate

    migrate.upgrade(None, revision)
    click.echo(f"database upgraded to {revision}")


@db.command("downgrade")
@click.argument("revision", default="-1")
def db_downgrade(revision: str) -> None:
    """Downgrade the schema (default: one revision)."""
    from app.lib import migrate

    migrate.downgrade(None, revision)
    click.echo(f"database downgraded to {revision}")
